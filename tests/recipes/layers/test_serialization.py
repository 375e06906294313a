"""Every layer of `recipes.layers`: config and `.keras` round trips, 2D/4D
shapes and dtypes, and mixed_bfloat16."""

import keras
import numpy as np
import pytest

import recipes.layers
from recipes.layers import (
    TLU,
    BlurPool2D,
    ClassifierDense,
    DropBlock,
    DropPath,
    FilterResponseNormalization,
    InstanceNormalization,
    MinMaxScaling,
    StochasticDepth,
    WeightNormalization,
)
from tests.helpers import (
    assert_config_round_trip,
    assert_keras_round_trip,
    only_on,
)


def _min_max():
    return MinMaxScaling(feature_range=(-1.0, 2.0), data_min=-1.0,
                         data_max=3.0)


# `data_init=True` (the default) is refused on JAX at construction.
DATA_INIT = keras.backend.backend() != "jax"

# name -> (factory, input ranks it supports)
FACTORIES = {
    "WeightNormalization": (
        lambda rank: WeightNormalization(
            keras.layers.Dense(5) if rank == 2
            else keras.layers.Conv2D(5, 3, padding="same"),
            data_init=DATA_INIT),
        (2, 4)),
    "InstanceNormalization": (lambda rank: InstanceNormalization(), (4,)),
    "FilterResponseNormalization": (
        lambda rank: FilterResponseNormalization(learned_epsilon=True),
        (2, 4)),
    "TLU": (lambda rank: TLU(), (2, 4)),
    "DropPath": (lambda rank: DropPath(0.2, seed=3), (2, 4)),
    "MinMaxScaling": (lambda rank: _min_max(), (2, 4)),
    "DropBlock": (lambda rank: DropBlock(0.2, block_size=3, seed=1), (4,)),
    "BlurPool2D": (lambda rank: BlurPool2D(filter_size=3), (4,)),
    "ClassifierDense": (
        lambda rank: ClassifierDense(["a", "b", "c"], activation="softmax"),
        (2,)),
}
CASES = [(name, rank) for name, (_, ranks) in FACTORIES.items()
         for rank in ranks]


def test_every_public_layer_is_covered():
    assert set(FACTORIES) | {"StochasticDepth"} == set(recipes.layers.__all__)


def _input(rank, rng):
    shape = (6, 4) if rank == 2 else (6, 5, 5, 4)
    return rng.uniform(-1, 3, size=shape).astype("float32")


def _model(layer, shape):
    inputs = keras.Input(shape[1:])
    return keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize("name,rank", CASES)
def test_keras_round_trip_safe_mode(name, rank, tmp_path):
    rng = np.random.default_rng(0)
    x = _input(rank, rng)
    layer = FACTORIES[name][0](rank)
    assert_config_round_trip(layer)
    model = _model(layer, x.shape)
    # Move the weights away from their initial values first.
    model.set_weights([w + rng.normal(size=w.shape).astype(w.dtype) * 0.1
                       if w.dtype.kind == "f" else w
                       for w in model.get_weights()])
    y = model.predict(x, verbose=0)
    expected_shape = layer.compute_output_shape((None,) + x.shape[1:])
    assert y.shape == x.shape[:1] + tuple(expected_shape[1:])
    assert y.dtype == np.float32
    loaded = assert_keras_round_trip(model, x, tmp_path, atol=1e-5)
    assert type(loaded.layers[1]) is type(layer)


@pytest.mark.parametrize("name,rank", CASES)
def test_mixed_bfloat16(name, rank):
    rng = np.random.default_rng(1)
    x = _input(rank, rng)
    reference = FACTORIES[name][0](rank)
    expected = keras.ops.convert_to_numpy(reference(x))
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    layer = FACTORIES[name][0](rank)
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert all(w.dtype in ("float32", "int32") for w in layer.weights)
    layer.set_weights(reference.get_weights())
    y = keras.ops.convert_to_numpy(keras.ops.cast(layer(x), "float32"))
    np.testing.assert_allclose(y, expected, rtol=0.05, atol=0.05)


def test_stochastic_depth_round_trip_and_bfloat16(tmp_path):
    x = np.random.default_rng(2).normal(size=(6, 4)).astype("float32")
    layer = StochasticDepth(0.7, seed=1)
    assert_config_round_trip(layer)
    inputs = keras.Input((4,))
    branch = keras.layers.Dense(4)(inputs)
    model = keras.Model(inputs, layer([inputs, branch]))
    assert_keras_round_trip(model, x, tmp_path)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    y = StochasticDepth(0.7)([x, x], training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"


def test_adapted_min_max_scaling_round_trip(tmp_path, digits_8x8):
    (x, _), _ = digits_8x8
    x = x.reshape(len(x), -1).astype("float32")
    layer = MinMaxScaling()
    layer.adapt(x)
    model = _model(layer, x.shape)
    loaded = assert_keras_round_trip(model, x[:20], tmp_path)
    np.testing.assert_array_equal(np.asarray(loaded.layers[1].data_max),
                                  x.max(axis=0))


@only_on("tensorflow", "torch")  # data_init=True: refused on JAX
def test_weight_normalization_keeps_init_flag_after_reload(tmp_path,
                                                           mnist_5k):
    (x, y), _ = mnist_5k
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Flatten(),
        WeightNormalization(keras.layers.Dense(16, activation="relu")),
        keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    model.fit(x[:256], y[:256], batch_size=64, epochs=1, verbose=0)
    loaded = assert_keras_round_trip(model, x[:32], tmp_path, atol=1e-5)
    g = np.asarray(loaded.layers[1].g)
    assert int(np.asarray(loaded.layers[1].initialized)) == 1
    loaded.compile(keras.optimizers.SGD(0.0), model.loss)
    loaded.fit(x[:64], y[:64], epochs=1, verbose=0)
    np.testing.assert_array_equal(np.asarray(loaded.layers[1].g), g)


def test_all_layers_train_under_mixed_bfloat16(mnist_5k):
    (x, y), _ = mnist_5k
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    inputs = keras.Input((28, 28, 1))
    h = MinMaxScaling(data_min=0.0, data_max=1.0, axis=None)(inputs)
    h = WeightNormalization(keras.layers.Conv2D(8, 3, strides=2),
                            data_init=DATA_INIT)(h)
    h = FilterResponseNormalization()(h)
    h = TLU()(h)
    branch = InstanceNormalization()(keras.layers.Conv2D(8, 3,
                                                         padding="same")(h))
    h = StochasticDepth(0.8, seed=0)([h, DropPath(0.1, seed=0)(branch)])
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(10, dtype="float32")(h)
    model = keras.Model(inputs, outputs)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    history = model.fit(x[:512], y[:512], batch_size=64, epochs=2, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[1] < losses[0]
    assert all(w.dtype in ("float32", "int32") for w in model.weights)
    assert int(np.asarray(model.layers[2].initialized)) == int(DATA_INIT)
