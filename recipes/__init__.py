"""keras-recipes: training recipes for Keras 3 on TensorFlow."""

from recipes import datasets, initializers, layers, regularization

__version__ = "0.1.0"

__all__ = ["datasets", "initializers", "layers", "regularization"]
