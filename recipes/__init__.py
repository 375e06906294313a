"""keras-recipes: training recipes for Keras 3 on TensorFlow."""

from recipes import datasets, distribute, loading
from recipes.distribute import get_strategy
from recipes.loading import load_model

__version__ = "0.1.0"

__all__ = ["datasets", "distribute", "get_strategy", "load_model", "loading"]
