"""`ReduceLROnPlateau` that also works on top of learning-rate schedules."""

import warnings

import keras

from callbacks import _keras_compat as keras_compat
from callbacks import _lr_control
from callbacks._validation import check_number


class ReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Reduce the learning rate when a metric stops improving, also on top
    of a schedule.

    Same arguments and behaviour as `keras.callbacks.ReduceLROnPlateau`,
    but the reduction is a factor that multiplies the learning rate
    in-graph, so it works whatever drives the learning rate: a float, a
    `LearningRateSchedule` given to the optimizer (Keras's own callback
    raises "learning rate is not settable" there), or one of our schedule
    callbacks (`OneCycleLR`, `WarmupCosine`, ...), in any callback order.
    After `fit`, a reduced float learning rate stays reduced (as with
    Keras's callback); a schedule comes back unscaled.

    `min_lr` bounds what the reductions do: a reduced rate is never below
    `min_lr`, but a schedule may itself decay below it, and a
    `DivergenceGuard` in the same `fit` may still lower it (its reductions
    lower the bound with the rate).

    The `learning_rate` it writes into the epoch logs (as Keras's callback
    does) is the rate of the epoch's last step, before any reduction.

    Args:
        monitor: Quantity to monitor. Defaults to `"val_loss"`.
        factor: Factor by which the learning rate is multiplied, in (0, 1).
            Defaults to `0.1`.
        patience: Epochs with no improvement before a reduction, >= 0.
            Defaults to `10`.
        verbose: Whether to print a message at each reduction.
            Defaults to `0`.
        mode: `"auto"`, `"min"` or `"max"`. Defaults to `"auto"`.
        min_delta: Minimal change that counts as an improvement (its
            absolute value is used, as in Keras). Defaults to `1e-4`.
        cooldown: Epochs to wait after a reduction, >= 0. Defaults to `0`.
        min_lr: Lower bound on reduced learning rates, >= 0.
            Defaults to `0.0`.
        **kwargs: Passed to `keras.callbacks.ReduceLROnPlateau`.

    Raises:
        TypeError: If a numeric argument is not a number (or not an
            integer, for `patience` and `cooldown`).
        ValueError: If a numeric argument is out of range.

    Example:

    ```python
    opt = keras.optimizers.SGD(
        keras.optimizers.schedules.CosineDecay(0.1, 10_000))
    model.compile(opt, "sparse_categorical_crossentropy")
    model.fit(x, y, validation_split=0.2, epochs=20,
              callbacks=[callbacks.ReduceLROnPlateau(patience=2)])
    ```
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10,
                 verbose=0, mode="auto", min_delta=1e-4, cooldown=0,
                 min_lr=0.0, **kwargs):
        factor = check_number("factor", factor, low=0.0, high=1.0,
                              low_inclusive=False, high_inclusive=False)
        patience = check_number("patience", patience, low=0, integer=True)
        min_delta = check_number("min_delta", min_delta)
        cooldown = check_number("cooldown", cooldown, low=0, integer=True)
        min_lr = check_number("min_lr", min_lr, low=0.0)
        super().__init__(monitor=monitor, factor=factor, patience=patience,
                         verbose=verbose, mode=mode, min_delta=min_delta,
                         cooldown=cooldown, min_lr=min_lr, **kwargs)

    def on_train_begin(self, logs=None):
        # Keras 3.13 keeps `best` from an earlier `fit`; 3.15 resets it.
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0
        self._control = _lr_control.attach(self, self.model)
        self._control.set_floor(self.min_lr)

    def on_epoch_end(self, epoch, logs=None):
        # Keras's own loop (3.15), with the reduction through the LR
        # controller: Keras's callback sets `optimizer.learning_rate`, which
        # a schedule refuses (only Keras >= 3.14 routes it through a hook).
        keras_compat.settle_monitor_mode(self)
        optimizer = self.model.optimizer
        if logs is not None:
            # The rate of the epoch's last step: with a schedule, the next
            # step's (what Keras logs) is not the rate this epoch used.
            logs["learning_rate"] = _lr_control.current_learning_rate(
                optimizer, _lr_control.last_step(optimizer))
        logs = logs or {}
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                "Learning rate reduction is conditioned on metric "
                f"`{self.monitor}` which is not available. Available metrics "
                f"are: {','.join(list(logs.keys()))}.",
                stacklevel=2,
            )
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if keras_compat.monitor_improved(self, current):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce(epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def on_train_end(self, logs=None):
        _lr_control.detach(self, self.model)

    def _reduce(self, epoch):
        optimizer = self.model.optimizer
        old_lr = _lr_control.current_learning_rate(optimizer)
        if old_lr <= self.min_lr:
            return False
        scale = float(self._control.scale.numpy()) * self.factor
        self._control.set_scale(scale)
        if self.verbose > 0:
            new_lr = _lr_control.current_learning_rate(optimizer)
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning "
                  f"rate to {new_lr:.4g} (scale {scale:.4g}).")
        return True
