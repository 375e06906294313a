import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy

from recipes.layers import InstanceNormalization


def numpy_instance_norm(x, gamma, beta, epsilon, channel_axis):
    axes = tuple(i for i in range(1, x.ndim) if i != channel_axis)
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    shape = [1] * x.ndim
    shape[channel_axis] = -1
    return (gamma.reshape(shape) * (x - mean) / np.sqrt(var + epsilon)
            + beta.reshape(shape))


@pytest.mark.parametrize("shape,axis", [
    ((3, 7, 5), -1), ((2, 6, 5, 4), -1), ((2, 4, 6, 5), 1),
    ((2, 3, 4, 5, 2), -1)])
def test_matches_numpy(shape, axis):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=shape) * 3 + 2).astype("float32")
    layer = InstanceNormalization(axis=axis, epsilon=1e-3)
    layer.build(shape)
    gamma = rng.normal(size=shape[axis]).astype("float32")
    beta = rng.normal(size=shape[axis]).astype("float32")
    layer.set_weights([gamma, beta])
    expected = numpy_instance_norm(x.astype("float64"), gamma, beta, 1e-3,
                                   axis % len(shape))
    np.testing.assert_allclose(convert_to_numpy(layer(x)), expected, atol=1e-5)


def test_independent_of_batch():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5, 5, 3)).astype("float32")
    layer = InstanceNormalization()
    np.testing.assert_allclose(convert_to_numpy(layer(x[:1])),
                               convert_to_numpy(layer(x))[:1], atol=1e-6)


def test_equals_group_normalization_minus_one_on_images():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 6, 4)).astype("float32")
    group = keras.layers.GroupNormalization(groups=-1, epsilon=1e-3)
    np.testing.assert_allclose(convert_to_numpy(InstanceNormalization()(x)),
                               convert_to_numpy(group(x)), atol=1e-5)


def test_rank_2_rejected_where_group_normalization_collapses():
    x = np.random.default_rng(3).normal(size=(4, 6)).astype("float32")
    # GroupNormalization(groups=-1) maps every feature to beta (= 0).
    collapsed = convert_to_numpy(keras.layers.GroupNormalization(groups=-1)(x))
    np.testing.assert_allclose(collapsed, 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="rank >= 3"):
        InstanceNormalization()(x)


def test_without_affine_has_no_weights():
    layer = InstanceNormalization(center=False, scale=False)
    layer.build((None, 4, 3))
    assert layer.weights == []


def test_bad_arguments():
    for kwargs, error, match in [
        ({"epsilon": 0.0}, ValueError, "epsilon"),
        ({"epsilon": -1.0}, ValueError, "epsilon"),
        ({"axis": 1.5}, TypeError, "axis"),
        ({"axis": True}, TypeError, "axis"),
    ]:
        with pytest.raises(error, match=match):
            InstanceNormalization(**kwargs)


def test_bad_axis_for_input():
    for axis in [0, 4, -5]:
        with pytest.raises(ValueError, match=r"Received: axis="):
            InstanceNormalization(axis=axis).build((None, 4, 4, 3))


def test_undefined_channels():
    with pytest.raises(ValueError, match="defined size"):
        InstanceNormalization().build((None, 4, None))


def test_masked_steps_do_not_change_the_real_steps():
    # 5 real steps then 4 zero-padded, masked by `Masking`: the statistics
    # are those of the real steps (NumPy reference on the unpadded input).
    rng = np.random.default_rng(2)
    seq = (rng.normal(size=(2, 5, 3)) * 2 + 1).astype("float32")
    padded = np.concatenate([seq, np.zeros((2, 4, 3), "float32")], axis=1)
    inputs = keras.Input((None, 3))
    layer = InstanceNormalization(epsilon=1e-3)
    outputs = layer(keras.layers.Masking(0.0)(inputs))
    model = keras.Model(inputs, outputs)
    gamma = rng.normal(size=3).astype("float32")
    beta = rng.normal(size=3).astype("float32")
    layer.set_weights([gamma, beta])
    expected = numpy_instance_norm(seq.astype("float64"), gamma, beta, 1e-3,
                                   2)
    np.testing.assert_allclose(model.predict(padded, verbose=0)[:, :5],
                               expected, atol=1e-5)
    np.testing.assert_allclose(model.predict(seq, verbose=0), expected,
                               atol=1e-5)
