"""keras-recipes: training recipes for Keras 3 on TensorFlow."""

from recipes import (
    backbones,
    data,
    datasets,
    distribute,
    initializers,
    layers,
    loading,
    optimizers,
    regularization,
    sequence_data,
    tuning,
)
from recipes.compress import (
    distill,
    export_tflite,
    prune,
    quantize,
    sparsity_report,
    strip_pruning,
)
from recipes.distribute import get_strategy
from recipes.image_classifier import (
    ImageClassifierResult,
    fit_image_classifier,
)
from recipes.loading import load_model
from recipes.optimizers import discriminative_optimizer
from recipes.sequence_classifier import (
    SequenceClassifierHyperModel,
    SequenceClassifierResult,
    fit_sequence_classifier,
)
from recipes.tuning import ImageClassifierHyperModel, tune_image_classifier

__version__ = "0.1.0"

__all__ = [
    "ImageClassifierHyperModel",
    "ImageClassifierResult",
    "SequenceClassifierHyperModel",
    "SequenceClassifierResult",
    "backbones",
    "data",
    "datasets",
    "discriminative_optimizer",
    "distill",
    "distribute",
    "export_tflite",
    "fit_image_classifier",
    "fit_sequence_classifier",
    "get_strategy",
    "initializers",
    "layers",
    "load_model",
    "loading",
    "optimizers",
    "prune",
    "quantize",
    "regularization",
    "sequence_data",
    "sparsity_report",
    "strip_pruning",
    "tune_image_classifier",
    "tuning",
]
