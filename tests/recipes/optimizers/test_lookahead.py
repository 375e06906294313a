import keras
import numpy as np
import pytest

from recipes.optimizers import Lookahead
from tests.helpers import assert_swap_ema_weights
from tests.recipes.optimizers._steps import (
    assert_trajectory,
    fixed_problem,
    run_keras,
)


def lookahead_momentum_reference(w0, grads, lr, momentum, k, alpha):
    """Zhang et al. 2019, Algorithm 1, inner optimizer momentum SGD."""
    fast = w0.astype(np.float64)
    slow = fast.copy()
    velocity = np.zeros_like(fast)
    out = []
    for t, g in enumerate(grads, start=1):
        velocity = momentum * velocity - lr * g
        fast = fast + velocity
        if t % k == 0:
            slow = slow + alpha * (fast - slow)
            fast = slow.copy()
        out.append(fast.copy())
    return out


@pytest.mark.parametrize("k, alpha", [(5, 0.5), (3, 0.8), (1, 1.0)])
def test_matches_paper_algorithm(k, alpha):
    w0, grads = fixed_problem(steps=11)
    opt = Lookahead(keras.optimizers.SGD(0.1, momentum=0.9),
                    sync_period=k, slow_step_size=alpha)
    expected = lookahead_momentum_reference(w0, grads, 0.1, 0.9, k, alpha)
    assert_trajectory(run_keras(opt, w0, grads), expected)


def test_sync_counts_real_updates_of_an_accumulating_optimizer():
    # With gradient accumulation over 2 micro-steps the inner optimizer
    # updates every 2nd call, so k=2 syncs after 4 calls, not 2.
    w0, grads = fixed_problem(steps=8)
    inner = keras.optimizers.SGD(0.1, gradient_accumulation_steps=2)
    opt = Lookahead(inner, sync_period=2, slow_step_size=0.5)
    averaged = [(grads[i] + grads[i + 1]) / 2 for i in range(0, 8, 2)]
    expected = lookahead_momentum_reference(w0, averaged, 0.1, 0.0, 2, 0.5)
    trajectory = run_keras(opt, w0, grads)
    assert_trajectory(trajectory[1::2], expected)


def test_delegates_learning_rate_and_iterations():
    inner = keras.optimizers.Adam(1e-3)
    opt = Lookahead(inner)
    opt.learning_rate = 5e-4
    np.testing.assert_allclose(inner.learning_rate.numpy(), 5e-4)
    run_keras(opt, *fixed_problem(steps=3))
    assert int(opt.iterations.numpy()) == 3


def test_slow_weights_are_saved_with_the_model(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(Lookahead(keras.optimizers.Adam(1e-2), sync_period=10),
                  loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    model.fit(x, x[:, :2], epochs=3, batch_size=8, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.optimizer, Lookahead)
    for saved, restored in zip(model.optimizer._slow_weights,
                               loaded.optimizer._slow_weights, strict=True):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
    # Six fast steps since the start: the slow weights are still theta_0
    # while the fast weights moved.
    assert not np.allclose(model.optimizer._slow_weights[0].numpy(),
                           model.layers[0].kernel.numpy())


def test_invalid_arguments():
    cases = [
        ({"sync_period": 0}, ValueError, "sync_period=0"),
        ({"sync_period": 2.5}, TypeError, "sync_period=2.5"),
        ({"slow_step_size": 0.0}, ValueError, "slow_step_size=0.0"),
        ({"slow_step_size": 1.5}, ValueError, "slow_step_size=1.5"),
        ({"clipnorm": 1.0}, ValueError, "clipnorm=1.0"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            Lookahead(keras.optimizers.SGD(), **kwargs)


def test_rejects_non_optimizer():
    with pytest.raises(TypeError, match="optimizer='adam'"):
        Lookahead("adam")


def test_constraint_holds_after_a_sync_step():
    # NonNeg after every update, the sync included: phi and theta both take
    # max(phi + alpha * (theta - phi), 0). Without it the sync brings back
    # the negative entries of theta_0 that the slow weights remember.
    w0, grads = fixed_problem(steps=6)
    lr, k, alpha = 0.1, 3, 0.5
    fast = w0.astype(np.float64)
    slow = fast.copy()
    expected = []
    for t, g in enumerate(grads, start=1):
        fast = np.maximum(fast - lr * g, 0.0)
        if t % k == 0:
            slow = np.maximum(slow + alpha * (fast - slow), 0.0)
            fast = slow.copy()
        expected.append(fast.copy())
    variable = keras.Variable(w0)
    variable.constraint = keras.constraints.NonNeg()
    opt = Lookahead(keras.optimizers.SGD(lr), sync_period=k,
                    slow_step_size=alpha)
    trajectory = []
    for g in grads:
        opt.apply([keras.ops.convert_to_tensor(g)], [variable])
        trajectory.append(np.array(variable.numpy()))
    assert (w0 < 0).any()
    assert_trajectory(trajectory, expected)


def _ema_reference(w0, grads, lr, momentum):
    w, average, out = w0.astype(np.float64), None, []
    for g in grads:
        w = w - lr * g
        average = w.copy() if average is None else (
            momentum * average + (1 - momentum) * w)
        out.append(average)
    return w, out[-1]


@pytest.mark.parametrize("mixed", [False, True])
def test_swap_ema_weights_reaches_the_innermost_optimizer(mixed):
    # Two wrapper levels, as in Ranger; under mixed precision Keras adds a
    # LossScaleOptimizer on top. No sync within 3 steps (k=5).
    from recipes.optimizers import GradientTransform

    inner = keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5)
    opt = GradientTransform(Lookahead(inner), gradient_centralization=True)
    assert opt.use_ema
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    compiled = keras.optimizers.LossScaleOptimizer(opt) if mixed else opt
    model.compile(compiled, "mse")
    w0 = model.trainable_variables[0].numpy()
    grads = [np.array([[s], [2 * s], [-s]], "float32")
             for s in (1.0, -2.0, 0.5)]
    for g in grads:
        opt.apply([keras.ops.convert_to_tensor(g)], model.trainable_variables)
    # Centralization subtracts the mean over the fan-in axis.
    centred = [g - g.mean(axis=0, keepdims=True) for g in grads]
    raw, average = _ema_reference(w0, centred, 0.1, 0.5)
    assert_swap_ema_weights(model, average, raw)
