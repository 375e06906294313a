"""Shared helpers of the optimizers package (argument checks, slot math)."""

import keras

from callbacks._validation import check_number

BASE_KWARGS = (
    "weight_decay",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
)


def check_learning_rate(learning_rate):
    """Accept a positive float, a `LearningRateSchedule` or a callable.

    Raises:
        ValueError: If a number is not > 0.
        TypeError: If it is neither a number nor callable.
    """
    if callable(learning_rate):
        return learning_rate
    return float(
        check_number("learning_rate", learning_rate, low=0.0,
                     low_inclusive=False)
    )


def check_beta(name, value):
    """A moment decay rate must lie in [0, 1)."""
    return float(check_number(name, value, low=0.0, high=1.0,
                              high_inclusive=False))


def as_dense(gradient, dtype):
    """Embedding gradients arrive as sparse slices; the rules are dense."""
    return keras.ops.cast(keras.ops.convert_to_tensor(gradient), dtype)
