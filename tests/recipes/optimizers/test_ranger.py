import keras
import numpy as np

from callbacks import _keras_compat as keras_compat
from recipes.optimizers import Ranger
from tests.helpers import assert_swap_ema_weights
from tests.recipes.optimizers._steps import assert_trajectory, fixed_problem
from tests.recipes.optimizers.test_gradient_transform import (
    embedding_problem,
)
from tests.recipes.optimizers.test_radam import radam_reference


def ranger_reference(w0, grads, lr, k, alpha, centralize):
    """Lookahead (Algorithm 1, Zhang 2019) around RAdam, with GC."""
    fast = w0.astype(np.float64)
    slow = fast.copy()
    m = np.zeros_like(fast)
    v = np.zeros_like(fast)
    b1, b2, eps, threshold = 0.95, 0.999, 1e-5, 5.0
    rho_inf = 2 / (1 - b2) - 1
    out = []
    for t, g in enumerate(grads, start=1):
        if centralize:
            g = g - g.mean(axis=0, keepdims=True)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho_t > threshold:
            r = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                        / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            fast = fast - lr * r * m_hat * np.sqrt(1 - b2**t) / (
                np.sqrt(v) + eps)
        else:
            fast = fast - lr * m_hat
        if t % k == 0:
            slow = slow + alpha * (fast - slow)
            fast = slow.copy()
        out.append(fast.copy())
    return out


def _run(opt, w0, grads):
    variable = keras.Variable(w0)
    out = []
    for g in grads:
        opt.apply([keras.ops.convert_to_tensor(g)], [variable])
        out.append(variable.numpy())
    return out


def test_matches_lookahead_radam_with_centralization():
    w0, grads = fixed_problem(steps=13)
    opt = Ranger(learning_rate=0.01, sync_period=4)
    expected = ranger_reference(w0, grads, 0.01, 4, 0.5, centralize=True)
    assert_trajectory(_run(opt, w0, grads), expected)


def test_without_centralization_is_plain_lookahead_radam():
    w0, grads = fixed_problem(steps=7)
    opt = Ranger(learning_rate=0.01, sync_period=3,
                 gradient_centralization=False)
    expected = ranger_reference(w0, grads, 0.01, 3, 0.5, centralize=False)
    assert_trajectory(_run(opt, w0, grads), expected)


def test_reference_of_the_radam_part_agrees():
    # With k=1 and alpha=1 Lookahead is the identity: Ranger is RAdam.
    w0, grads = fixed_problem(steps=6)
    opt = Ranger(learning_rate=0.01, sync_period=1, slow_step_size=1.0,
                 gradient_centralization=False)
    expected = radam_reference(w0, grads, 0.01, 0.95, 0.999, 1e-5, 5.0)
    assert_trajectory(_run(opt, w0, grads), expected)


def test_base_kwargs_reach_radam():
    opt = Ranger(weight_decay=1e-4, clipnorm=1.0)
    assert opt.radam.weight_decay == 1e-4
    assert opt.radam.clipnorm == 1.0
    config = opt.get_config()
    assert config["weight_decay"] == 1e-4
    assert Ranger.from_config(config).get_config() == config


def test_reports_and_swaps_the_ema_of_its_radam():
    # Ranger nests RAdam two levels deep (Lookahead over GradientTransform);
    # SwapEMAWeights must find RAdam's averages through both.
    assert not Ranger().use_ema
    opt = Ranger(1e-2, use_ema=True)
    assert opt.use_ema
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(keras.optimizers.LossScaleOptimizer(opt), "mse")
    w0, grads = fixed_problem(shape=(4, 1), steps=3)
    model.trainable_variables[0].assign(w0)
    for g in grads:
        opt.apply([keras.ops.convert_to_tensor(g)], model.trainable_variables)
    raw = model.trainable_variables[0].numpy()
    average = keras_compat.ema_averages(opt.radam)[0].numpy()
    assert not np.allclose(raw, average)
    assert_swap_ema_weights(model, average, raw)


def test_does_not_centralize_embedding_tables():
    # Centralization is on by default; an Embedding table's rows are
    # tokens, so the table takes RAdam's plain step and the rows of the
    # tokens absent from the batch (2-5) do not move.
    model, x, y, grads = embedding_problem()
    table = model.get_layer("emb").embeddings
    before = table.numpy()
    # Eager, to skip tracing Ranger (test_gradient_transform covers the
    # traced step, where the table's gradient is sparse).
    model.compile(Ranger(learning_rate=0.1), "mse", run_eagerly=True)
    model.train_on_batch(x, y)
    np.testing.assert_array_equal(table.numpy()[2:], before[2:])
    expected = ranger_reference(before, [grads["embeddings"]], 0.1, 6, 0.5,
                                centralize=False)[0]
    np.testing.assert_allclose(table.numpy(), expected, rtol=1e-6,
                               atol=1e-6)
