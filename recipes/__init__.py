"""keras-recipes: training recipes for Keras 3 on TensorFlow."""

from recipes import backbones, data, datasets, distribute, sequence_data
from recipes.distribute import get_strategy
from recipes.image_classifier import (
    ImageClassifierResult,
    fit_image_classifier,
)
from recipes.sequence_classifier import (
    SequenceClassifierHyperModel,
    SequenceClassifierResult,
    fit_sequence_classifier,
)

__version__ = "0.1.0"

__all__ = [
    "ImageClassifierResult",
    "SequenceClassifierHyperModel",
    "SequenceClassifierResult",
    "backbones",
    "data",
    "datasets",
    "distribute",
    "fit_image_classifier",
    "fit_sequence_classifier",
    "get_strategy",
    "sequence_data",
]
