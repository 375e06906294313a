import numpy as np
import pytest

from recipes.optimizers import RAdam
from tests.recipes.optimizers._steps import (
    assert_trajectory,
    fixed_problem,
    run_keras,
)


def radam_reference(w0, grads, lr, beta_1, beta_2, eps, threshold):
    """Liu et al. 2019, Algorithm 2, in float64."""
    w = w0.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    rho_inf = 2 / (1 - beta_2) - 1
    out = []
    for t, g in enumerate(grads, start=1):
        v = beta_2 * v + (1 - beta_2) * g**2
        m = beta_1 * m + (1 - beta_1) * g
        m_hat = m / (1 - beta_1**t)
        rho_t = rho_inf - 2 * t * beta_2**t / (1 - beta_2**t)
        if rho_t > threshold:
            l_t = np.sqrt(1 - beta_2**t) / (np.sqrt(v) + eps)
            r_t = np.sqrt(
                (rho_t - 4) * (rho_t - 2) * rho_inf
                / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            )
            w = w - lr * r_t * m_hat * l_t
        else:
            w = w - lr * m_hat
        out.append(w.copy())
    return out


@pytest.mark.parametrize(
    "beta_2, threshold", [(0.999, 4.0), (0.9, 4.0), (0.9, 5.0)]
)
def test_matches_paper_algorithm(beta_2, threshold):
    w0, grads = fixed_problem(steps=10)
    opt = RAdam(learning_rate=0.01, beta_1=0.9, beta_2=beta_2, epsilon=1e-7,
                sma_threshold=threshold)
    expected = radam_reference(w0, grads, 0.01, 0.9, beta_2, 1e-7, threshold)
    assert_trajectory(run_keras(opt, w0, grads), expected)


def test_first_steps_are_unadapted_momentum():
    # rho_1 = 1 < 4: the first step is lr * m_hat = lr * g exactly.
    w0, grads = fixed_problem(steps=1)
    trajectory = run_keras(RAdam(learning_rate=0.1), w0, grads)
    # atol: the float32 update rounds w ~ 1 to ~6e-8 (float64 reference).
    np.testing.assert_allclose(trajectory[0], w0 - 0.1 * grads[0], rtol=1e-6,
                               atol=1e-7)


def test_invalid_arguments():
    cases = [
        ({"learning_rate": 0.0}, "learning_rate=0.0"),
        ({"beta_1": 1.0}, "beta_1=1.0"),
        ({"beta_2": -0.1}, "beta_2=-0.1"),
        ({"epsilon": -1.0}, "epsilon=-1.0"),
        ({"sma_threshold": 3.0}, "sma_threshold=3.0"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            RAdam(**kwargs)
