import numpy as np
import pytest

from recipes.layers import DropBlock


def zero_blocks_cover(zeros, size):
    """True if every zero lies in a size x size window that is all zero."""
    height, width = zeros.shape
    covered = np.zeros_like(zeros)
    for i in range(height - size + 1):
        for j in range(width - size + 1):
            if zeros[i:i + size, j:j + size].all():
                covered[i:i + size, j:j + size] = True
    return np.array_equal(covered, zeros)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_drops_square_blocks_and_preserves_the_sum(data_format):
    shape = (8, 16, 16, 4) if data_format == "channels_last" else (8, 4, 16,
                                                                    16)
    x = np.ones(shape, dtype="float32")
    layer = DropBlock(rate=0.2, block_size=3, data_format=data_format,
                      seed=0)
    y = np.asarray(layer(x, training=True))
    if data_format == "channels_first":
        y = y.transpose(0, 2, 3, 1)
    zeros = y == 0
    # Paper's gamma targets 20% dropped; block overlaps make it a bit less.
    assert 0.12 < zeros.mean() < 0.22
    np.testing.assert_allclose(y.sum(), x.sum(), rtol=1e-5)
    np.testing.assert_allclose(y[~zeros], x.size / (~zeros).sum(),
                               rtol=1e-5)
    for sample in range(2):
        for channel in range(4):
            assert zero_blocks_cover(zeros[sample, :, :, channel], 3)


def test_identity_at_inference_and_block_size_one_is_dropout_like():
    x = np.random.default_rng(0).normal(size=(2, 9, 9, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(DropBlock(0.5, 3)(x)), x)
    y = np.asarray(DropBlock(0.3, block_size=1, seed=1)(np.ones((64, 9, 9, 3),
                                                     "float32"),
                                             training=True))
    assert abs((y == 0).mean() - 0.3) < 0.02


def test_bad_arguments():
    for kwargs, error in [
        ({"rate": 1.0}, ValueError), ({"block_size": 0}, ValueError),
        ({"block_size": 2.5}, TypeError), ({"data_format": "nhwc"}, ValueError),
    ]:
        with pytest.raises(error, match="Received"):
            DropBlock(**kwargs)


def test_bad_shapes():
    with pytest.raises(ValueError, match="4D"):
        DropBlock().build((None, 10, 3))
    with pytest.raises(ValueError, match="block_size"):
        DropBlock(block_size=7).build((None, 5, 5, 3))
