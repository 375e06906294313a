"""`EarlyStopping` with a wall-clock budget and a stated reason."""

import time

import keras

from callbacks._validation import check_number


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Stop training when a metric stops improving or time runs out.

    Accepts every argument of `keras.callbacks.EarlyStopping` and behaves
    the same, plus:

    * `max_time`: a wall-clock budget in seconds for the whole `fit`,
      checked at the end of each epoch (so a run may exceed it by at most
      one epoch);
    * `stop_reason`: after training, a sentence saying why it stopped (or
      `None` when it ran all its epochs), printed when `verbose > 0`.

    With `restore_best_weights=True` the weights of the best epoch are
    restored at the end of training, whether it stopped early, ran out of
    time or ran all epochs (as in Keras 3).

    Args:
        monitor: Quantity to monitor. Defaults to `"val_loss"`.
        min_delta: Minimum change that counts as an improvement.
            Defaults to `0`.
        patience: Epochs without improvement before stopping.
            Defaults to `0`.
        verbose: Whether to print why training stopped. Defaults to `0`.
        mode: `"auto"`, `"min"` or `"max"`. Defaults to `"auto"`.
        baseline: Value the monitor must beat. Defaults to `None`.
        restore_best_weights: Restore the best epoch's weights at the end.
            Defaults to `False`.
        start_from_epoch: Epochs to wait before monitoring. Defaults to `0`.
        max_time: Wall-clock budget in seconds, or `None` for none.
            Defaults to `None`.

    Raises:
        ValueError: If `max_time` is not a positive number.

    Example:

    ```python
    stopper = callbacks.EarlyStopping(patience=3, restore_best_weights=True,
                                      max_time=600)
    model.fit(x, y, validation_split=0.2, epochs=100, callbacks=[stopper])
    print(stopper.stop_reason)
    ```
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0,
                 verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0,
                 max_time=None):
        check_number("patience", patience, low=0, integer=True)
        check_number("start_from_epoch", start_from_epoch, low=0,
                     integer=True)
        self.max_time = check_number("max_time", max_time, low=0.0,
                                     low_inclusive=False, allow_none=True)
        super().__init__(
            monitor=monitor, min_delta=min_delta, patience=patience,
            verbose=verbose, mode=mode, baseline=baseline,
            restore_best_weights=restore_best_weights,
            start_from_epoch=start_from_epoch)
        self.stop_reason = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.stop_reason = None
        self._start_time = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        # Tell our own stop from one by another callback in the same epoch
        # (`stopped_epoch` is 0 both before any stop and for epoch 0).
        stopping = bool(self.model.stop_training)
        self.model.stop_training = False
        super().on_epoch_end(epoch, logs)
        stopped_here = bool(self.model.stop_training)
        self.model.stop_training = stopping or stopped_here
        if stopped_here:
            best = ("none" if self.best is None
                    else f"{float(self.best):.6g} at epoch "
                         f"{self.best_epoch + 1}")
            self.stop_reason = (
                f"Epoch {epoch + 1}: early stopping: `{self.monitor}` did "
                f"not improve by more than {abs(self.min_delta):g} for "
                f"{self.wait} epochs (best {best})."
            )
            return
        if self.max_time is None or stopping:
            return
        elapsed = time.monotonic() - self._start_time
        if elapsed >= self.max_time:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            self.stop_reason = (
                f"Epoch {epoch + 1}: stopping: time budget of "
                f"{self.max_time:g} s reached ({elapsed:.1f} s elapsed)."
            )

    def on_train_end(self, logs=None):
        if self.stop_reason and self.verbose > 0:
            print(self.stop_reason)
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print("Restoring model weights from the end of the best "
                      f"epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)
