"""Whole-recipe hyperparameter search with Keras Tuner.

`ImageClassifierHyperModel` turns `recipes.fit_image_classifier` into a
Keras Tuner search space; `tune_image_classifier` runs a resumable,
distributable search over it and returns the best model, its
configuration and a table of every trial.
"""

from recipes.tuning.hypermodel import (
    RECIPE_METRICS,
    ImageClassifierHyperModel,
)
from recipes.tuning.search import (
    ResultsTable,
    TuningResult,
    find_base_learning_rates,
    tune_image_classifier,
)
from recipes.tuning.space import DEFAULT_SPACE, Knob
from recipes.tuning.tuners import (
    TUNERS,
    AtomicStateOracle,
    RecipeTuner,
    atomic_write_json,
    make_oracle,
)

__all__ = [
    "DEFAULT_SPACE",
    "RECIPE_METRICS",
    "TUNERS",
    "AtomicStateOracle",
    "ImageClassifierHyperModel",
    "Knob",
    "RecipeTuner",
    "ResultsTable",
    "TuningResult",
    "atomic_write_json",
    "find_base_learning_rates",
    "make_oracle",
    "tune_image_classifier",
]
