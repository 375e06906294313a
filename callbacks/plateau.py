"""`ReduceLROnPlateau` that also works on top of learning-rate schedules."""

import keras

from callbacks import _lr_control


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
    `min_lr`, but a schedule may itself decay below it.

    Args:
        monitor: Quantity to monitor. Defaults to `"val_loss"`.
        factor: Factor by which the learning rate is multiplied.
            Defaults to `0.1`.
        patience: Epochs with no improvement before a reduction.
            Defaults to `10`.
        verbose: Whether to print a message at each reduction.
            Defaults to `0`.
        mode: `"auto"`, `"min"` or `"max"`. Defaults to `"auto"`.
        min_delta: Minimal change that counts as an improvement.
            Defaults to `1e-4`.
        cooldown: Epochs to wait after a reduction. Defaults to `0`.
        min_lr: Lower bound on reduced learning rates. Defaults to `0.0`.

    Raises:
        ValueError: If `factor >= 1` (raised by Keras).

    Example:

    ```python
    opt = keras.optimizers.SGD(
        keras.optimizers.schedules.CosineDecay(0.1, 10_000))
    model.compile(opt, "sparse_categorical_crossentropy")
    model.fit(x, y, validation_split=0.2, epochs=20,
              callbacks=[callbacks.ReduceLROnPlateau(patience=2)])
    ```
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._control = _lr_control.attach(self, self.model)
        self._control.floor.assign(self.min_lr)

    def on_train_end(self, logs=None):
        _lr_control.detach(self, self.model)

    def _reduce_optimizer_lr(self, optimizer, epoch, name=""):
        old_lr = _lr_control.current_learning_rate(optimizer)
        if old_lr <= self.min_lr:
            return False
        scale = float(self._control.scale.numpy()) * self.factor
        self._control.scale.assign(scale)
        if self.verbose > 0:
            new_lr = _lr_control.current_learning_rate(optimizer)
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning "
                  f"rate to {new_lr:.4g} (scale {scale:.4g}).")
        return True
