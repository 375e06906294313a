import numpy as np
import pytest
import tensorflow as tf

from recipes.layers import MinMaxScaling
from tests.helpers import only_on


def test_adapt_matches_numpy_on_real_digits(digits_8x8):
    (x_train, _), (x_val, _) = digits_8x8
    x_train = x_train.reshape(len(x_train), -1).astype("float32")
    x_val = x_val.reshape(len(x_val), -1).astype("float32")
    layer = MinMaxScaling(feature_range=(-1.0, 1.0))
    layer.adapt(x_train)
    low, high = x_train.min(axis=0), x_train.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    expected = (x_val - low) / span * 2.0 - 1.0
    np.testing.assert_allclose(np.asarray(layer(x_val)), expected, atol=1e-5)
    scaled_train = np.asarray(layer(x_train))
    varying = high > low
    np.testing.assert_allclose(scaled_train[:, varying].min(0), -1.0)
    np.testing.assert_allclose(scaled_train[:, varying].max(0), 1.0)
    # Constant features (zero range) map to the low end, not to NaN.
    np.testing.assert_allclose(scaled_train[:, ~varying], -1.0)


@only_on("tensorflow")  # adapts on tf.data
def test_adapt_on_dataset_per_channel_images():
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, size=(40, 4, 4, 3)).astype("float32")
    x[..., 2] *= 10
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(7)
    layer = MinMaxScaling()
    layer.adapt(dataset)
    np.testing.assert_allclose(np.asarray(layer.data_min),
                               x.min(axis=(0, 1, 2)))
    np.testing.assert_allclose(np.asarray(layer.data_max),
                               x.max(axis=(0, 1, 2)))
    y = np.asarray(layer(x))
    np.testing.assert_allclose(y.min(axis=(0, 1, 2)), 0.0, atol=1e-6)
    np.testing.assert_allclose(y.max(axis=(0, 1, 2)), 1.0, atol=1e-6)


def test_adapt_steps_reads_only_the_first_batches():
    x = np.arange(20, dtype="float32").reshape(10, 2)
    layer = MinMaxScaling(axis=None)
    layer.adapt(tf.data.Dataset.from_tensor_slices(x).batch(2), steps=2)
    assert np.asarray(layer.data_min) == 0.0
    assert np.asarray(layer.data_max) == 7.0


def test_given_statistics_and_clip():
    layer = MinMaxScaling(data_min=[0.0, 10.0], data_max=[2.0, 20.0],
                          clip=True)
    y = np.asarray(layer(np.array([[1.0, 15.0], [3.0, 0.0]], "float32")))
    np.testing.assert_allclose(y, [[0.5, 0.5], [1.0, 0.0]])


def test_call_before_adapt_raises():
    with pytest.raises(ValueError, match="adapt"):
        MinMaxScaling()(np.ones((2, 3), "float32"))


def test_bad_arguments():
    for kwargs in [
        {"feature_range": (1.0, 1.0)},
        {"feature_range": (2.0, 1.0)},
        {"feature_range": (0.0,)},
        {"axis": 0},
        {"axis": "x"},
        {"data_min": [0.0]},
        {"data_min": [3.0], "data_max": [1.0]},
    ]:
        with pytest.raises(ValueError, match="Received"):
            MinMaxScaling(**kwargs)


def test_bad_adapt_data():
    with pytest.raises(ValueError, match="non-finite"):
        MinMaxScaling().adapt(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="steps"):
        MinMaxScaling().adapt(np.ones((2, 2)), steps=0)
    with pytest.raises(ValueError, match="axis"):
        MinMaxScaling(axis=3).adapt(np.ones((2, 2)))


def test_dataset_of_pairs_is_refused_not_mixed_into_the_statistics():
    x = np.full((8, 3), 0.5, "float32")
    y = np.arange(8, dtype="float32")  # labels up to 7
    pairs = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    layer = MinMaxScaling()
    with pytest.raises(ValueError, match=r"`data`.*dataset\.map.*tuple of 2"):
        layer.adapt(pairs)
    layer.adapt(pairs.map(lambda features, label: features))
    np.testing.assert_allclose(np.asarray(layer.data_min), [0.5] * 3)
    np.testing.assert_allclose(np.asarray(layer.data_max), [0.5] * 3)
