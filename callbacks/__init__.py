"""keras-recipes callbacks: learning-rate schedules and training callbacks.

Depends only on Keras and NumPy (matplotlib, optional, for plots).
"""

from callbacks.pruning import Pruning

__all__ = ["Pruning"]
