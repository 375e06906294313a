import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.ops import convert_to_numpy

from recipes.layers import WeightNormalization
from tests.helpers import only_on

# The default `data_init=True` is refused on JAX at construction
# (tests/test_backend_support.py).
NOT_ON_JAX = only_on("tensorflow", "torch")


def unit_direction(v):
    axes = tuple(range(v.ndim - 1))
    return v / np.sqrt((v.astype("float64") ** 2).sum(axis=axes))


@NOT_ON_JAX
def test_dense_forward_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5)).astype("float32")
    layer = WeightNormalization(keras.layers.Dense(3, activation="tanh"))
    layer.build(x.shape)
    v = rng.normal(size=(5, 3)).astype("float32")
    b = rng.normal(size=3).astype("float32")
    g = rng.uniform(0.5, 2.0, size=3).astype("float32")
    layer.layer.kernel.assign(v)
    layer.layer.bias.assign(b)
    layer.g.assign(g)
    expected = np.tanh(x @ (g * unit_direction(v)) + b)
    np.testing.assert_allclose(convert_to_numpy(layer(x)), expected, atol=1e-5)


@NOT_ON_JAX
def test_starts_as_the_unwrapped_layer():
    x = np.random.default_rng(1).normal(size=(4, 5)).astype("float32")
    layer = WeightNormalization(keras.layers.Dense(3))
    layer.build(x.shape)
    kernel = np.asarray(layer.layer.kernel)
    np.testing.assert_allclose(convert_to_numpy(layer(x)), x @ kernel,
                               atol=1e-5)


def _skip_unless_channels_first_conv_runs(shape):
    """TensorFlow's CPU Conv2D supports NCHW on some machines only (it
    failed on an AVX2-only one); there a plain Keras Conv2D fails too."""
    probe = keras.layers.Conv2D(1, 3, data_format="channels_first")
    try:
        probe(np.zeros(shape, "float32"))
    except tf.errors.UnimplementedError as error:
        pytest.skip(f"channels_first Conv2D unsupported here: {error}")


@NOT_ON_JAX
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv_forward_equals_conv_with_normalized_kernel(data_format):
    rng = np.random.default_rng(2)
    shape = (2, 7, 7, 3) if data_format == "channels_last" else (2, 3, 7, 7)
    if data_format == "channels_first":
        _skip_unless_channels_first_conv_runs(shape)
    x = rng.normal(size=shape).astype("float32")
    conv = keras.layers.Conv2D(4, 3, data_format=data_format)
    wrapped = WeightNormalization(conv)
    wrapped.build(shape)
    wrapped.layer.bias.assign(rng.normal(size=4).astype("float32"))
    g = rng.uniform(0.5, 2.0, size=4).astype("float32")
    wrapped.g.assign(g)
    plain = keras.layers.Conv2D(4, 3, data_format=data_format)
    plain.build(shape)
    plain.set_weights([g * unit_direction(np.asarray(conv.kernel)),
                       np.asarray(conv.bias)])
    np.testing.assert_allclose(convert_to_numpy(wrapped(x)),
                               convert_to_numpy(plain(x)), atol=1e-5)


@NOT_ON_JAX
def test_data_dependent_init_matches_numpy():
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(64, 5)) * 4 + 1).astype("float32")
    layer = WeightNormalization(keras.layers.Dense(3, activation="relu"))
    layer.build(x.shape)
    v = np.asarray(layer.layer.kernel)
    t = x.astype("float64") @ unit_direction(v)
    mu, sigma = t.mean(axis=0), t.std(axis=0)
    outputs = convert_to_numpy(layer(x, training=True))
    np.testing.assert_allclose(np.asarray(layer.g), 1 / sigma, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(layer.layer.bias), -mu / sigma,
                               atol=1e-4)
    np.testing.assert_allclose(outputs, np.maximum((t - mu) / sigma, 0),
                               atol=1e-4)
    assert int(np.asarray(layer.initialized)) == 1
    # Later batches do not re-initialize.
    layer(x * 10, training=True)
    np.testing.assert_allclose(np.asarray(layer.g), 1 / sigma, rtol=1e-4)


@NOT_ON_JAX
def test_data_init_inside_fit_on_real_mnist(mnist_5k):
    (x, y), _ = mnist_5k
    x = x[:256]
    conv = WeightNormalization(keras.layers.Conv2D(8, 3))
    model = keras.Sequential([
        keras.Input((28, 28, 1)), conv, keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    v = np.asarray(conv.layer.kernel)
    direction = convert_to_numpy(keras.ops.conv(
        x[:128], unit_direction(v).astype("float32")))
    mu = direction.mean(axis=(0, 1, 2))
    sigma = direction.std(axis=(0, 1, 2))
    model.compile(keras.optimizers.SGD(0.0),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:128], y[:128], batch_size=128, epochs=1, verbose=0)
    np.testing.assert_allclose(np.asarray(conv.g), 1 / sigma, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(conv.layer.bias), -mu / sigma,
                               atol=1e-3)


def test_no_data_init_keeps_g():
    x = np.random.default_rng(4).normal(size=(8, 5)).astype("float32")
    layer = WeightNormalization(keras.layers.Dense(3), data_init=False)
    layer.build(x.shape)
    g = np.asarray(layer.g)
    layer(x, training=True)
    np.testing.assert_array_equal(np.asarray(layer.g), g)


def test_bad_arguments():
    for layer, kwargs, error in [
        (keras.layers.Conv2DTranspose(2, 3), {}, TypeError),
        (keras.layers.LayerNormalization(), {}, TypeError),
        ("dense", {}, TypeError),
        (keras.layers.Dense(2), {"data_init": "yes"}, TypeError),
    ]:
        with pytest.raises(error, match="Received"):
            WeightNormalization(layer, **kwargs)
