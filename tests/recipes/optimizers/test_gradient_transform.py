import keras
import numpy as np
import pytest

from recipes.optimizers import GradientTransform
from tests.helpers import only_on

SHAPES = [(3, 4), (4,), (2, 2, 3, 4)]


def centralize_reference(g):
    if g.ndim <= 1:
        return g
    flat = g.reshape(-1, g.shape[-1])
    return (flat - flat.mean(axis=0)).reshape(g.shape)


def agc_reference(g, w, clip, eps):
    """Brock et al. 2021: unit-wise ratio ||G_i|| / max(||W_i||, eps).

    A vector (bias, gain) is a single unit, as in the paper's reference
    implementation."""
    if w.ndim <= 1:
        w_units = np.linalg.norm(w).reshape(1, 1)
        g_units = np.linalg.norm(g).reshape(1, 1)
        g_flat = g[None]
    else:
        w_flat = w.reshape(-1, w.shape[-1])
        g_flat = g.reshape(-1, g.shape[-1])
        w_units = np.linalg.norm(w_flat, axis=0, keepdims=True)
        g_units = np.linalg.norm(g_flat, axis=0, keepdims=True)
    w_units = np.maximum(w_units, eps)
    clipped = np.where(
        g_units / w_units > clip, g_flat * clip * w_units / g_units, g_flat
    )
    return clipped.reshape(g.shape)


def _one_step(transform, params, grads, lr=0.1):
    variables = [keras.Variable(p) for p in params]
    transform.apply([keras.ops.convert_to_tensor(g) for g in grads],
                    variables)
    return [v.numpy() for v in variables]


def _problem(scale):
    rng = np.random.default_rng(0)
    params = [rng.normal(size=s).astype("float32") for s in SHAPES]
    grads = [scale * rng.normal(size=s).astype("float32") for s in SHAPES]
    return params, grads


def test_gradient_centralization():
    params, grads = _problem(1.0)
    opt = GradientTransform(keras.optimizers.SGD(0.1),
                            gradient_centralization=True)
    result = _one_step(opt, params, grads)
    for r, w, g in zip(result, params, grads, strict=True):
        np.testing.assert_allclose(r, w - 0.1 * centralize_reference(g),
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("clip", [0.01, 0.5, 100.0])
def test_adaptive_gradient_clipping(clip):
    params, grads = _problem(3.0)
    # A zero unit shows why eps exists: it may still move.
    params[0][:, 0] = 0.0
    opt = GradientTransform(keras.optimizers.SGD(0.1), agc_clip_factor=clip)
    result = _one_step(opt, params, grads)
    for r, w, g in zip(result, params, grads, strict=True):
        expected = w - 0.1 * agc_reference(g, w, clip, 1e-3)
        np.testing.assert_allclose(r, expected, rtol=1e-6, atol=1e-6)


def test_a_bias_vector_is_clipped_as_one_unit():
    # ||w|| = 5, ||g|| = 10: with clip 0.5 the whole gradient is scaled to
    # norm 2.5 (direction kept). Element-wise clipping would have clipped
    # only the large component (|g_0| = 8 > 0.5 * |w_0| = 1.5).
    w = np.array([3.0, 4.0], "float32")
    g = np.array([8.0, 6.0], "float32")
    opt = GradientTransform(keras.optimizers.SGD(1.0), agc_clip_factor=0.5)
    (result,) = _one_step(opt, [w], [g])
    np.testing.assert_allclose(w - result, g * 2.5 / 10.0, rtol=1e-6)


def test_centralize_then_clip_with_momentum_inner():
    params, grads = _problem(2.0)
    opt = GradientTransform(keras.optimizers.SGD(0.1, momentum=0.9),
                            agc_clip_factor=0.1,
                            gradient_centralization=True)
    result = _one_step(opt, params, grads)
    for r, w, g in zip(result, params, grads, strict=True):
        g = agc_reference(centralize_reference(g), w, 0.1, 1e-3)
        np.testing.assert_allclose(r, w - 0.1 * g, rtol=1e-6, atol=1e-6)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="agc_clip_factor=0"):
        GradientTransform(keras.optimizers.SGD(), agc_clip_factor=0)
    with pytest.raises(ValueError, match="agc_eps=-1"):
        GradientTransform(keras.optimizers.SGD(), agc_eps=-1)


def test_adaptive_clipping_refuses_gradient_accumulation():
    # It would clip each micro-batch gradient: g and -0.9 g, each clipped
    # to the same norm, cancel although their mean is a real update.
    accumulating = keras.optimizers.SGD(1.0, gradient_accumulation_steps=2)
    with pytest.raises(ValueError, match="agc_clip_factor=0.1"):
        GradientTransform(accumulating, agc_clip_factor=0.1)
    from recipes.optimizers import Lookahead

    with pytest.raises(ValueError, match="gradient_accumulation_steps=2"):
        GradientTransform(Lookahead(accumulating), agc_clip_factor=0.1)


def test_centralization_with_gradient_accumulation_matches_numpy():
    # Centralization is linear: per micro-batch or on the mean, the same.
    params, grads = _problem(1.0)
    second = [-0.5 * g for g in grads]
    opt = GradientTransform(
        keras.optimizers.SGD(0.1, gradient_accumulation_steps=2),
        gradient_centralization=True)
    variables = [keras.Variable(w) for w in params]
    opt.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    opt.apply([keras.ops.convert_to_tensor(g) for g in second], variables)
    for v, w, g1, g2 in zip(variables, params, grads, second, strict=True):
        g = centralize_reference((g1 + g2) / 2)
        np.testing.assert_allclose(v.numpy(), w - 0.1 * g, rtol=1e-6,
                                   atol=1e-6)


@pytest.mark.parametrize("loss_scaling", [
    "factor",
    # Keras's LossScaleOptimizer leaks a JAX tracer when `apply` is called
    # eagerly (its `cond` assigns variables); inside `fit` it works.
    pytest.param("optimizer", marks=only_on("tensorflow", "torch")),
])
def test_adaptive_clipping_compares_unscaled_gradients(loss_scaling):
    # The wrapped optimizer unscales after the transform; the threshold
    # lambda * ||W_i|| is on the true gradient.
    params, grads = _problem(3.0)
    if loss_scaling == "factor":
        scale = 1024.0
        opt = GradientTransform(
            keras.optimizers.SGD(0.1, loss_scale_factor=scale),
            agc_clip_factor=0.01)
    else:
        opt = keras.optimizers.LossScaleOptimizer(GradientTransform(
            keras.optimizers.SGD(0.1), agc_clip_factor=0.01))
        scale = opt.initial_scale
    result = _one_step(opt, params, [scale * g for g in grads])
    for r, w, g in zip(result, params, grads, strict=True):
        expected = w - 0.1 * agc_reference(g, w, 0.01, 1e-3)
        np.testing.assert_allclose(r, expected, rtol=1e-6, atol=1e-6)


def embedding_problem():
    """A real Embedding model, a batch using tokens 0 and 1 of 6, and the
    dense gradients of its variables (by name) for that batch."""
    model = keras.Sequential([
        keras.Input((3,), dtype="int32"),
        keras.layers.Embedding(6, 2, name="emb"),
        keras.layers.Flatten(),
        keras.layers.Dense(1, name="fc")])
    x = np.array([[0, 1, 0]])
    y = np.ones((1, 1), "float32")
    # The gradients by hand (any backend): loss = (f @ W + b - y)**2 with
    # f the flattened embeddings of x.
    table, kernel, bias = (v.numpy() for v in model.trainable_variables)
    f = table[x[0]].reshape(1, -1)
    d = 2.0 * (f @ kernel + bias - y)
    d_table = np.zeros_like(table)
    for position, token in enumerate(x[0]):
        d_table[token] += d[0, 0] * kernel.reshape(3, 2)[position]
    grads = {"embeddings": d_table, "kernel": f.T @ d, "bias": d[0]}
    grads = {v.name: grads[v.name] for v in model.trainable_variables}
    return model, x, y, grads


def test_centralization_leaves_embedding_tables_alone():
    # The table's rows are tokens: only the Dense kernel is centralized,
    # and the rows of tokens 2-5, absent from the batch, do not move.
    model, x, y, grads = embedding_problem()
    before = {v.name: v.numpy() for v in model.trainable_variables}
    model.compile(GradientTransform(keras.optimizers.SGD(0.1),
                                    gradient_centralization=True), "mse")
    model.train_on_batch(x, y)  # Traced: the table's gradient is sparse.
    after = {v.name: v.numpy() for v in model.trainable_variables}
    np.testing.assert_array_equal(after["embeddings"][2:],
                                  before["embeddings"][2:])
    expected = {
        "embeddings": before["embeddings"] - 0.1 * grads["embeddings"],
        "kernel": before["kernel"]
        - 0.1 * centralize_reference(grads["kernel"]),
        "bias": before["bias"] - 0.1 * grads["bias"],
    }
    for name, value in expected.items():
        np.testing.assert_allclose(after[name], value, rtol=1e-6,
                                   atol=1e-6, err_msg=name)
