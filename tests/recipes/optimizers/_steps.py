"""Fixed tensors and a step runner shared by the update-rule tests."""

import keras
import numpy as np

RTOL = 1e-6
ATOL = 1e-6


def fixed_problem(shape=(3, 4), steps=8, seed=0):
    """Initial weights and a fixed sequence of gradients (float32)."""
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=shape).astype("float32")
    grads = [rng.normal(size=shape).astype("float32") for _ in range(steps)]
    return w0, grads


def run_keras(optimizer, w0, grads):
    """Apply `grads` one by one; returns the weights after each step."""
    variable = keras.Variable(w0)
    trajectory = []
    for g in grads:
        optimizer.apply([keras.ops.convert_to_tensor(g)], [variable])
        trajectory.append(np.array(variable.numpy()))
    return trajectory


def assert_trajectory(actual, expected):
    for step, (a, e) in enumerate(zip(actual, expected, strict=True)):
        np.testing.assert_allclose(
            a, e, rtol=RTOL, atol=ATOL, err_msg=f"step {step + 1}"
        )
