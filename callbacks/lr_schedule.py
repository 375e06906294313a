"""Callbacks that drive the learning rate by a schedule, in-graph.

`ScheduleLR` is the one mechanism; `CyclicalLR`, `WarmupCosine` and
`OneCycleLR` only build its schedule from their arguments.
`restore_optimizer` undoes what they install when `fit` was interrupted.
"""

import keras

from callbacks import _lr_control
from callbacks import schedules as schedules_lib
from callbacks._validation import check_backend, check_number, check_schedule


class ScheduleLR(keras.callbacks.Callback):
    """Drives the optimizer's learning rate by a schedule, at no per-batch
    cost.

    Add it to `model.fit(callbacks=[...])` on a model compiled with a plain
    float learning rate. At train begin the schedule is installed inside
    the traced train step (the step counter is read in-graph), so:

    * no Python runs per batch (no host sync, no slowdown);
    * every step gets its exact learning rate, also with
      `steps_per_execution > 1`, where per-batch Python callbacks only fire
      every N steps;
    * after `fit` the optimizer's float learning rate comes back, and the
      next `fit` traces again, with or without a schedule callback.

    Steps count from the first step of this `fit` (`restart=True`), moved
    forward by `initial_epoch * steps_per_epoch` when `fit` resumes at a
    later epoch; with `restart=False` the schedule reads the optimizer's
    global step count, which continues across `fit` calls.

    Args:
        schedule: A `keras.optimizers.schedules.LearningRateSchedule`
            (Keras's or ours).
        restart: Whether the schedule's step 0 is the first step of each
            `fit`. Defaults to `True`.
        momentum_schedule: Optional schedule for the optimizer's `beta_1`
            (Adam family, Lion, Lamb) or `momentum` (SGD, RMSprop), or
            both of Muon's `momentum` and `adam_beta_1`, evaluated
            in-graph on the same step. Defaults to `None`.
        verbose: Whether to print what is installed. Defaults to `0`.

    Raises:
        TypeError: If `schedule` is not a `LearningRateSchedule`.
        NotImplementedError: If `momentum_schedule` is given on the torch
            backend, whose optimizers cannot follow it.
        ValueError: At the first epoch, if `fit` resumes at
            `initial_epoch > 0` with `restart=True` while the number of
            steps per epoch is unknown (a dataset of unknown length
            without `steps_per_epoch`): the schedule could not resume at
            the right step. The optimizer is restored before raising.

    Example:

    ```python
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=...)
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, 1000)
    model.fit(x, y, epochs=5, callbacks=[callbacks.ScheduleLR(schedule)])
    ```
    """

    def __init__(self, schedule, restart=True, momentum_schedule=None,
                 verbose=0):
        super().__init__()
        self.schedule = check_schedule("schedule", schedule)
        if momentum_schedule is not None:
            momentum_schedule = check_schedule(
                "momentum_schedule", momentum_schedule)
            # Keras's torch backend turns `ops.cast(self.beta_1, ...)` into
            # the constant float, while `1 - self.beta_1` follows the
            # schedule: the step would mix two momenta, silently.
            check_backend(
                f"{type(self).__name__} with momentum cycling", ("torch",),
                "Keras's torch optimizers read `beta_1`/`momentum` as the "
                "constant float, which the in-graph momentum schedule cannot "
                "reach; drive the learning rate alone (`cycle_momentum=False`"
                " for OneCycleLR, no `momentum_schedule`)")
        self.momentum_schedule = momentum_schedule
        self.restart = bool(restart)
        self.verbose = verbose
        # Names of the optimizer hyperparameters the schedule drives.
        self.momentum_attributes = ()

    def on_train_begin(self, logs=None):
        self._control = _lr_control.attach(self, self.model)
        self._control.set_schedule(self, self.schedule)
        self._control.set_offset(0)
        self._first_epoch = True
        self.momentum_attributes = ()
        if self.momentum_schedule is not None:
            self.momentum_attributes = self._control.set_momentum_schedule(
                self.momentum_schedule)
            if not self.momentum_attributes and self.verbose:
                print(f"{type(self).__name__}: the optimizer "
                      f"{type(self.model.optimizer).__name__} has no "
                      "`beta_1`, `adam_beta_1` or non-zero `momentum`; "
                      "momentum is not cycled.")
        if self.verbose:
            print(f"{type(self).__name__}: learning rate driven in-graph by "
                  f"{type(self.schedule).__name__}.")

    def on_epoch_begin(self, epoch, logs=None):
        if not self._first_epoch:
            return
        self._first_epoch = False
        if not self.restart:
            return
        steps = self.params.get("steps") if self.params else None
        # `initial_epoch` is only known here, at the first epoch of the fit.
        if epoch and not steps:
            _lr_control.release(self.model)
            raise ValueError(
                f"{type(self).__name__} cannot resume the schedule at "
                f"initial_epoch={epoch}: the number of steps per epoch is "
                "unknown (a dataset of unknown length). Pass "
                "`steps_per_epoch` to `fit`, or use `restart=False` to "
                "continue from the optimizer's step count. Received: "
                f"steps_per_epoch={steps}"
            )
        self._control.set_offset_to_current_step(steps_back=epoch * steps)

    def on_train_end(self, logs=None):
        _lr_control.detach(self, self.model)


class CyclicalLR(ScheduleLR):
    """Cyclical learning rate (Smith, 2017) as an in-graph callback.

    Builds a `callbacks.schedules.CyclicalLearningRate` and drives the
    optimizer with it through `ScheduleLR`.

    Args:
        initial_learning_rate: Lower bound of the cycle.
        maximal_learning_rate: Upper bound of the cycle.
        step_size: Half a cycle, in steps.
        mode: `"triangular"`, `"triangular2"` or `"exp_range"`.
            Defaults to `"triangular"`.
        gamma: Decay base of `"exp_range"`. Defaults to `1.0`.
        restart: See `ScheduleLR`. Defaults to `True`.
        verbose: Defaults to `0`.

    Example:

    ```python
    model.fit(x, y, epochs=10, callbacks=[
        callbacks.CyclicalLR(1e-4, 1e-2, step_size=4 * steps_per_epoch)])
    ```

    References:
        - Smith, 2017. Cyclical Learning Rates for Training Neural
          Networks. https://arxiv.org/abs/1506.01186
    """

    def __init__(self, initial_learning_rate, maximal_learning_rate,
                 step_size, mode="triangular", gamma=1.0, restart=True,
                 verbose=0):
        super().__init__(
            schedules_lib.CyclicalLearningRate(
                initial_learning_rate, maximal_learning_rate, step_size,
                mode=mode, gamma=gamma),
            restart=restart, verbose=verbose)


class WarmupCosine(ScheduleLR):
    """Linear warmup then cosine decay, as an in-graph callback.

    Builds a `callbacks.schedules.WarmupCosineDecay` and drives the
    optimizer with it through `ScheduleLR`.

    Args:
        peak_learning_rate: The maximal learning rate.
        total_steps: Step at which the decay ends (epochs x steps).
        warmup_steps: Length of the linear warmup. Defaults to `0`.
        initial_learning_rate: LR at step 0. Defaults to `0.0`.
        hold_steps: Steps at the peak after warmup. Defaults to `0`.
        alpha: Final LR as a fraction of the peak. Defaults to `0.0`.
        restart: See `ScheduleLR`. Defaults to `True`.
        verbose: Defaults to `0`.

    Example:

    ```python
    model.fit(x, y, epochs=10, callbacks=[callbacks.WarmupCosine(
        1e-3, total_steps=10 * steps_per_epoch, warmup_steps=100)])
    ```
    """

    def __init__(self, peak_learning_rate, total_steps, warmup_steps=0,
                 initial_learning_rate=0.0, hold_steps=0, alpha=0.0,
                 restart=True, verbose=0):
        super().__init__(
            schedules_lib.WarmupCosineDecay(
                peak_learning_rate, total_steps, warmup_steps=warmup_steps,
                initial_learning_rate=initial_learning_rate,
                hold_steps=hold_steps, alpha=alpha),
            restart=restart, verbose=verbose)


class OneCycleLR(ScheduleLR):
    """The 1cycle policy with inverse momentum cycling, in-graph.

    The learning rate follows `callbacks.schedules.OneCycleSchedule`
    (PyTorch `OneCycleLR` semantics). When `cycle_momentum=True`, the
    optimizer's `beta_1` (Adam, AdamW, Nadam, Adamax, Lion, Lamb and ours)
    or `momentum` (SGD, RMSprop) moves inversely: from `max_momentum` down
    to `base_momentum` while the LR rises, and back up while it falls, with
    the same cosine shape and step. `keras.optimizers.Muon` applies the
    learning rate to two steps, so both their coefficients are cycled:
    `momentum` (the orthogonalized step of matrices) and `adam_beta_1`
    (the AdamW step of the other variables). Optimizers without any
    (Adagrad, Adadelta, Ftrl, SGD with `momentum=0`, ...) keep their
    settings; the LR is cycled all the same.

    Args:
        maximal_learning_rate: The peak learning rate.
        total_steps: Steps of the cycle (epochs x steps per epoch).
        pct_start: Fraction of the cycle spent rising. Defaults to `0.25`.
        div_factor: Initial LR = max / `div_factor`. Defaults to `25.0`.
        final_div_factor: Final LR = initial / `final_div_factor`.
            Defaults to `1e4`.
        cycle_momentum: Whether to cycle momentum. Defaults to `True`.
        base_momentum: Momentum at the LR peak. Defaults to `0.85`.
        max_momentum: Momentum at both ends. Defaults to `0.95`.
        restart: See `ScheduleLR`. Defaults to `True`.
        verbose: Defaults to `0`.

    Raises:
        ValueError: If an argument is out of range, or
            `base_momentum > max_momentum`.
        NotImplementedError: If `cycle_momentum=True` on the torch
            backend (see `ScheduleLR`); pass `cycle_momentum=False` there.

    Example:

    ```python
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=...)
    model.fit(x, y, epochs=5, callbacks=[
        callbacks.OneCycleLR(1e-2, total_steps=5 * steps_per_epoch)])
    ```

    References:
        - Smith & Topin, 2017. Super-Convergence.
          https://arxiv.org/abs/1708.07120
        - Smith, 2018. A disciplined approach to neural network
          hyper-parameters. https://arxiv.org/abs/1803.09820
    """

    def __init__(self, maximal_learning_rate, total_steps, pct_start=0.25,
                 div_factor=25.0, final_div_factor=1e4, cycle_momentum=True,
                 base_momentum=0.85, max_momentum=0.95, restart=True,
                 verbose=0):
        schedule = schedules_lib.OneCycleSchedule(
            maximal_learning_rate, total_steps, pct_start=pct_start,
            div_factor=div_factor, final_div_factor=final_div_factor)
        base_momentum = check_number("base_momentum", base_momentum,
                                     low=0.0, high=1.0, high_inclusive=False)
        max_momentum = check_number("max_momentum", max_momentum,
                                    low=0.0, high=1.0, high_inclusive=False)
        if base_momentum > max_momentum:
            raise ValueError(
                "Argument `base_momentum` must be <= `max_momentum` "
                f"({max_momentum}). Received: base_momentum={base_momentum}"
            )
        momentum_schedule = None
        if cycle_momentum:
            momentum_schedule = schedules_lib.one_cycle_phases(
                max_momentum, base_momentum, max_momentum,
                schedule.total_steps, schedule.pct_start)
        super().__init__(schedule, restart=restart,
                         momentum_schedule=momentum_schedule,
                         verbose=verbose)


class LearningRateMonitor(keras.callbacks.Callback):
    """Writes the learning rate (and momentum) into the epoch logs.

    `History`, `CSVLogger`, `TensorBoard` and the progress bar of later
    epochs then see `learning_rate` (the rate used by the last step of the
    epoch) and, where the optimizer has them, `momentum`, `beta_1` or
    `adam_beta_1` (of that step too). Works
    with float learning rates, Keras schedules and our in-graph callbacks.
    Place it before `CSVLogger`/`TensorBoard` in the callback list.

    Args:
        log_momentum: Whether to log momentum / `beta_1` /
            `adam_beta_1` too.
            Defaults to `True`.

    Example:

    ```python
    history = model.fit(x, y, epochs=3, callbacks=[
        callbacks.OneCycleLR(1e-2, total_steps=300),
        callbacks.LearningRateMonitor()])
    history.history["learning_rate"]
    ```
    """

    def __init__(self, log_momentum=True):
        super().__init__()
        self.log_momentum = bool(log_momentum)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        optimizer = self.model.optimizer
        # A `ReduceLROnPlateau` listed earlier may already have changed
        # the rate of the next step; the logs report the last one.
        last_step = _lr_control.last_step(optimizer)
        logs["learning_rate"] = _lr_control.current_learning_rate(
            optimizer, last_step)
        if self.log_momentum:
            logs.update(_lr_control.current_momentum(optimizer, last_step))


def restore_optimizer(model):
    """Give the optimizer back its own learning rate after an interrupted
    `fit`.

    Our learning-rate callbacks (`ScheduleLR`, `CyclicalLR`, `WarmupCosine`,
    `OneCycleLR`, `ReduceLROnPlateau`, `DivergenceGuard`) install an in-graph
    controller on the optimizer at train begin and remove it at train end.
    Keras does not call `on_train_end` when `fit` raises (Ctrl-C, an
    exception in the data or in a callback), so the controller stays: a
    later plain `fit` would follow the old schedule, and setting
    `optimizer.learning_rate` raises "not settable". This removes it and
    leaves the optimizer as a normally ended `fit` would have: the
    compiled learning rate (float or schedule) and momentum come back, and
    reductions by `ReduceLROnPlateau`/`DivergenceGuard` of a float learning
    rate persist, as with Keras's own `ReduceLROnPlateau`.

    A new `fit` with one of our learning-rate callbacks does this by itself,
    and `DivergenceGuard` does it before raising `DivergenceError`; call
    this before a plain `fit`, before changing the learning rate by hand,
    or before saving.

    Args:
        model: A Keras model.

    Returns:
        Whether a controller was installed (and has been removed).

    Example:

    ```python
    try:
        model.fit(x, y, epochs=10, callbacks=[callbacks.OneCycleLR(...)])
    except KeyboardInterrupt:
        callbacks.restore_optimizer(model)
    model.optimizer.learning_rate = 1e-4
    ```
    """
    return _lr_control.release(model)
