"""ReduceLROnPlateau on top of floats and schedules."""

import keras
import numpy as np
import pytest

import callbacks
from tests.callbacks._recording import RecordingSGD
from tests.helpers import mlp, steps_per_execution


class ScriptedLoss(keras.callbacks.Callback):
    """Replaces `val_loss` by a scripted sequence (a plateau on demand)."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


@pytest.fixture(scope="module")
def data(mnist_5k):
    (x, y), _ = mnist_5k
    return x[:500], y[:500]  # 5 steps of 100


@pytest.mark.parametrize("order", ["plateau_first", "schedule_first"])
def test_plateau_scales_a_schedule_callback(data, order):
    x, y = data
    opt = RecordingSGD(0.5)
    model = mlp(units=16)
    model.compile(opt, "sparse_categorical_crossentropy",
                  steps_per_execution=steps_per_execution(5))
    schedule = callbacks.CyclicalLR(1e-3, 1e-2, step_size=3)
    plateau = callbacks.ReduceLROnPlateau(factor=0.5, patience=1)
    cbs = [ScriptedLoss([1.0, 1.0, 1.0, 0.5]), plateau, schedule]
    if order == "schedule_first":
        cbs = [cbs[0], schedule, plateau]
    model.fit(x, y, batch_size=100, epochs=4, verbose=0, callbacks=cbs)
    lr = opt.lr_log.numpy()[:20]
    base = np.array([float(schedule.schedule(t)) for t in range(20)])
    # Epoch 1 (no improvement, patience 1) reduces from epoch 2 on, epoch 2
    # reduces again (cooldown 0): scales 1, 1, 0.5, 0.25.
    scale = np.repeat([1.0, 1.0, 0.5, 0.25], 5)
    np.testing.assert_allclose(lr, base * scale, rtol=1e-5)
    assert float(opt.learning_rate) == pytest.approx(0.5)


def test_plateau_on_a_compiled_keras_schedule(data):
    x, y = data
    sched = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    opt = keras.optimizers.SGD(sched)
    model = mlp(units=16)
    model.compile(opt, "sparse_categorical_crossentropy")
    # Keras's own callback cannot do this:
    with pytest.raises(TypeError, match="not settable"):
        model.fit(x, y, batch_size=100, epochs=3, verbose=0, callbacks=[
            ScriptedLoss([1.0] * 3),
            keras.callbacks.ReduceLROnPlateau(patience=1)])
    history = model.fit(x, y, batch_size=100, epochs=3, verbose=0,
                        callbacks=[ScriptedLoss([1.0] * 3),
                                   callbacks.ReduceLROnPlateau(
                                       patience=1, factor=0.1, min_lr=1e-3)])
    # The failed fit ran 2 epochs (10 steps). Ours logs the LR of each
    # epoch's last step (14, 19, 24; Keras's logs the next step's); the
    # reduction at the end of epoch 2 (index 1) applies from step 20 on.
    def b(step):
        return 0.1 * 0.5 ** (step / 10)

    np.testing.assert_allclose(
        history.history["learning_rate"],
        [b(14), b(19), max(0.1 * b(24), 1e-3)], rtol=1e-4)
    # The schedule is the optimizer's again after fit, unscaled.
    assert opt._learning_rate is sched


def test_plateau_on_float_persists_like_keras(data):
    x, y = data
    model = mlp(units=16)
    model.compile(keras.optimizers.SGD(0.1),
                  "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=100, epochs=3, verbose=0, callbacks=[
        ScriptedLoss([1.0] * 3),
        callbacks.ReduceLROnPlateau(patience=1, factor=0.5)])
    assert float(model.optimizer.learning_rate) == pytest.approx(0.025)


@pytest.mark.parametrize("kwargs, error, received", [
    ({"factor": -0.5}, ValueError, "factor=-0.5"),
    ({"factor": 0.0}, ValueError, "factor=0.0"),
    ({"factor": 1.0}, ValueError, "factor=1.0"),
    ({"factor": "0.5"}, TypeError, "factor='0.5'"),
    ({"patience": -1}, ValueError, "patience=-1"),
    ({"patience": 1.5}, TypeError, "patience=1.5"),
    ({"cooldown": -2}, ValueError, "cooldown=-2"),
    ({"min_lr": -1.0}, ValueError, "min_lr=-1.0"),
    ({"min_delta": float("nan")}, ValueError, "min_delta=nan"),
])
def test_bad_arguments_raise_naming_the_argument(kwargs, error, received):
    with pytest.raises(error, match=f"Received: {received}"):
        callbacks.ReduceLROnPlateau(**kwargs)


def test_good_arguments_match_keras():
    ours = callbacks.ReduceLROnPlateau(factor=0.5, patience=2.0, cooldown=1,
                                       min_lr=1e-5, min_delta=-0.01)
    theirs = keras.callbacks.ReduceLROnPlateau(
        factor=0.5, patience=2, cooldown=1, min_lr=1e-5, min_delta=-0.01)
    for name in ("factor", "patience", "cooldown", "min_lr", "min_delta"):
        assert getattr(ours, name) == getattr(theirs, name)
    assert type(ours.patience) is int
