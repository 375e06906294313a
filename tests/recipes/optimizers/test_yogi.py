import numpy as np
import pytest

from recipes.optimizers import Yogi
from tests.recipes.optimizers._steps import (
    assert_trajectory,
    fixed_problem,
    run_keras,
)


def yogi_reference(w0, grads, lr, beta_1, beta_2, eps, v0):
    """Zaheer et al. 2018, Algorithm 2 (no bias correction), float64."""
    w = w0.astype(np.float64)
    m = np.zeros_like(w)
    v = np.full_like(w, v0)
    out = []
    for g in grads:
        m = beta_1 * m + (1 - beta_1) * g
        v = v - (1 - beta_2) * np.sign(v - g**2) * g**2
        w = w - lr * m / (np.sqrt(v) + eps)
        out.append(w.copy())
    return out


@pytest.mark.parametrize("beta_2, v0", [(0.999, 1e-6), (0.9, 0.5)])
def test_matches_paper_algorithm(beta_2, v0):
    w0, grads = fixed_problem(steps=8)
    opt = Yogi(learning_rate=0.01, beta_1=0.9, beta_2=beta_2, epsilon=1e-3,
               initial_accumulator_value=v0)
    expected = yogi_reference(w0, grads, 0.01, 0.9, beta_2, 1e-3, v0)
    assert_trajectory(run_keras(opt, w0, grads), expected)


def test_second_moment_changes_at_most_additively():
    # |v_t - v_{t-1}| <= (1 - beta_2) * g**2: one huge gradient after tiny
    # ones cannot collapse or explode v.
    opt = Yogi(learning_rate=0.01, beta_2=0.9, initial_accumulator_value=1.0)
    w0 = np.zeros((2,), "float32")
    run_keras(opt, w0, [np.array([100.0, 0.0], "float32")])
    (v,) = [v.numpy() for v in opt.variables if "velocity" in v.path]
    np.testing.assert_allclose(v, [1.0 + 0.1 * 1e4, 1.0 - 0.0], rtol=1e-6)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="initial_accumulator_value=-1"):
        Yogi(initial_accumulator_value=-1.0)
