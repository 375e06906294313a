"""Checks of the keyword arguments every recipe shares (run before any
work is done)."""

import numbers

import keras

from callbacks._internal import check_choice, check_number
from recipes.schedules import list_schedules


def check_training_args(*, epochs, batch_size, learning_rate, weight_decay,
                        label_smoothing, schedule, warmup_fraction,
                        steps_per_execution, verbose, callbacks=None,
                        seed=None, auto_epochs=False):
    """Validate the keyword arguments every recipe shares (before work).

    With `auto_epochs`, `epochs` may also be `"auto"` (a recipe that
    resolves it from the data).
    """
    check_callbacks(callbacks)
    # `keras.utils.set_random_seed` hands the seed to NumPy, which takes
    # only 32-bit seeds.
    check_number("seed", seed, low=0, high=2**32 - 1, integer=True,
                 allow_none=True)
    check_epochs(epochs, auto=auto_epochs)
    check_number("batch_size", batch_size, low=1, integer=True)
    if learning_rate != "auto":
        check_number("learning_rate", learning_rate, low=0.0,
                     low_inclusive=False, allow_none=True)
    check_number("weight_decay", weight_decay, low=0.0, allow_none=True)
    check_number("label_smoothing", label_smoothing, low=0.0, high=1.0,
                 high_inclusive=False)
    check_choice("schedule", schedule, list_schedules())
    check_number("warmup_fraction", warmup_fraction, low=0.0, high=1.0,
                 high_inclusive=False)
    if steps_per_execution != "auto":
        check_number("steps_per_execution", steps_per_execution, low=1,
                     integer=True)
    check_choice("verbose", verbose, (0, 1, 2))


def check_recipe_training_args(kw, auto_epochs=False):
    """`check_training_args` on the shared keywords in `kw`, a recipe's
    keyword arguments by name."""
    check_training_args(
        **{name: kw[name] for name in (
            "epochs", "batch_size", "learning_rate", "weight_decay",
            "label_smoothing", "schedule", "warmup_fraction",
            "steps_per_execution", "verbose", "callbacks", "seed")},
        auto_epochs=auto_epochs)


def check_epochs(epochs, auto=False):
    """`epochs` must be an integer >= 1 (or `"auto"`, with `auto`)."""
    if not auto:
        check_number("epochs", epochs, low=1, integer=True)
        return
    if isinstance(epochs, str) and epochs == "auto":
        return
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Real):
        raise TypeError(
            "Argument `epochs` must be 'auto' or an integer >= 1. "
            f"Received: epochs={epochs!r}"
        )
    check_number("epochs", epochs, low=1, integer=True)


def check_callbacks(callbacks):
    """`callbacks` must be `None` or a list/tuple of Keras callbacks."""
    if callbacks is None:
        return
    if not isinstance(callbacks, (list, tuple)) or not all(
            isinstance(c, keras.callbacks.Callback) for c in callbacks):
        raise TypeError(
            "Argument `callbacks` must be a list of `keras.callbacks."
            f"Callback` instances. Received: callbacks={callbacks!r}"
        )
