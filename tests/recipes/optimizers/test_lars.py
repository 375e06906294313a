import keras
import numpy as np
import pytest

from recipes.optimizers import LARS
from tests.recipes.optimizers._steps import ATOL, RTOL


def lars_reference(params, grads, lr, momentum, wd, eta, nesterov, exclude):
    """You et al. 2017, Algorithm 1 (per layer), float64."""
    params = [p.astype(np.float64) for p in params]
    velocity = [np.zeros_like(p) for p in params]
    out = []
    for step_grads in grads:
        for i, (w, g) in enumerate(zip(params, step_grads, strict=True)):
            if exclude and w.ndim <= 1:
                local_lr, d = 1.0, g
            else:
                w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
                local_lr = eta * w_norm / (g_norm + wd * w_norm)
                d = g + wd * w
            velocity[i] = momentum * velocity[i] + lr * local_lr * d
            if nesterov:
                params[i] = w - (momentum * velocity[i] + lr * local_lr * d)
            else:
                params[i] = w - velocity[i]
        out.append([p.copy() for p in params])
    return out


@pytest.mark.parametrize(
    "nesterov, exclude", [(False, True), (True, True), (False, False)]
)
def test_matches_paper_algorithm(nesterov, exclude):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (2, 2, 3, 4)]
    params = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [
        [rng.normal(size=s).astype("float32") for s in shapes]
        for _ in range(6)
    ]
    opt = LARS(learning_rate=2.0, momentum=0.9, weight_decay=0.01,
               trust_coefficient=0.001, nesterov=nesterov,
               exclude_bias_and_norm=exclude)
    variables = [keras.Variable(p) for p in params]
    expected = lars_reference(params, grads, 2.0, 0.9, 0.01, 0.001,
                              nesterov, exclude)
    for step, step_grads in enumerate(grads):
        opt.apply([keras.ops.convert_to_tensor(g) for g in step_grads],
                  variables)
        for v, e in zip(variables, expected[step], strict=True):
            np.testing.assert_allclose(v.numpy(), e, rtol=RTOL, atol=ATOL)


def test_excluded_variables_keep_the_trust_ratio_without_decay():
    # Keras's exclusion list zeroes LARS's coupled decay for the excluded
    # variables (in the trust ratio and in the step), not the trust ratio.
    rng = np.random.default_rng(1)
    params = [rng.normal(size=(3, 4)).astype("float32") for _ in range(2)]
    grads = [[rng.normal(size=(3, 4)).astype("float32") for _ in range(2)]
             for _ in range(3)]
    variables = [keras.Variable(params[0], name="kernel"),
                 keras.Variable(params[1], name="table")]
    opt = LARS(learning_rate=2.0, momentum=0.9, weight_decay=0.05,
               trust_coefficient=0.001)
    opt.exclude_from_weight_decay(var_names=["table"])
    decayed = lars_reference(params[:1], [g[:1] for g in grads], 2.0, 0.9,
                             0.05, 0.001, False, True)
    excluded = lars_reference(params[1:], [g[1:] for g in grads], 2.0, 0.9,
                              0.0, 0.001, False, True)
    for step, step_grads in enumerate(grads):
        opt.apply([keras.ops.convert_to_tensor(g) for g in step_grads],
                  variables)
        np.testing.assert_allclose(variables[0].numpy(), decayed[step][0],
                                   rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(variables[1].numpy(), excluded[step][0],
                                   rtol=RTOL, atol=ATOL)


def test_weight_decay_is_not_applied_twice():
    # LARS's decay lives in its update; Keras's decoupled decay stays off.
    opt = LARS(weight_decay=0.1)
    assert opt.weight_decay is None
    assert opt.get_config()["weight_decay"] == 0.1


def test_invalid_arguments():
    with pytest.raises(ValueError, match="trust_coefficient=0"):
        LARS(trust_coefficient=0)
    with pytest.raises(ValueError, match="momentum=1.0"):
        LARS(momentum=1.0)
