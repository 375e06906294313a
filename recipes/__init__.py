"""keras-recipes: training recipes for Keras 3 on TensorFlow."""

from recipes import backbones, data, datasets, distribute
from recipes.distribute import get_strategy
from recipes.image_classifier import (
    ImageClassifierResult,
    fit_image_classifier,
)

__version__ = "0.1.0"

__all__ = [
    "ImageClassifierResult",
    "backbones",
    "data",
    "datasets",
    "distribute",
    "fit_image_classifier",
    "get_strategy",
]
