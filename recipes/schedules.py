"""Learning-rate schedules by name: one registry for recipes, CLI and tuner.

A recipe's `schedule="..."` argument, the command line's `--schedule`
choices and the tuner's `schedule` knob all read this registry. Each entry
turns a phase's peak learning rate and length (in optimizer steps) into a
schedule from `callbacks`; adding a schedule is one `register_schedule`
call.
"""

import dataclasses
from collections.abc import Callable

import callbacks as cb
from callbacks._internal import check_number
from recipes._registry import Registry

__all__ = [
    "ScheduleInfo",
    "get_schedule_info",
    "list_schedules",
    "make_schedule",
    "register_schedule",
]


@dataclasses.dataclass(frozen=True)
class ScheduleInfo:
    """A schedule registry entry.

    Attributes:
        name: The registered name.
        factory: Callable `(peak_learning_rate, total_steps, warmup_steps)`
            returning a `keras.optimizers.schedules.LearningRateSchedule`
            or a float; `total_steps` is at least 1.
        description: One line for listings and help texts.
        built_from: What the factory builds, e.g.
            `"callbacks.WarmupCosineDecay"`.
    """

    name: str
    factory: Callable
    description: str
    built_from: str


_REGISTRY = Registry("schedule")


def register_schedule(name, factory, *, description, built_from):
    """Add a schedule to the registry.

    Args:
        name: Lower-case name, unique (what users type).
        factory: Callable `(peak_learning_rate, total_steps, warmup_steps)`
            returning a `LearningRateSchedule` or a float.
        description: One-line description.
        built_from: What the factory builds (a class path or `"float"`).

    Returns:
        The new `ScheduleInfo`.

    Raises:
        ValueError: If `name` is already registered.

    Example:

    >>> info = register_schedule(
    ...     "half_constant", lambda peak, total, warmup: peak / 2,
    ...     description="Half the peak, constant.", built_from="float")
    >>> make_schedule("half_constant", 0.1, total_steps=10)
    0.05
    >>> _REGISTRY.remove("half_constant")
    """
    return _REGISTRY.add(ScheduleInfo(name, factory, description,
                                      built_from))


def list_schedules():
    """Names of the registered schedules, in registration order.

    The recipes' default, `"warmup_cosine"`, comes first; the command line
    and the tuner's `schedule` knob offer the names in this order.

    Returns:
        A list of strings.

    Example:

    >>> list_schedules()
    ['warmup_cosine', 'one_cycle', 'cyclical', 'constant']
    """
    return _REGISTRY.names()


def get_schedule_info(name):
    """The `ScheduleInfo` registered under `name`.

    Args:
        name: A name from `list_schedules()`.

    Returns:
        The `ScheduleInfo`.

    Raises:
        ValueError: If no schedule has this name.

    Example:

    >>> get_schedule_info("one_cycle").built_from
    'callbacks.OneCycleSchedule'
    """
    return _REGISTRY.get("name", name)


def make_schedule(schedule, peak_learning_rate, total_steps, warmup_steps=0):
    """A learning-rate schedule by name, for one training phase.

    Registered schedules:

    * `"warmup_cosine"`: `callbacks.WarmupCosineDecay`, linear warmup over
      `warmup_steps` (at most `total_steps - 1`) then cosine decay to 0 at
      `total_steps`.
    * `"one_cycle"`: `callbacks.OneCycleSchedule` over `total_steps` (Smith
      & Topin); needs `total_steps >= 2`.
    * `"cyclical"`: `callbacks.CyclicalLearningRate`, triangular between
      `peak_learning_rate / 10` and the peak, half-cycles of
      `total_steps // 4` steps (two cycles).
    * `"constant"`: the float `peak_learning_rate`.

    Only `"warmup_cosine"` uses `warmup_steps`.

    Args:
        schedule: A name from `list_schedules()`.
        peak_learning_rate: Highest learning rate, > 0.
        total_steps: Optimizer steps of the phase (0 counts as 1).
        warmup_steps: Warmup steps, >= 0. Defaults to `0`.

    Returns:
        A `keras.optimizers.schedules.LearningRateSchedule`, or a float for
        `"constant"`.

    Raises:
        ValueError: If `schedule` is not registered or a number is out of
            range.
        TypeError: If a number argument is not a number.

    Example:

    >>> s = make_schedule("warmup_cosine", 1e-3, total_steps=100,
    ...                   warmup_steps=10)
    >>> round(float(s(10)), 6), round(float(s(100)), 6)
    (0.001, 0.0)
    >>> make_schedule("constant", 1e-3, total_steps=100)
    0.001

    References:
        - Loshchilov & Hutter, 2017. SGDR: Stochastic Gradient Descent with
          Warm Restarts. https://arxiv.org/abs/1608.03983
        - Smith & Topin, 2017. Super-Convergence.
          https://arxiv.org/abs/1708.07120
        - Smith, 2017. Cyclical Learning Rates for Training Neural
          Networks. https://arxiv.org/abs/1506.01186
    """
    info = _REGISTRY.get("schedule", schedule)
    check_number("peak_learning_rate", peak_learning_rate, low=0.0,
                 low_inclusive=False)
    total_steps = check_number("total_steps", total_steps, low=0,
                               integer=True)
    warmup_steps = check_number("warmup_steps", warmup_steps, low=0,
                                integer=True)
    return info.factory(peak_learning_rate, max(total_steps, 1),
                        warmup_steps)


def _warmup_cosine(peak, total_steps, warmup_steps):
    # At least one step of decay: a warmup as long as the phase would end
    # it at the peak.
    return cb.WarmupCosineDecay(peak, total_steps,
                                warmup_steps=min(warmup_steps,
                                                 total_steps - 1))


def _cyclical(peak, total_steps, warmup_steps):
    return cb.CyclicalLearningRate(peak / 10, peak,
                                   step_size=max(total_steps // 4, 1))


register_schedule(
    "warmup_cosine", _warmup_cosine, built_from="callbacks.WarmupCosineDecay",
    description="Linear warmup, then cosine decay to 0 (the default).")
register_schedule(
    "one_cycle", lambda peak, total, warmup: cb.OneCycleSchedule(peak, total),
    built_from="callbacks.OneCycleSchedule",
    description="1cycle: cosine up to the peak, then far down "
    "(Smith & Topin, 2017).")
register_schedule(
    "cyclical", _cyclical, built_from="callbacks.CyclicalLearningRate",
    description="Triangular cycles between peak/10 and the peak, two "
    "cycles (Smith, 2017).")
register_schedule(
    "constant", lambda peak, total, warmup: float(peak), built_from="float",
    description="The peak learning rate throughout.")
