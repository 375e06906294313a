"""Test helpers shared by the whole suite."""

import copy
import os

import keras
import numpy as np
import pytest


def only_on(*backends):
    """Mark a test that can only run on the given Keras backends.

    Example: `@only_on("tensorflow")` on a test that uses `tf.distribute`.
    """
    backend = keras.backend.backend()
    return pytest.mark.skipif(
        backend not in backends,
        reason=f"runs on {', '.join(backends)}; this run is on {backend}",
    )


# Keras's torch trainer refuses `steps_per_execution > 1` ("must be 1 with
# the PyTorch backend"): a test of the grouping itself cannot run there.
needs_steps_per_execution = pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="Keras's torch trainer refuses steps_per_execution > 1",
)


def steps_per_execution(n):
    """`n`, or 1 on torch, whose Keras trainer refuses more.

    For a test whose assertions hold for any grouping: it runs grouped on
    TensorFlow and JAX, and still checks the component, ungrouped, on torch.
    """
    return 1 if keras.backend.backend() == "torch" else n


def assert_keras_round_trip(model, x, directory, atol=1e-6):
    """Save `model` to `.keras`, reload with safe_mode=True and compare.

    The reload uses no `custom_objects`: every object the model uses must be
    registered. Predictions on `x` must agree within `atol`.

    Returns:
        The reloaded model.
    """
    path = os.path.join(str(directory), "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        np.asarray(loaded.predict(x, verbose=0)),
        np.asarray(model.predict(x, verbose=0)),
        atol=atol,
    )
    return loaded


def assert_config_round_trip(obj):
    """`from_config(get_config())` reproduces the same config."""
    config = obj.get_config()
    # Some `from_config`s (Keras optimizers) rewrite the dict they get.
    clone = type(obj).from_config(copy.deepcopy(config))
    assert clone.get_config() == config
    return clone


def small_cnn(num_classes=10, input_shape=(28, 28, 1)):
    """A small CNN used across tests (fast on 2 CPU cores)."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


def mlp(num_classes=10, input_shape=(28, 28, 1), units=64,
        output_activation="softmax"):
    """A small MLP used across tests (`output_activation=None`: logits)."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(num_classes, activation=output_activation),
        ]
    )


def assert_seed_determines_weights(train, seed, other_seed):
    """`train(seed)` returns a weight list: the same seed twice must give
    identical weights, another seed different ones."""
    first, second, other = train(seed), train(seed), train(other_seed)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b)
               for a, b in zip(first, other, strict=True))


class CrashInEpoch(keras.callbacks.Callback):
    """Calls `crash()` in the middle of `epoch` (after its first compiled
    call): an exception, or a SIGKILL of the whole process."""

    def __init__(self, epoch, crash):
        super().__init__()
        self.crash_epoch = epoch
        self.crash = crash
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == self.crash_epoch and batch > 0:
            self.crash()


def assert_swap_ema_weights(model, average, raw):
    """`keras.callbacks.SwapEMAWeights` puts `average` into the model's first
    trainable variable for evaluation and `raw` back after it (to float32
    rounding: the swap adds and subtracts)."""
    swap = keras.callbacks.SwapEMAWeights()
    swap.set_model(model)
    swap.on_test_begin()
    np.testing.assert_allclose(model.trainable_variables[0].numpy(), average,
                               rtol=1e-6, atol=1e-6)
    swap.on_test_end()
    np.testing.assert_allclose(model.trainable_variables[0].numpy(), raw,
                               rtol=1e-6, atol=1e-6)
