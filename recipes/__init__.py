"""keras-recipes: training recipes for Keras 3 on TensorFlow."""

from recipes import datasets, distribute
from recipes.distribute import get_strategy

__version__ = "0.1.0"

__all__ = ["datasets", "distribute", "get_strategy"]
