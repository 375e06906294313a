"""Argument checks shared by keras-recipes (callbacks and recipes).

Each helper raises one `ValueError` (or `TypeError`) naming the argument and
the received value, in the Keras style:
"Argument `step_size` must be > 0. Received: step_size=0".
"""

import math
import numbers

import keras


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(name, value, *, low=None, high=None, low_inclusive=True,
                 high_inclusive=True, integer=False, allow_none=False):
    """Check that `value` is a finite real number within optional bounds.

    Args:
        name: The argument's name, as the user wrote it.
        value: The received value.
        low: Optional lower bound.
        high: Optional upper bound.
        low_inclusive: Whether `low` itself is allowed. Defaults to `True`.
        high_inclusive: Whether `high` itself is allowed. Defaults to `True`.
        integer: Whether the value must be an integer. Defaults to `False`.
        allow_none: Whether `None` is accepted. Defaults to `False`.

    Returns:
        The value (as `int` when `integer=True`).

    Raises:
        TypeError: If the value is not a number.
        ValueError: If the value is not finite or out of bounds.
    """
    if value is None and allow_none:
        return None
    if integer:
        ok = _is_number(value) and float(value).is_integer()
        if not ok:
            raise TypeError(
                f"Argument `{name}` must be an integer. "
                f"Received: {name}={value!r}"
            )
        value = int(value)
    elif not _is_number(value):
        raise TypeError(
            f"Argument `{name}` must be a number. Received: {name}={value!r}"
        )
    if not math.isfinite(value):
        raise ValueError(
            f"Argument `{name}` must be finite. Received: {name}={value!r}"
        )
    if low is not None:
        bad = value < low if low_inclusive else value <= low
        if bad:
            op = ">=" if low_inclusive else ">"
            raise ValueError(
                f"Argument `{name}` must be {op} {low}. "
                f"Received: {name}={value!r}"
            )
    if high is not None:
        bad = value > high if high_inclusive else value >= high
        if bad:
            op = "<=" if high_inclusive else "<"
            raise ValueError(
                f"Argument `{name}` must be {op} {high}. "
                f"Received: {name}={value!r}"
            )
    return value


def check_choice(name, value, choices):
    """Check that `value` is one of `choices`.

    Args:
        name: The argument's name.
        value: The received value.
        choices: The allowed values.

    Returns:
        The value.

    Raises:
        ValueError: If the value is not one of `choices`.
    """
    if value not in choices:
        raise ValueError(
            f"Argument `{name}` must be one of {sorted(choices)}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_backend(what, unsupported, reason):
    """Refuse to build `what` on a Keras backend it cannot work on.

    Args:
        what: The component, as the user wrote it (e.g. `"Pruning"`).
        unsupported: The backend names (`keras.backend.backend()`) refused.
        reason: Why, in a few words, for the message.

    Raises:
        NotImplementedError: On a backend in `unsupported`.
    """
    backend = keras.backend.backend()
    if backend in unsupported:
        raise NotImplementedError(
            f"{what} does not work on the {backend} backend: {reason}. "
            f"Received: backend={backend!r}"
        )


def check_schedule(name, schedule):
    """`schedule` as a `LearningRateSchedule` (a serialized dict is
    deserialized); anything else is refused with a `TypeError`."""
    if isinstance(schedule, dict):
        schedule = keras.optimizers.schedules.deserialize(schedule)
    schedules = keras.optimizers.schedules
    if not isinstance(schedule, schedules.LearningRateSchedule):
        raise TypeError(
            f"Argument `{name}` must be a "
            "`keras.optimizers.schedules.LearningRateSchedule`. "
            f"Received: {name}={schedule!r}"
        )
    return schedule
