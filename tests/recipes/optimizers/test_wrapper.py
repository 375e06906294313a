"""Loss scaling through the wrapper optimizers (`_wrapper.py`)."""

import keras
import numpy as np
import pytest

from recipes.optimizers import GradientTransform, Lookahead, Ranger
from tests.recipes.optimizers._steps import fixed_problem
from tests.recipes.optimizers.test_ranger import ranger_reference

LR = 0.1
SCALE = 1024.0

# One step of each: no Lookahead sync, so each is plain SGD.
WRAPPERS = {
    "lookahead": lambda inner: Lookahead(inner, sync_period=100),
    "gradient_transform": lambda inner: GradientTransform(
        inner, gradient_centralization=True),
    "nested": lambda inner: Lookahead(GradientTransform(inner),
                                      sync_period=100),
}


def _step(optimizer, w0, gradient):
    """One step from `w0`; on JAX through `stateless_apply`, the path of
    the JAX trainer (Keras's `LossScaleOptimizer.apply` leaks a JAX tracer
    when called eagerly, with or without our wrappers)."""
    variable = keras.Variable(w0)
    gradients = [keras.ops.convert_to_tensor(gradient)]
    if keras.backend.backend() != "jax":
        optimizer.apply(gradients, [variable])
        return keras.ops.convert_to_numpy(variable)
    optimizer.build([variable])
    (new_value,), _ = optimizer.stateless_apply(
        [v.value for v in optimizer.variables], gradients, [variable.value])
    return keras.ops.convert_to_numpy(new_value)


def _expected(case, w0, g):
    # Centralization of a (3, 4) kernel: minus the mean over the fan-in.
    if case == "gradient_transform":
        g = g - g.mean(axis=0, keepdims=True)
    return w0 - LR * g


@pytest.mark.parametrize("case", sorted(WRAPPERS))
def test_loss_scale_factor_is_the_wrapped_optimizers(case):
    w0, (g,) = fixed_problem(steps=1)
    expected = _expected(case, w0, g)
    # Alone, the wrapper scales the loss and unscales the gradients with
    # the wrapped optimizer's factor.
    optimizer = WRAPPERS[case](
        keras.optimizers.SGD(LR, loss_scale_factor=SCALE))
    assert optimizer.loss_scale_factor == SCALE
    assert float(optimizer.scale_loss(1.0)) == SCALE
    np.testing.assert_allclose(_step(optimizer, w0, SCALE * g), expected,
                               rtol=1e-6, atol=1e-6)
    # Keras's LossScaleOptimizer clears its inner optimizer's factor; the
    # wrapper must pass that on, or the innermost optimizer divides the
    # already unscaled gradients by its factor again.
    optimizer = keras.optimizers.LossScaleOptimizer(WRAPPERS[case](
        keras.optimizers.SGD(LR, loss_scale_factor=SCALE)))
    assert optimizer.inner_optimizer.loss_scale_factor is None
    np.testing.assert_allclose(
        _step(optimizer, w0, optimizer.initial_scale * g), expected,
        rtol=1e-6, atol=1e-6)


def test_loss_scale_optimizer_around_ranger_unscales_once():
    w0, (g,) = fixed_problem(steps=1)
    optimizer = keras.optimizers.LossScaleOptimizer(
        Ranger(LR, loss_scale_factor=SCALE))
    expected = ranger_reference(w0, [g], LR, 6, 0.5, centralize=True)[0]
    np.testing.assert_allclose(
        _step(optimizer, w0, optimizer.initial_scale * g), expected,
        rtol=1e-6, atol=1e-6)


def test_mixed_float16_training_step_matches_the_plain_optimizer():
    # `compile` wraps the optimizer in a LossScaleOptimizer under
    # mixed_float16: a wrapper must then step as its wrapped optimizer.
    x = np.array([[0.01, 0.02], [0.03, -0.01]], "float32")
    y = np.zeros((2, 1), "float32")
    kernels = []
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        for optimizer in (
                keras.optimizers.SGD(LR, loss_scale_factor=SCALE),
                Lookahead(keras.optimizers.SGD(LR, loss_scale_factor=SCALE),
                          sync_period=100)):
            model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(
                1, use_bias=False, kernel_initializer="ones")])
            model.compile(optimizer, "mse", run_eagerly=True)
            assert isinstance(model.optimizer,
                              keras.optimizers.LossScaleOptimizer)
            model.train_on_batch(x, y)
            kernels.append(
                keras.ops.convert_to_numpy(model.layers[0].kernel))
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    assert not np.allclose(kernels[0], 1.0)
    np.testing.assert_allclose(kernels[1], kernels[0], rtol=1e-6)
