"""EarlyStopping on a real overfitting run, and its time budget."""

import keras
import numpy as np
import pytest

import callbacks
from tests.helpers import mlp


class WeightsPerEpoch(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def test_stops_on_overfitting_and_restores_best_weights(mnist_5k):
    (x, y), (xv, yv) = mnist_5k
    # 200 training digits, a wide net and a high LR: val_loss bottoms out
    # within a few epochs and then climbs.
    model = mlp(units=256)
    model.compile(keras.optimizers.Adam(3e-3),
                  "sparse_categorical_crossentropy")
    recorder = WeightsPerEpoch()
    stopper = callbacks.EarlyStopping(patience=3, restore_best_weights=True,
                                      verbose=1)
    history = model.fit(x[:200], y[:200], validation_data=(xv, yv),
                        epochs=60, batch_size=20, verbose=0,
                        callbacks=[recorder, stopper])
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) < 60, "should have stopped early"
    assert len(val) == best + 1 + 3
    assert stopper.stop_reason.startswith(f"Epoch {len(val)}: early stopping")
    assert "did not improve" in stopper.stop_reason
    for restored, kept in zip(model.get_weights(), recorder.weights[best],
                              strict=True):
        np.testing.assert_array_equal(restored, kept)
    # Independent check: evaluating the restored model gives the best loss.
    assert model.evaluate(xv, yv, verbose=0) == pytest.approx(val[best],
                                                             rel=1e-4)


def test_max_time_stops_with_reason(mnist_5k):
    (x, y), _ = mnist_5k
    model = mlp(units=16)
    model.compile("adam", "sparse_categorical_crossentropy")
    stopper = callbacks.EarlyStopping(monitor="loss", patience=100,
                                      max_time=1e-3)
    history = model.fit(x[:200], y[:200], epochs=20, verbose=0,
                        callbacks=[stopper])
    assert len(history.history["loss"]) == 1
    assert "time budget of 0.001 s reached" in stopper.stop_reason
    # Reusable: a second fit resets the state.
    stopper.max_time = None
    history = model.fit(x[:200], y[:200], epochs=2, verbose=0,
                        callbacks=[stopper])
    assert len(history.history["loss"]) == 2
    assert stopper.stop_reason is None


class StopAfterFirstEpoch(keras.callbacks.Callback):
    """Another callback ending training at epoch 0 (like TerminateOnNaN)."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


@pytest.mark.parametrize("kwargs", [
    {"monitor": "loss", "start_from_epoch": 2},  # still warming up
    {"monitor": "val_loss"},  # not logged: no validation data
    {"monitor": "loss", "patience": 5},
])
def test_stop_by_another_callback_is_not_ours(kwargs, mnist_5k):
    (x, y), _ = mnist_5k
    model = mlp(units=16)
    model.compile("adam", "sparse_categorical_crossentropy")
    stopper = callbacks.EarlyStopping(max_time=3600, **kwargs)
    history = model.fit(x[:64], y[:64], epochs=5, verbose=0,
                        callbacks=[StopAfterFirstEpoch(), stopper])
    assert len(history.history["loss"]) == 1
    assert stopper.stop_reason is None
    assert stopper.model.stop_training


def test_stop_reason_when_patience_runs_out_alongside_other_stop(mnist_5k):
    # Our stop in the same epoch as another callback's still gets a reason.
    (x, y), _ = mnist_5k
    model = mlp(units=16)
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")

    class StopAtEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    stopper = callbacks.EarlyStopping(monitor="loss", patience=1)
    history = model.fit(x[:64], y[:64], epochs=5, verbose=0,
                        callbacks=[StopAtEpoch(), stopper])
    # With a zero LR the loss never improves: patience 1 ends epoch 2.
    assert len(history.history["loss"]) == 2
    assert stopper.stop_reason.startswith("Epoch 2: early stopping")


@pytest.mark.parametrize("kwargs,match", [
    ({"max_time": 0}, "max_time"),
    ({"max_time": -5}, "max_time"),
    ({"patience": -1}, "patience"),
    ({"start_from_epoch": 1.5}, "start_from_epoch"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError),
                       match=f"`{match}`.*Received"):
        callbacks.EarlyStopping(**kwargs)
