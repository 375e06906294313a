import numpy as np
import pytest
from keras.ops import convert_to_numpy

from recipes.layers import TLU, FilterResponseNormalization


def numpy_frn(x, gamma, beta, epsilon):
    axes = tuple(range(1, x.ndim - 1))
    nu2 = (x ** 2).mean(axis=axes, keepdims=True) if axes else x ** 2
    return gamma * x / np.sqrt(nu2 + epsilon) + beta


@pytest.mark.parametrize("shape", [(5, 6), (3, 7, 4), (2, 5, 6, 3)])
def test_frn_and_tlu_match_numpy(shape):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=shape) * 2 + 0.5).astype("float32")
    channels = shape[-1]
    gamma, beta, tau = (rng.normal(size=channels).astype("float32")
                        for _ in range(3))
    frn = FilterResponseNormalization(epsilon=1e-6)
    frn.build(shape)
    frn.set_weights([gamma, beta])
    tlu = TLU()
    tlu.build(shape)
    tlu.set_weights([tau])
    expected = np.maximum(
        numpy_frn(x.astype("float64"), gamma, beta, 1e-6), tau)
    np.testing.assert_allclose(convert_to_numpy(tlu(frn(x))), expected,
                               rtol=1e-5, atol=1e-5)


def test_learned_epsilon_is_lower_bounded_and_trainable():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3)).astype("float32")
    frn = FilterResponseNormalization(epsilon=1e-6, learned_epsilon=True)
    frn.build(x.shape)
    assert len(frn.trainable_weights) == 3
    frn.epsilon_learned.assign(-0.5)
    expected = numpy_frn(x.astype("float64"), 1.0, 0.0, 1e-6 + 0.5)
    np.testing.assert_allclose(convert_to_numpy(frn(x)), expected, rtol=1e-5)


def test_channels_first_tlu():
    x = np.arange(-6, 6, dtype="float32").reshape(1, 3, 2, 2)
    tlu = TLU(axis=1)
    tlu.build(x.shape)
    tlu.set_weights([np.array([-10.0, 0.0, 10.0], "float32")])
    expected = np.maximum(x, np.array([-10.0, 0.0, 10.0]).reshape(1, 3, 1, 1))
    np.testing.assert_array_equal(convert_to_numpy(tlu(x)), expected)


def test_bad_arguments():
    for cls, kwargs, error in [
        (FilterResponseNormalization, {"epsilon": 0}, ValueError),
        (FilterResponseNormalization, {"axis": "last"}, TypeError),
        (TLU, {"axis": None}, TypeError),
    ]:
        with pytest.raises(error, match="Received"):
            cls(**kwargs)


def test_bad_axis_for_input():
    for cls in [FilterResponseNormalization, TLU]:
        with pytest.raises(ValueError, match="axis=0"):
            cls(axis=0).build((None, 4))


def test_masked_steps_do_not_change_the_real_steps():
    import keras

    rng = np.random.default_rng(2)
    seq = (rng.normal(size=(2, 5, 3)) * 2 + 1).astype("float32")
    padded = np.concatenate([seq, np.zeros((2, 4, 3), "float32")], axis=1)
    inputs = keras.Input((None, 3))
    layer = FilterResponseNormalization(epsilon=1e-6)
    outputs = layer(keras.layers.Masking(0.0)(inputs))
    model = keras.Model(inputs, outputs)
    gamma = rng.normal(size=3).astype("float32")
    beta = rng.normal(size=3).astype("float32")
    layer.set_weights([gamma, beta])
    expected = numpy_frn(seq.astype("float64"), gamma, beta, 1e-6)
    np.testing.assert_allclose(model.predict(padded, verbose=0)[:, :5],
                               expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.predict(seq, verbose=0), expected,
                               rtol=1e-5, atol=1e-5)
