"""Canary for the one Keras internal `callbacks._step_loss` relies on: the
train step calls `update_state(loss)` on the `loss` tracker once per step
with the step's scalar loss (Keras 3.15). If a Keras release changes that,
these tests fail and `DivergenceGuard` must be revisited."""

import keras
import numpy as np

from callbacks import _lr_control
from callbacks._step_loss import StepLossRecorder, loss_tracker
from tests.helpers import needs_steps_per_execution


class _ReadEveryExecution(keras.callbacks.Callback):
    def __init__(self, recorder):
        super().__init__()
        self.recorder, self.read = recorder, []

    def on_epoch_begin(self, epoch, logs=None):
        self.recorder.skip()

    def on_train_batch_end(self, batch, logs=None):
        self.read.append(self.recorder.read())


@needs_steps_per_execution
def test_records_each_steps_own_loss():
    rng = np.random.default_rng(0)
    x = rng.random((36, 3)).astype("float32")
    y = rng.random((36, 1)).astype("float32") * np.arange(36)[:, None]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    # LR 0: predictions never change, so each batch's loss is known.
    model.compile(keras.optimizers.SGD(0.0), "mse", steps_per_execution=3)
    pred = model.predict(x, verbose=0)
    expected = [float(np.mean((y[i:i + 4] - pred[i:i + 4]) ** 2))
                for i in range(0, 36, 4)]
    assert loss_tracker(model) is model.metrics[0]
    recorder = StepLossRecorder(model, _lr_control.variable_scope(model))
    assert recorder.install()
    reader = _ReadEveryExecution(recorder)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False,
              validation_data=(x[:8], y[:8]), callbacks=[reader])
    # 9 batches, 3 per execution: three reads of three losses each.
    assert [len(r) for r in reader.read] == [3, 3, 3]
    np.testing.assert_allclose(sum(reader.read, []), expected, rtol=1e-5)
    recorder.uninstall()
    assert "update_state" not in vars(loss_tracker(model))
