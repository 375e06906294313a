"""What works on which Keras backend (run on TensorFlow and, in CI, JAX).

The per-component test files check each component against its NumPy or
formula reference on whatever backend the run uses; this file holds the
checks that are about the backend itself.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import callbacks
from recipes.layers import WeightNormalization
from recipes.optimizers import SAM
from tests.helpers import only_on

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_callbacks_does_not_import_tensorflow():
    code = ("import sys, callbacks; "
            "print('tensorflow' in sys.modules)")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


class _ScriptedLoss(keras.callbacks.Callback):
    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


def _train(digits, learning_rate, callbacks_=()):
    (x, y), _ = digits
    x, y = x[:128], y[:128]
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input(x.shape[1:]),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    # Keras's torch trainer refuses `steps_per_execution > 1`.
    steps = 1 if keras.backend.backend() == "torch" else 2
    model.compile(keras.optimizers.SGD(learning_rate),
                  "sparse_categorical_crossentropy",
                  steps_per_execution=steps)
    model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
              callbacks=list(callbacks_))
    return [np.asarray(w) for w in model.get_weights()]


def test_plateau_reduction_changes_the_applied_learning_rate(digits_8x8):
    """A reduction reaches the compiled step: the weights equal those of a
    run whose optimizer was compiled with the same piecewise schedule (on
    JAX a frozen scale would leave them equal to the unreduced run)."""
    plateau = callbacks.ReduceLROnPlateau(factor=0.5, patience=1)
    reduced = _train(digits_8x8, 0.5,
                     [_ScriptedLoss([1.0, 1.0, 1.0]), plateau])
    # Epoch 1 brings no improvement (patience 1): epoch 2's four steps
    # (steps 8-11) use 0.25.
    piecewise = keras.optimizers.schedules.PiecewiseConstantDecay(
        [7], [0.5, 0.25])
    expected = _train(digits_8x8, piecewise)
    unreduced = _train(digits_8x8, 0.5)
    for a, e in zip(reduced, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
    assert any(np.abs(a - u).max() > 1e-4
               for a, u in zip(reduced, unreduced, strict=True))


@only_on("jax")
def test_pruning_refuses_jax_at_construction():
    with pytest.raises(NotImplementedError, match="jax backend"):
        callbacks.Pruning(0.5)


@only_on("jax")
def test_weight_normalization_data_init_refuses_jax_at_construction():
    with pytest.raises(NotImplementedError, match="data_init=False"):
        WeightNormalization(keras.layers.Dense(4), data_init=True)
    layer = WeightNormalization(keras.layers.Dense(4), data_init=False)
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = np.asarray(layer(x))
    kernel = layer.layer.kernel.numpy()
    # g starts at ||v||: the wrapped layer computes the plain Dense.
    np.testing.assert_allclose(y, x @ kernel + layer.layer.bias.numpy(),
                               rtol=1e-5, atol=1e-6)


@only_on("torch")
def test_sam_refuses_torch_at_construction():
    inner = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(NotImplementedError, match="torch backend"):
        SAM(inner)


@only_on("torch")
def test_momentum_cycling_refuses_torch_at_construction():
    with pytest.raises(NotImplementedError, match="OneCycleLR.*torch"):
        callbacks.OneCycleLR(0.1, 100)
    schedule = callbacks.schedules.LinearSchedule(0.9, 0.8, 100)
    with pytest.raises(NotImplementedError, match="ScheduleLR.*torch"):
        callbacks.ScheduleLR(schedule, momentum_schedule=schedule)
    # The learning rate alone is driven as on the other backends.
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.5, momentum=0.9), "mse")
    history = model.fit(x, x[:, :1], batch_size=4, epochs=1, verbose=0,
                        callbacks=[callbacks.OneCycleLR(
                                       0.1, 10, cycle_momentum=False),
                                   callbacks.LearningRateMonitor()])
    # Step 9 is the cycle's last: initial / final_div_factor.
    assert history.history["learning_rate"] == pytest.approx(
        [0.1 / 25 / 1e4], rel=1e-4)
    assert model.optimizer.momentum == 0.9


@only_on("jax")
def test_gradual_unfreezing_refuses_jax_at_construction():
    with pytest.raises(NotImplementedError, match="jax backend"):
        callbacks.GradualUnfreezing([keras.layers.Dense(2)])
