import numpy as np
import pytest

from recipes.layers import DropPath, StochasticDepth


def test_drop_path_drops_whole_samples_and_rescales():
    x = np.ones((4000, 3, 2), dtype="float32")
    y = np.asarray(DropPath(0.25, seed=0)(x, training=True))
    per_sample = y.reshape(len(y), -1)
    # Each sample is either fully dropped or fully kept and scaled by 1/0.75.
    assert np.all(per_sample.min(axis=1) == per_sample.max(axis=1))
    kept = per_sample[:, 0] != 0
    np.testing.assert_allclose(per_sample[kept], 1 / 0.75, rtol=1e-6)
    dropped = 1.0 - kept.mean()
    # Binomial(4000, 0.25): std of the fraction is 0.007.
    assert abs(dropped - 0.25) < 0.03
    np.testing.assert_allclose(y.mean(), 1.0, atol=0.05)


def test_identity_at_inference():
    x = np.random.default_rng(0).normal(size=(8, 5)).astype("float32")
    np.testing.assert_array_equal(np.asarray(DropPath(0.5)(x)), x)
    shortcut = np.ones_like(x)
    np.testing.assert_allclose(
        np.asarray(StochasticDepth(0.5)([shortcut, x], training=False)),
        shortcut + x)


def test_stochastic_depth_keeps_or_drops_residual_per_sample():
    shortcut = np.full((2000, 4), 3.0, dtype="float32")
    residual = np.ones((2000, 4), dtype="float32")
    y = np.asarray(StochasticDepth(0.8, seed=1)([shortcut, residual],
                                     training=True))
    kept = y[:, 0] > 3.0
    np.testing.assert_allclose(y[kept], 3.0 + 1 / 0.8, rtol=1e-6)
    np.testing.assert_allclose(y[~kept], 3.0)
    assert abs(kept.mean() - 0.8) < 0.03


def test_rate_zero_and_survival_one_are_identity_in_training():
    x = np.ones((5, 2), dtype="float32")
    np.testing.assert_array_equal(
        np.asarray(DropPath(0.0)(x, training=True)), x)
    np.testing.assert_array_equal(
        np.asarray(StochasticDepth(1.0)([x, x], training=True)), 2 * x)


def test_bad_arguments():
    for cls, kwargs, error in [
        (DropPath, {"rate": 1.0}, ValueError),
        (DropPath, {"rate": -0.1}, ValueError),
        (DropPath, {"rate": 0.1, "seed": 1.5}, TypeError),
        (StochasticDepth, {"survival_probability": 0.0}, ValueError),
        (StochasticDepth, {"survival_probability": 1.5}, ValueError),
    ]:
        with pytest.raises(error, match="Received"):
            cls(**kwargs)


def test_stochastic_depth_needs_two_matching_inputs():
    with pytest.raises(ValueError, match="two inputs"):
        StochasticDepth().build([(None, 3), (None, 4)])
    with pytest.raises(ValueError, match="two inputs"):
        StochasticDepth().build((None, 3))
