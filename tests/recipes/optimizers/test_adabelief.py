import numpy as np
import pytest

from recipes.optimizers import AdaBelief
from tests.recipes.optimizers._steps import (
    assert_trajectory,
    fixed_problem,
    run_keras,
)


def adabelief_reference(w0, grads, lr, beta_1, beta_2, eps):
    """Zhuang et al. 2020, Algorithm 2, in float64."""
    w = w0.astype(np.float64)
    m = np.zeros_like(w)
    s = np.zeros_like(w)
    out = []
    for t, g in enumerate(grads, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        s = beta_2 * s + (1 - beta_2) * (g - m) ** 2 + eps
        m_hat = m / (1 - beta_1**t)
        s_hat = s / (1 - beta_2**t)
        w = w - lr * m_hat / (np.sqrt(s_hat) + eps)
        out.append(w.copy())
    return out


@pytest.mark.parametrize("eps", [1e-16, 1e-8])
def test_matches_paper_algorithm(eps):
    w0, grads = fixed_problem(steps=8)
    opt = AdaBelief(learning_rate=0.01, beta_1=0.9, beta_2=0.999,
                    epsilon=eps)
    expected = adabelief_reference(w0, grads, 0.01, 0.9, 0.999, eps)
    assert_trajectory(run_keras(opt, w0, grads), expected)


def test_invalid_arguments():
    cases = [
        ({"learning_rate": -1.0}, "learning_rate=-1.0"),
        ({"beta_1": 1.5}, "beta_1=1.5"),
        ({"epsilon": -1e-8}, "epsilon=-1e-08"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            AdaBelief(**kwargs)
