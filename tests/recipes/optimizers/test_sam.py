import keras
import numpy as np
import pytest

from recipes.optimizers import SAM
from tests.helpers import assert_keras_round_trip, only_on

# SAM refuses torch (tests/test_backend_support.py checks the error).
pytestmark = only_on("tensorflow", "jax")


def _linear_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    w0 = rng.normal(size=(3, 1)).astype("float32")
    return x, y, w0


def _mse_grad(x, y, w):
    return 2.0 / len(x) * x.T @ (x @ w - y)


def sam_reference(x, y, w, lr, rho, adaptive, steps):
    """Foret et al. 2021 Algorithm 1 (ASAM: Kwon et al. 2021) with SGD."""
    w = w.astype(np.float64)
    for _ in range(steps):
        g = _mse_grad(x, y, w)
        if adaptive:
            e = rho * w**2 * g / np.linalg.norm(np.abs(w) * g)
        else:
            e = rho * g / np.linalg.norm(g)
        w = w - lr * _mse_grad(x, y, w + e)
    return w


@pytest.mark.parametrize("adaptive, rho", [(False, 0.05), (True, 0.5)])
def test_matches_paper_algorithm(adaptive, rho):
    x, y, w0 = _linear_problem()
    inner = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(1, use_bias=False)]
    )
    inner.layers[0].kernel.assign(w0)
    sam = SAM(inner, rho=rho, adaptive=adaptive)
    sam.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    sam.fit(x, y, batch_size=16, epochs=4, shuffle=False, verbose=0)
    expected = sam_reference(x, y, w0, 0.1, rho, adaptive, steps=4)
    np.testing.assert_allclose(inner.layers[0].kernel.numpy(), expected,
                               rtol=1e-6, atol=1e-6)


def test_reports_the_loss_and_keeps_bn_statistics_of_the_first_pass():
    x, y, _ = _linear_problem()
    inner = keras.Sequential([
        keras.Input((3,)),
        keras.layers.BatchNormalization(momentum=0.0),
        keras.layers.Dense(1),
    ])
    # BN at momentum 0 in training mode is deterministic: the first pass's
    # loss, at the unperturbed weights, is computable before the step.
    first_pass = np.asarray(inner(x, training=True))
    expected_loss = float(np.mean((first_pass - y) ** 2))
    sam = SAM(inner, rho=0.05)
    sam.compile(optimizer="sgd", loss="mse")
    history = sam.fit(x, y, batch_size=16, epochs=1, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], expected_loss,
                               rtol=1e-5)
    # momentum 0: the moving mean is the first pass's batch mean (the only
    # batch), i.e. the mean of the inputs at unperturbed weights.
    np.testing.assert_allclose(inner.layers[0].moving_mean.numpy(),
                               x.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_reuses_the_compile_configuration_of_a_compiled_model():
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    inner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse",
                  metrics=["mae"])
    sam = SAM(inner)
    assert sam.compiled
    assert isinstance(sam.optimizer, keras.optimizers.Adam)


def test_round_trip_and_steps_per_execution(tmp_path):
    x, y, _ = _linear_problem()
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    sam = SAM(inner, rho=0.1, adaptive=True)
    sam.compile(optimizer="adam", loss="mse", steps_per_execution=4)
    sam.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert int(sam.optimizer.iterations.numpy()) == 8
    loaded = assert_keras_round_trip(sam, x, tmp_path)
    assert loaded.rho == 0.1 and loaded.adaptive


def test_invalid_arguments():
    with pytest.raises(TypeError, match="model="):
        SAM("model")
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="rho=0"):
        SAM(inner, rho=0)


@pytest.mark.parametrize("adaptive", ["no", 1, None])
def test_adaptive_must_be_a_bool(adaptive):
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match=(
            "Argument `adaptive` must be a bool. "
            f"Received: adaptive={adaptive!r}")):
        SAM(inner, adaptive=adaptive)
