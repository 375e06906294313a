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
from recipes.batch_size import BatchSizeResult, find_batch_size
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
from recipes.interpretation import Interpretation
from recipes.loading import load_model
from recipes.sequence_classifier import (
    SequenceClassifierHyperModel,
    SequenceClassifierResult,
    fit_sequence_classifier,
)
from recipes.tuning import ImageClassifierHyperModel, tune_image_classifier

__version__ = "0.1.0"

__all__ = [
    "BatchSizeResult",
    "ImageClassifierHyperModel",
    "ImageClassifierResult",
    "Interpretation",
    "SequenceClassifierHyperModel",
    "SequenceClassifierResult",
    "backbones",
    "data",
    "datasets",
    "distill",
    "distribute",
    "export_tflite",
    "fit_image_classifier",
    "find_batch_size",
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
