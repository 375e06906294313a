import numpy as np
import pytest

from recipes.layers import BlurPool2D


def numpy_blur_pool(x, taps, strides):
    """Reflect-pad, correlate each channel with outer(taps), subsample."""
    kernel = np.outer(taps, taps) / np.sum(taps) ** 2
    size = len(taps)
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    padded = np.pad(x, [(0, 0), (before, after), (before, after), (0, 0)],
                    mode="reflect")
    height, width = x.shape[1:3]
    out = np.zeros_like(x, dtype="float64")
    for i in range(height):
        for j in range(width):
            window = padded[:, i:i + size, j:j + size, :]
            out[:, i, j, :] = np.einsum("bhwc,hw->bc", window, kernel)
    return out[:, ::strides, ::strides, :]


@pytest.mark.parametrize("taps,strides,size", [
    ([1, 2, 1], 2, 8), ([1, 4, 6, 4, 1], 2, 9), ([1, 1], 3, 7),
    ([1], 2, 6)])
def test_matches_numpy(taps, strides, size):
    x = np.random.default_rng(0).normal(size=(2, size, size, 3))
    layer = BlurPool2D(filter_size=len(taps), strides=strides)
    y = np.asarray(layer(x.astype("float32")))
    np.testing.assert_allclose(y, numpy_blur_pool(x, taps, strides),
                               atol=1e-5)


def test_channels_first_and_zero_padding():
    x = np.random.default_rng(1).normal(size=(1, 3, 6, 6)).astype("float32")
    y = np.asarray(BlurPool2D(data_format="channels_first")(x))
    expected = numpy_blur_pool(x.transpose(0, 2, 3, 1), [1, 2, 1], 2)
    np.testing.assert_allclose(y.transpose(0, 2, 3, 1), expected, atol=1e-5)
    ones = np.ones((1, 4, 4, 1), "float32")
    corner = np.asarray(
        BlurPool2D(padding="zeros", strides=1)(ones))[0, 0, 0, 0]
    np.testing.assert_allclose(corner, 9 / 16)


def test_more_shift_invariant_than_plain_subsampling():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(16, 32, 32, 1)).astype("float32")
    shifted = np.roll(x, 1, axis=2)

    def change(pool):
        a, b = pool(x), pool(shifted)
        return np.mean((a - b) ** 2) / np.mean(a ** 2)

    blur = BlurPool2D(filter_size=5)
    blurred = change(lambda v: np.asarray(blur(v)))
    plain = change(lambda v: v[:, ::2, ::2, :])
    assert blurred < 0.5 * plain


def test_bad_arguments():
    for kwargs, error in [
        ({"filter_size": 0}, ValueError), ({"filter_size": 8}, ValueError),
        ({"strides": 0}, ValueError), ({"padding": "same"}, ValueError),
    ]:
        with pytest.raises(error, match="Received"):
            BlurPool2D(**kwargs)


def test_bad_shape():
    with pytest.raises(ValueError, match="4D"):
        BlurPool2D().build((None, 8, 3))
    # Reflection cannot pad 2 pixels of a 2x2 map: a clear error at build,
    # not TensorFlow's Pad error at call time; zero padding works.
    with pytest.raises(ValueError, match="reflect.*at least 3.*input_shape"):
        BlurPool2D(filter_size=5)(np.ones((1, 2, 2, 3), "float32"))
    out = BlurPool2D(filter_size=5, padding="zeros")(
        np.ones((1, 2, 2, 3), "float32"))
    assert tuple(out.shape) == (1, 1, 1, 3)
    # The smallest map reflection can pad works.
    assert tuple(BlurPool2D(filter_size=5)(
        np.ones((1, 3, 3, 3), "float32")).shape) == (1, 2, 2, 3)
