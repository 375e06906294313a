"""Learning-rate schedules, composed from small pieces.

Every schedule here is a `keras.optimizers.schedules.LearningRateSchedule`
computed with `keras.ops` on the step, so it runs inside the traced train
step (no per-batch Python), serializes with the model and reloads with
`safe_mode=True`.

Building blocks:

* `ConstantSchedule`, `LinearSchedule`, `CosineSchedule`: one phase each.
* `JoinSchedules`: runs schedules one after another; each phase sees the
  step counted from its own start (as optax's `join_schedules`).

Named schedules built from them: `WarmupCosineDecay`, `OneCycleSchedule`
(PyTorch `OneCycleLR` semantics), `Warmup` (linear warmup before ANY
schedule), plus `CyclicalLearningRate` and `StepDecay`, which are one
formula each.
"""

import itertools
import math

import keras
from keras import ops

from callbacks._api import register
from callbacks._validation import check_choice, check_number, check_schedule

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule


def _step(step):
    return ops.cast(step, "float32")


def _deserialize(schedule):
    if isinstance(schedule, dict):
        return keras.optimizers.schedules.deserialize(schedule)
    return schedule


def _check_sequence(name, value):
    """`value` as a list; a single number or a string is refused."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(
            f"Argument `{name}` must be a list of step numbers. "
            f"Received: {name}={value!r}"
        )
    return list(value)


@register
class ConstantSchedule(LearningRateSchedule):
    """A constant learning rate, as a schedule.

    Args:
        value: The learning rate. Defaults to `1e-3`.

    Example:

    >>> float(ConstantSchedule(0.1)(1000))
    0.1...
    """

    def __init__(self, value=1e-3):
        self.value = check_number("value", value, low=0.0)

    def __call__(self, step):
        return ops.cast(self.value, "float32") + 0.0 * _step(step)

    def get_config(self):
        return {"value": self.value}


class _Interpolation(LearningRateSchedule):
    """One phase from `initial_value` to `final_value` over
    `transition_steps`, flat after; subclasses give the share of the way
    still to go, from 1 at the start to 0 at the end."""

    def __init__(self, initial_value, final_value, transition_steps):
        self.initial_value = check_number("initial_value", initial_value,
                                          low=0.0)
        self.final_value = check_number("final_value", final_value, low=0.0)
        self.transition_steps = check_number(
            "transition_steps", transition_steps, low=0.0)

    def _remaining(self, frac):
        raise NotImplementedError("Subclasses define the phase's shape.")

    def __call__(self, step):
        t = _step(step)
        if self.transition_steps == 0:
            return ops.cast(self.final_value, "float32") + 0.0 * t
        frac = ops.clip(t / self.transition_steps, 0.0, 1.0)
        # Anchored at the final value so the end of a phase is exact.
        return self.final_value + (
            self.initial_value - self.final_value) * self._remaining(frac)

    def get_config(self):
        return {
            "initial_value": self.initial_value,
            "final_value": self.final_value,
            "transition_steps": self.transition_steps,
        }


@register
class LinearSchedule(_Interpolation):
    """Linear interpolation from `initial_value` to `final_value`.

    `lr(t) = initial + (final - initial) * min(t, T) / T` with
    `T = transition_steps`; flat at `final_value` after `T` steps (and
    equal to `final_value` from step 0 when `T == 0`).

    Args:
        initial_value: Value at step 0.
        final_value: Value from step `transition_steps` on.
        transition_steps: Length of the ramp in steps (may be fractional).

    Example:

    >>> float(LinearSchedule(0.0, 1.0, 10)(5))
    0.5
    """

    def _remaining(self, frac):
        return 1.0 - frac


@register
class CosineSchedule(_Interpolation):
    """Half-cosine annealing from `initial_value` to `final_value`.

    `lr(t) = final + (initial - final) * (1 + cos(pi * min(t, T) / T)) / 2`
    with `T = transition_steps`; flat at `final_value` after `T` steps.
    Works in both directions (a rise when `final_value > initial_value`).

    Args:
        initial_value: Value at step 0.
        final_value: Value from step `transition_steps` on.
        transition_steps: Length of the annealing in steps (may be
            fractional).

    Example:

    >>> round(float(CosineSchedule(1.0, 0.0, 10)(5)), 6)
    0.5
    """

    def _remaining(self, frac):
        return 0.5 * (1.0 + ops.cos(math.pi * frac))


@register
class JoinSchedules(LearningRateSchedule):
    """Runs several schedules one after another.

    Schedule `i` is active from `boundaries[i - 1]` (0 for the first) up to
    `boundaries[i]`, and is evaluated at the step counted from the start of
    its phase: `schedules[i](step - boundaries[i - 1])`.

    Args:
        schedules: A list of `n` `LearningRateSchedule`s.
        boundaries: A list of `n - 1` increasing step numbers (may be
            fractional).

    Example:

    >>> warmup_then_cosine = JoinSchedules(
    ...     [LinearSchedule(0.0, 0.1, 100), CosineSchedule(0.1, 0.0, 900)],
    ...     boundaries=[100],
    ... )
    >>> round(float(warmup_then_cosine(550)), 4)
    0.05

    References:
        - The `join_schedules` combinator of optax.
    """

    def __init__(self, schedules, boundaries):
        if not isinstance(schedules, (list, tuple)) or not schedules:
            raise ValueError(
                "Argument `schedules` must be a non-empty list of schedules. "
                f"Received: schedules={schedules!r}"
            )
        self.schedules = [
            check_schedule("schedules", s) for s in schedules]
        boundaries = _check_sequence("boundaries", boundaries)
        if len(boundaries) != len(self.schedules) - 1:
            raise ValueError(
                "Argument `boundaries` must have one entry fewer than "
                f"`schedules` ({len(self.schedules) - 1}). "
                f"Received: boundaries={boundaries!r}"
            )
        for b in boundaries:
            check_number("boundaries", b, low=0.0)
        if any(b2 < b1 for b1, b2 in itertools.pairwise(boundaries)):
            raise ValueError(
                "Argument `boundaries` must be non-decreasing. "
                f"Received: boundaries={boundaries!r}"
            )
        self.boundaries = boundaries

    def __call__(self, step):
        t = _step(step)
        lr = self.schedules[-1](t - (self.boundaries[-1]
                                     if self.boundaries else 0.0))
        # Walk back from the last phase: earlier phases win below their end.
        for i in range(len(self.boundaries) - 1, -1, -1):
            start = self.boundaries[i - 1] if i > 0 else 0.0
            lr = ops.where(t < self.boundaries[i],
                           self.schedules[i](t - start), lr)
        return lr

    def get_config(self):
        return {
            "schedules": [
                keras.optimizers.schedules.serialize(s)
                for s in self.schedules
            ],
            "boundaries": list(self.boundaries),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedules"] = [_deserialize(s) for s in config["schedules"]]
        return cls(**config)


class _ComposedSchedule(LearningRateSchedule):
    """Base of named schedules that delegate to a composed one."""

    def __call__(self, step):
        return self._schedule(step)


@register
class WarmupCosineDecay(LearningRateSchedule):
    """Linear warmup, optional hold, then cosine decay.

    The learning rate rises linearly from `initial_learning_rate` to
    `peak_learning_rate` over `warmup_steps`, stays at the peak for
    `hold_steps`, then follows a half cosine down to
    `alpha * peak_learning_rate`, reached at `total_steps`, and stays there.

    Args:
        peak_learning_rate: The maximal learning rate.
        total_steps: Step at which the decay ends.
        warmup_steps: Length of the linear warmup. Defaults to `0`.
        initial_learning_rate: Learning rate at step 0. Defaults to `0.0`.
        hold_steps: Steps spent at the peak after warmup. Defaults to `0`.
        alpha: Final learning rate as a fraction of the peak.
            Defaults to `0.0`.

    Raises:
        ValueError: If an argument is out of range or
            `warmup_steps + hold_steps > total_steps`.

    Example:

    >>> s = WarmupCosineDecay(1e-3, total_steps=1000, warmup_steps=100)
    >>> round(float(s(100)), 6)
    0.001

    References:
        - Loshchilov & Hutter, 2017. SGDR: Stochastic Gradient Descent with
          Warm Restarts. https://arxiv.org/abs/1608.03983
        - Goyal et al., 2017. Accurate, Large Minibatch SGD: Training
          ImageNet in 1 Hour. https://arxiv.org/abs/1706.02677
    """

    def __init__(self, peak_learning_rate, total_steps, warmup_steps=0,
                 initial_learning_rate=0.0, hold_steps=0, alpha=0.0):
        self.peak_learning_rate = check_number(
            "peak_learning_rate", peak_learning_rate, low=0.0,
            low_inclusive=False)
        self.total_steps = check_number("total_steps", total_steps, low=1,
                                        integer=True)
        self.warmup_steps = check_number("warmup_steps", warmup_steps, low=0,
                                         integer=True)
        self.initial_learning_rate = check_number(
            "initial_learning_rate", initial_learning_rate, low=0.0)
        self.hold_steps = check_number("hold_steps", hold_steps, low=0,
                                       integer=True)
        self.alpha = check_number("alpha", alpha, low=0.0, high=1.0)
        if self.warmup_steps > self.total_steps:
            raise ValueError(
                "Argument `warmup_steps` must be <= `total_steps` "
                f"({self.total_steps}). Received: "
                f"warmup_steps={self.warmup_steps}"
            )
        if self.warmup_steps + self.hold_steps > self.total_steps:
            raise ValueError(
                "Argument `hold_steps` must be <= `total_steps - "
                f"warmup_steps` ({self.total_steps - self.warmup_steps}). "
                f"Received: hold_steps={self.hold_steps}"
            )

    def __call__(self, step):
        # One closed-form expression rather than a `JoinSchedules` of three
        # phases: optimizers evaluate the schedule once per step and AdamW
        # once more per decayed variable, so its size multiplies into the
        # traced train step (27 graph ops per evaluation here against 48).
        t = _step(step)
        peak = self.peak_learning_rate
        low = self.alpha * peak
        decay_start = self.warmup_steps + self.hold_steps
        decay_steps = self.total_steps - decay_start
        if decay_steps > 0:
            # Clipped below at 0: the hold phase sits at the peak.
            frac = ops.clip((t - decay_start) * (1.0 / decay_steps), 0.0, 1.0)
            lr = low + (0.5 * (peak - low)) * (1.0 + ops.cos(math.pi * frac))
        else:
            lr = ops.where(t < decay_start, peak, low)
        if self.warmup_steps > 0:
            slope = (peak - self.initial_learning_rate) / self.warmup_steps
            lr = ops.where(t < self.warmup_steps,
                           self.initial_learning_rate + slope * t, lr)
        return lr

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "initial_learning_rate": self.initial_learning_rate,
            "hold_steps": self.hold_steps,
            "alpha": self.alpha,
        }


class _StartValue(LearningRateSchedule):
    """`value` up to step 0, `schedule(step)` after (internal)."""

    def __init__(self, value, schedule):
        self.value = value
        self.schedule = schedule

    def __call__(self, step):
        t = _step(step)
        return ops.where(t <= 0.0, self.value, self.schedule(t))


def one_cycle_phases(start, peak, end, total_steps, pct_start):
    """Two cosine phases start -> peak -> end, PyTorch OneCycleLR timing.

    The value is `start` at step 0, `peak` at step
    `pct_start * total_steps - 1` and `end` at step `total_steps - 1` (the
    last step of a `total_steps`-long run). When `pct_start * total_steps
    <= 1` the rise is shorter than one step: step 0 is still at `start`,
    and the descent from `peak` begins right after it. Also used for the
    inverse momentum cycle of `callbacks.OneCycleLR`.

    Returns:
        A `LearningRateSchedule`.
    """
    up = pct_start * total_steps - 1.0
    if up <= 0.0:
        # The limit of the phases below as `up` falls to 0. PyTorch instead
        # begins partway down from the peak (`up < 0`) or divides by zero
        # (`up == 0`): either drops the warmup that `start` is there for.
        return _StartValue(
            start, CosineSchedule(peak, end, total_steps - 1.0))
    down = (total_steps - 1.0) - up
    return JoinSchedules(
        [CosineSchedule(start, peak, up), CosineSchedule(peak, end, down)],
        boundaries=[up],
    )


@register
class OneCycleSchedule(_ComposedSchedule):
    """The 1cycle policy: cosine up to a peak, then cosine far down.

    Follows PyTorch's `OneCycleLR` (`anneal_strategy="cos"`,
    `three_phase=False`): the learning rate starts at
    `maximal_learning_rate / div_factor`, rises to `maximal_learning_rate`
    at step `pct_start * total_steps - 1`, then anneals to
    `maximal_learning_rate / div_factor / final_div_factor` at step
    `total_steps - 1`, and stays there.

    When `pct_start * total_steps <= 1` the rise is shorter than one step:
    step 0 still uses the initial learning rate and the annealing from
    `maximal_learning_rate` starts right after it, so step 1 is already
    below the peak. (PyTorch there skips the initial rate and starts near
    the peak, or divides by zero when `pct_start * total_steps == 1`.)

    Args:
        maximal_learning_rate: The peak learning rate.
        total_steps: Number of steps of the cycle (epochs x steps per
            epoch).
        pct_start: Fraction of the cycle spent rising. Defaults to `0.25`.
        div_factor: Initial LR is `maximal_learning_rate / div_factor`.
            Defaults to `25.0`.
        final_div_factor: Final LR is initial LR / `final_div_factor`.
            Defaults to `1e4`.

    Raises:
        ValueError: If an argument is out of range.

    Example:

    >>> s = OneCycleSchedule(0.1, total_steps=100)
    >>> round(float(s(0)), 6), round(float(s(24)), 6)
    (0.004, 0.1)

    References:
        - Smith & Topin, 2017. Super-Convergence: Very Fast Training of
          Neural Networks Using Large Learning Rates.
          https://arxiv.org/abs/1708.07120
    """

    def __init__(self, maximal_learning_rate, total_steps, pct_start=0.25,
                 div_factor=25.0, final_div_factor=1e4):
        self.maximal_learning_rate = check_number(
            "maximal_learning_rate", maximal_learning_rate, low=0.0,
            low_inclusive=False)
        self.total_steps = check_number("total_steps", total_steps, low=2,
                                        integer=True)
        self.pct_start = check_number("pct_start", pct_start, low=0.0,
                                      high=1.0, low_inclusive=False,
                                      high_inclusive=False)
        self.div_factor = check_number("div_factor", div_factor, low=1.0)
        self.final_div_factor = check_number(
            "final_div_factor", final_div_factor, low=1.0)
        initial = self.maximal_learning_rate / self.div_factor
        self._schedule = one_cycle_phases(
            initial, self.maximal_learning_rate,
            initial / self.final_div_factor, self.total_steps, self.pct_start)

    def get_config(self):
        return {
            "maximal_learning_rate": self.maximal_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
        }


@register
class CyclicalLearningRate(LearningRateSchedule):
    """Cyclical learning rate (Smith, 2017).

    With `cycle = floor(1 + step / (2 * step_size))` and
    `x = |step / step_size - 2 * cycle + 1|`:
    `lr = initial + (maximal - initial) * max(0, 1 - x) * scale`, where
    `scale` is `1` (`"triangular"`), `1 / 2 ** (cycle - 1)`
    (`"triangular2"`) or `gamma ** step` (`"exp_range"`).

    Args:
        initial_learning_rate: Lower bound of the cycle.
        maximal_learning_rate: Upper bound of the cycle.
        step_size: Half a cycle, in steps (2-10 epochs in the paper).
        mode: `"triangular"`, `"triangular2"` or `"exp_range"`.
            Defaults to `"triangular"`.
        gamma: Decay base of `"exp_range"`, in (0, 1]. Defaults to `1.0`.

    Raises:
        ValueError: If an argument is out of range or the mode unknown.

    Example:

    >>> clr = CyclicalLearningRate(1e-4, 1e-2, step_size=2000)
    >>> round(float(clr(2000)), 6)
    0.01

    References:
        - Smith, 2017. Cyclical Learning Rates for Training Neural
          Networks. https://arxiv.org/abs/1506.01186
    """

    MODES = ("triangular", "triangular2", "exp_range")

    def __init__(self, initial_learning_rate, maximal_learning_rate,
                 step_size, mode="triangular", gamma=1.0):
        self.initial_learning_rate = check_number(
            "initial_learning_rate", initial_learning_rate, low=0.0)
        self.maximal_learning_rate = check_number(
            "maximal_learning_rate", maximal_learning_rate, low=0.0)
        if self.maximal_learning_rate < self.initial_learning_rate:
            raise ValueError(
                "Argument `maximal_learning_rate` must be >= "
                f"`initial_learning_rate` ({self.initial_learning_rate}). "
                f"Received: maximal_learning_rate={maximal_learning_rate}"
            )
        self.step_size = check_number("step_size", step_size, low=0.0,
                                      low_inclusive=False)
        self.mode = check_choice("mode", mode, self.MODES)
        self.gamma = check_number("gamma", gamma, low=0.0, high=1.0,
                                  low_inclusive=False)

    def __call__(self, step):
        t = _step(step)
        cycle = ops.floor(1.0 + t / (2.0 * self.step_size))
        x = ops.abs(t / self.step_size - 2.0 * cycle + 1.0)
        if self.mode == "triangular":
            scale = 1.0
        elif self.mode == "triangular2":
            scale = 1.0 / ops.power(2.0, cycle - 1.0)
        else:
            scale = ops.power(ops.cast(self.gamma, "float32"), t)
        amplitude = self.maximal_learning_rate - self.initial_learning_rate
        return self.initial_learning_rate + amplitude * ops.maximum(
            0.0, 1.0 - x) * scale

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "maximal_learning_rate": self.maximal_learning_rate,
            "step_size": self.step_size,
            "mode": self.mode,
            "gamma": self.gamma,
        }


@register
class StepDecay(LearningRateSchedule):
    """Multiplies the learning rate by `factor` at fixed steps.

    Either every `step_size` steps
    (`lr = initial * factor ** floor(step / step_size)`) or at each of the
    given `boundaries` (`lr = initial * factor ** #{b <= step}`).

    Args:
        initial_learning_rate: Learning rate at step 0.
        factor: Multiplier applied at each drop, in (0, 1].
            Defaults to `0.1`.
        step_size: Steps between drops. Give this or `boundaries`.
            Defaults to `None`.
        boundaries: Increasing steps at which the LR drops. Defaults to
            `None`.

    Raises:
        ValueError: If both or neither of `step_size` and `boundaries` are
            given, or a value is out of range.

    Example:

    >>> s = StepDecay(0.1, factor=0.5, step_size=10)
    >>> round(float(s(25)), 6)
    0.025
    """

    def __init__(self, initial_learning_rate, factor=0.1, step_size=None,
                 boundaries=None):
        self.initial_learning_rate = check_number(
            "initial_learning_rate", initial_learning_rate, low=0.0)
        self.factor = check_number("factor", factor, low=0.0, high=1.0,
                                   low_inclusive=False)
        if (step_size is None) == (boundaries is None):
            raise ValueError(
                "Exactly one of `step_size` and `boundaries` must be given. "
                f"Received: step_size={step_size!r}, "
                f"boundaries={boundaries!r}"
            )
        self.step_size = check_number("step_size", step_size, low=1,
                                      integer=True, allow_none=True)
        if boundaries is not None:
            boundaries = [check_number("boundaries", b, low=0, integer=True)
                          for b in _check_sequence("boundaries", boundaries)]
            if not boundaries or any(
                    b2 <= b1 for b1, b2 in itertools.pairwise(boundaries)):
                raise ValueError(
                    "Argument `boundaries` must be a non-empty, strictly "
                    f"increasing list. Received: boundaries={boundaries!r}"
                )
        self.boundaries = boundaries

    def __call__(self, step):
        t = _step(step)
        if self.step_size is not None:
            drops = ops.floor(t / self.step_size)
        else:
            drops = sum(ops.cast(t >= b, "float32") for b in self.boundaries)
        return self.initial_learning_rate * ops.power(
            ops.cast(self.factor, "float32"), drops)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "factor": self.factor,
            "step_size": self.step_size,
            "boundaries": self.boundaries,
        }


@register
class Warmup(LearningRateSchedule):
    """Adds a linear warmup in front of any schedule.

    For `step < warmup_steps` the learning rate rises linearly from
    `initial_learning_rate` to `schedule(0)`; afterwards it is
    `schedule(step - warmup_steps)`: the wrapped schedule starts when the
    warmup ends, so the two meet continuously at the boundary. Works with
    Keras's schedules and ours; a float becomes a constant schedule.

    Args:
        schedule: A `LearningRateSchedule` or a float learning rate.
        warmup_steps: Length of the warmup in steps (> 0).
        initial_learning_rate: Learning rate at step 0. Defaults to `0.0`.

    Raises:
        TypeError: If `schedule` is neither a schedule nor a number.
        ValueError: If `warmup_steps <= 0` or the start LR is negative.

    Example:

    >>> base = keras.optimizers.schedules.ExponentialDecay(0.1, 100, 0.5)
    >>> s = Warmup(base, warmup_steps=10)
    >>> round(float(s(5)), 6), round(float(s(110)), 6)
    (0.05, 0.05)

    References:
        - Goyal et al., 2017. Accurate, Large Minibatch SGD: Training
          ImageNet in 1 Hour. https://arxiv.org/abs/1706.02677
    """

    def __init__(self, schedule, warmup_steps, initial_learning_rate=0.0):
        if isinstance(schedule, (int, float)) and not isinstance(
                schedule, bool):
            schedule = ConstantSchedule(float(schedule))
        self.schedule = check_schedule("schedule", schedule)
        self.warmup_steps = check_number("warmup_steps", warmup_steps, low=0,
                                         low_inclusive=False, integer=True)
        self.initial_learning_rate = check_number(
            "initial_learning_rate", initial_learning_rate, low=0.0)

    def __call__(self, step):
        t = _step(step)
        target = ops.cast(self.schedule(0), "float32")
        frac = ops.clip(t / self.warmup_steps, 0.0, 1.0)
        warm = self.initial_learning_rate + (
            target - self.initial_learning_rate) * frac
        after = ops.cast(self.schedule(ops.maximum(t - self.warmup_steps,
                                                   0.0)), "float32")
        return ops.where(t < self.warmup_steps, warm, after)

    def get_config(self):
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "warmup_steps": self.warmup_steps,
            "initial_learning_rate": self.initial_learning_rate,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = _deserialize(config["schedule"])
        return cls(**config)
