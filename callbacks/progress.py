"""A progress bar whose count stays within its total.

With `steps_per_execution=N`, Keras reports each group of N steps by the
index of its last step, and the last group of an epoch as a full group even
when fewer steps remain: 100 steps at N=32 end at "128/100" with a negative
ETA. `ProgressBar` is Keras's `ProgbarLogger` with each reported step
capped at the epoch's last one.
"""

import keras


class ProgressBar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, right with `steps_per_execution > 1`.

    Pass it in `callbacks` of `fit`, `evaluate` or `predict`; Keras then
    uses it instead of its own bar, with the `verbose` given to that call
    (1: a bar, 2: one line per epoch). Where the number of steps is known
    the count stops at the total, so the bar ends at "100/100" and the ETA
    never goes negative. With a dataset of unknown length the total is
    learnt from the first epoch, as in Keras.

    Example:

    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse", steps_per_execution=32)
    >>> x = keras.ops.ones((100, 2))
    >>> history = model.fit(x, x[:, :1], batch_size=1, verbose=0,
    ...                     callbacks=[ProgressBar()])
    """

    def __init__(self):
        super().__init__()
        self._steps = None

    def set_params(self, params):
        super().set_params(params)
        self._steps = params.get("steps")

    def _within_total(self, batch):
        steps = self._steps
        return min(batch, steps - 1) if steps else batch

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(self._within_total(batch), logs)

    def on_test_batch_end(self, batch, logs=None):
        super().on_test_batch_end(self._within_total(batch), logs)

    def on_predict_batch_end(self, batch, logs=None):
        super().on_predict_batch_end(self._within_total(batch), logs)
