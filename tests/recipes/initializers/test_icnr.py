import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy

from recipes.initializers import ICNR
from tests.helpers import assert_config_round_trip, assert_keras_round_trip


def _depth_to_space(x, scale):
    """NumPy pixel shuffle (TensorFlow's channels-last DCR order):
    `out[b, h*s + i, w*s + j, c] = x[b, h, w, (i*s + j)*C + c]`."""
    n, h, w, depth = x.shape
    channels = depth // scale ** 2
    x = x.reshape(n, h, w, scale, scale, channels)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(
        n, h * scale, w * scale, channels)


@pytest.mark.parametrize("scale", [2, 3])
def test_subpixel_conv_starts_as_nearest_upsampling(scale):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 5, 3)).astype("float32")
    conv = keras.layers.Conv2D(4 * scale ** 2, 3, padding="same",
                               kernel_initializer=ICNR(scale=scale))
    # NumPy's pixel shuffle: `keras.ops.depth_to_space` is not in every
    # Keras the package allows.
    y = _depth_to_space(convert_to_numpy(conv(x)), scale)
    assert y.shape == (2, 5 * scale, 5 * scale, 4)
    # Independent reference: the first 4 filters, then nearest upsampling.
    base = keras.layers.Conv2D(4, 3, padding="same")
    base.build(x.shape)
    base.set_weights([np.asarray(conv.kernel)[..., :4],
                      np.asarray(conv.bias)[:4]])
    expected = np.repeat(
        np.repeat(convert_to_numpy(base(x)), scale, 1), scale, 2)
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_keeps_base_initializer_statistics():
    kernel = ICNR(keras.initializers.HeNormal(seed=1), scale=2)(
        (3, 3, 16, 64 * 4))
    kernel = convert_to_numpy(kernel)
    # He normal (truncated) variance 2 / fan_in with fan_in = 3*3*16.
    np.testing.assert_allclose(kernel.var(), 2 / 144, rtol=0.1)
    np.testing.assert_array_equal(kernel[..., :64], kernel[..., 64:128])


def test_serialization(tmp_path):
    init = ICNR("he_uniform", scale=2)
    clone = assert_config_round_trip(init)
    assert clone.scale == 2
    inputs = keras.Input((4, 4, 2))
    outputs = keras.layers.Conv2D(8, 3, padding="same",
                                  kernel_initializer=init)(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype("float32")
    loaded = assert_keras_round_trip(model, x, tmp_path)
    assert isinstance(loaded.layers[1].kernel_initializer, ICNR)


def test_bad_scale():
    for scale, error in [
        (0, ValueError), (1.5, TypeError), ("2", TypeError)]:
        with pytest.raises(error, match="Received: scale="):
            ICNR(scale=scale)


def test_shape_not_divisible():
    with pytest.raises(ValueError, match="multiple of scale"):
        ICNR(scale=2)((3, 3, 4, 6))
