import keras
import numpy as np
import pytest

from recipes.layers import WeightNormalization
from recipes.regularization import (
    WeightDecay,
    add_weight_decay,
    decay_kernels_only,
    regularize_kernels,
)
from tests.helpers import assert_config_round_trip, assert_keras_round_trip

KERNEL_NAMES = {"kernel", "depthwise_kernel", "pointwise_kernel"}


def net():
    """Conv, BN, separable conv, a nested model, a wrapper, LayerNorm."""
    inputs = keras.Input((8, 8, 1))
    # No bias before BN: its gradient is float noise, not a test signal.
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.SeparableConv2D(4, 3, name="sep")(x)
    x = keras.layers.Flatten()(x)
    inner = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(6, name="inner_dense")],
        name="inner")
    x = inner(x)
    x = WeightNormalization(keras.layers.Dense(5, name="wn_dense"),
                            data_init=False)(x)
    x = keras.layers.LayerNormalization(name="ln")(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs, name="net")


def owners(paths):
    return sorted("/".join(p.split("/")[-2:]) for p in paths)


def test_finds_every_kernel_and_nothing_else():
    paths = add_weight_decay(net(), 0.01)
    assert owners(paths) == sorted([
        "conv/kernel", "sep/depthwise_kernel", "sep/pointwise_kernel",
        "inner_dense/kernel", "wn_dense/kernel", "head/kernel"])


def _loss(model, trainable, x, y):
    """MSE plus the model's penalties, as a function of the trainable
    values (BN in training mode; its statistics updates are dropped)."""
    outputs, _, losses = model.stateless_call(
        trainable, [v.value for v in model.non_trainable_variables], x,
        training=True, return_losses=True)
    loss = keras.ops.mean(keras.losses.mean_squared_error(y, outputs))
    return loss + sum(losses) if losses else loss


def _grads(model, x, y):
    """The gradient of `_loss` per variable path, with the backend's own
    autodiff (TensorFlow's tape, `jax.grad` or `torch.autograd.grad`)."""
    trainable = [v.value for v in model.trainable_variables]
    if keras.backend.backend() == "jax":
        import jax

        grads = jax.grad(lambda t: _loss(model, t, x, y))(trainable)
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(trainable)
            loss = _loss(model, trainable, x, y)
        grads = tape.gradient(loss, trainable)
    elif keras.backend.backend() == "torch":
        import torch

        trainable = [t.detach().requires_grad_(True) for t in trainable]
        grads = [g.detach() for g in torch.autograd.grad(
            _loss(model, trainable, x, y), trainable)]
    else:
        pytest.skip(f"no gradient helper for {keras.backend.backend()}")
    return {v.path: np.asarray(g)
            for v, g in zip(model.trainable_variables, grads, strict=True)}


# Single-step tests compile with run_eagerly=True: one step does not repay
# tracing a train function (test_applies_to_an_already_trained_model covers
# the traced path).
def _data():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(16, 8, 8, 1)).astype("float32"),
            rng.normal(size=(16, 3)).astype("float32"))


def test_decoupled_decay_sgd_step_matches_numpy():
    x, y = _data()
    model = net()
    add_weight_decay(model, 0.1)
    lr = 0.05
    model.compile(keras.optimizers.SGD(lr), "mse", run_eagerly=True)
    before = {v.path: np.asarray(v) for v in model.trainable_variables}
    grads = _grads(model, x, y)
    model.train_on_batch(x, y)
    for v in model.trainable_variables:
        expected = before[v.path] - lr * grads[v.path]
        if v.path.split("/")[-1] in KERNEL_NAMES:
            expected = expected * (1 - 0.1)
        np.testing.assert_allclose(np.asarray(v), expected, rtol=1e-4,
                                   atol=1e-6, err_msg=v.path)


def adam_first_step(g, lr, beta_2=0.999, epsilon=1e-7):
    """Keras's first Adam update: m = (1-b1) g, v = (1-b2) g**2, and the
    bias correction folded into the step size (epsilon is not corrected)."""
    v = (1 - beta_2) * g ** 2
    return lr * np.sqrt(1 - beta_2) * g / (np.sqrt(v) + epsilon)


def test_decoupled_decay_is_independent_of_adam_scaling():
    x, y = _data()
    model = net()
    add_weight_decay(model, 0.01)
    model.compile(keras.optimizers.Adam(1e-3), "mse", run_eagerly=True)
    before = {v.path: np.asarray(v) for v in model.trainable_variables}
    grads = _grads(model, x, y)
    model.train_on_batch(x, y)
    for v in model.trainable_variables:
        g = grads[v.path]
        expected = before[v.path] - adam_first_step(g, 1e-3)
        if v.path.split("/")[-1] in KERNEL_NAMES:
            expected = expected * 0.99
        np.testing.assert_allclose(np.asarray(v), expected, rtol=1e-4,
                                   atol=1e-6, err_msg=v.path)


def test_l2_penalty_matches_numpy_and_gradient():
    x, y = _data()
    model = net()
    paths = regularize_kernels(model, keras.regularizers.L2(0.5))
    assert len(paths) == 6
    kernels = [v for v in model.trainable_variables
               if v.path.split("/")[-1] in KERNEL_NAMES]
    expected = 0.5 * sum(np.sum(np.asarray(v) ** 2) for v in kernels)
    np.testing.assert_allclose(float(keras.ops.sum(model.losses)), expected,
                               rtol=1e-5)
    # The penalty changes the gradient of kernels only.
    with_penalty = _grads(model, x, y)
    regularize_kernels(model, None)
    assert model.losses == []
    without = _grads(model, x, y)
    for v in model.trainable_variables:
        extra = with_penalty[v.path] - without[v.path]
        if v.path.split("/")[-1] in KERNEL_NAMES:
            np.testing.assert_allclose(extra, 2 * 0.5 * np.asarray(v),
                                       rtol=1e-4, atol=1e-6)
        else:
            np.testing.assert_allclose(extra, 0.0, atol=1e-7)


def test_applies_to_an_already_trained_model(mnist_5k):
    (x, y), _ = mnist_5k
    model = keras.Sequential([keras.Input((28, 28, 1)),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile(keras.optimizers.SGD(0.0), "mse")
    target = keras.utils.to_categorical(y[:64], 10)
    model.fit(x[:64], target, epochs=1, verbose=0)
    kernel = np.asarray(model.layers[-1].kernel)
    add_weight_decay(model, 0.5)
    model.fit(x[:64], target, epochs=1, batch_size=64, verbose=0)
    np.testing.assert_allclose(np.asarray(model.layers[-1].kernel),
                               0.5 * kernel, rtol=1e-6)


def test_saved_model_keeps_decay_and_penalty(tmp_path):
    x, y = _data()
    model = net()
    add_weight_decay(model, 0.01)
    regularize_kernels(model, keras.regularizers.L1L2(l1=1e-3, l2=1e-2))
    loaded = assert_keras_round_trip(model, x, tmp_path, atol=1e-5)
    kernels = [v for v in loaded.trainable_variables
               if v.path.split("/")[-1] in KERNEL_NAMES]
    assert len(kernels) == 6
    for v in kernels:
        assert isinstance(v.constraint, WeightDecay)
        assert v.constraint.rate == 0.01
        assert v.regularizer.get_config() == {"l1": 1e-3, "l2": 1e-2}
    kernel_ids = {id(v) for v in kernels}
    others = [v for v in loaded.trainable_variables
              if id(v) not in kernel_ids]
    assert others and all(v.constraint is None and v.regularizer is None
                          for v in others)
    np.testing.assert_allclose(float(keras.ops.sum(loaded.losses)),
                               float(keras.ops.sum(model.losses)), rtol=1e-6)


def test_weight_decay_constraint_config():
    clone = assert_config_round_trip(WeightDecay(0.25))
    np.testing.assert_allclose(clone(np.ones(3, "float32")), 0.75)


def test_decay_kernels_only_with_adamw():
    x, y = _data()
    model = net()
    optimizer = keras.optimizers.AdamW(1e-3, weight_decay=0.5)
    excluded = decay_kernels_only(optimizer, model)
    assert {p.split("/")[-1] for p in excluded} == {"bias", "gamma", "beta",
                                                   "g"}
    model.compile(optimizer, "mse", run_eagerly=True)
    before = {v.path: np.asarray(v) for v in model.trainable_variables}
    grads = _grads(model, x, y)
    model.train_on_batch(x, y)
    for v in model.trainable_variables:
        w = before[v.path]
        if v.path.split("/")[-1] in KERNEL_NAMES:
            w = w - 1e-3 * 0.5 * w  # AdamW decays first, by lr * wd.
        g = grads[v.path]
        np.testing.assert_allclose(np.asarray(v), w - adam_first_step(g, 1e-3),
                                   rtol=1e-4, atol=1e-6, err_msg=v.path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="Received: rate=1.0"):
        add_weight_decay(net(), 1.0)
    with pytest.raises(TypeError, match="Received: model="):
        regularize_kernels("model", "l2")
    with pytest.raises(ValueError, match="must be built"):
        regularize_kernels(keras.Sequential([keras.layers.Dense(2)]), "l2")
    with pytest.raises(ValueError, match="no kernel"):
        add_weight_decay(keras.Sequential([keras.Input((3,)),
                                           keras.layers.ReLU()]), 0.1)
    with pytest.raises(ValueError, match="weight decay"):
        decay_kernels_only(keras.optimizers.Adam(), net())
    with pytest.raises(TypeError, match="Received: optimizer="):
        decay_kernels_only("adamw", net())


def test_existing_constraint_is_not_silently_replaced():
    model = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(2, name="a"),
        keras.layers.Dense(2, name="b",
                           kernel_constraint=keras.constraints.MaxNorm(2))])
    with pytest.raises(ValueError, match="already has the constraint"):
        add_weight_decay(model, 0.1)
    # Nothing was changed.
    assert model.layers[0].kernel.constraint is None


class _Block(keras.layers.Layer):
    """A custom layer whose Dense is created from the block's arguments."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fc = keras.layers.Dense(8, name="fc")

    def call(self, x):
        return self.fc(x)


def _attention_model():
    inputs = keras.Input((4, 8))
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4,
                                        name="mha")(inputs, inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(x))


def _block_model():
    inputs = keras.Input((8,))
    x = _Block(name="block")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(x))


@pytest.mark.parametrize("make, missed", [
    (_attention_model, ["mha/query/kernel", "mha/key/kernel",
                        "mha/value/kernel", "mha/attention_output/kernel"]),
    (_block_model, ["block/fc/kernel"]),
])
def test_kernels_inside_other_layers_are_refused_not_skipped(make, missed):
    for apply in (lambda m: add_weight_decay(m, 1e-3),
                  lambda m: regularize_kernels(m, "l2")):
        model = make()
        with pytest.raises(ValueError) as info:
            apply(model)
        for path in missed:
            assert repr(path) in str(info.value)
        # Nothing was changed, the head included.
        assert all(v.constraint is None and v.regularizer is None
                   for v in model.weights)
        assert not model.losses


def test_decay_kernels_only_keeps_kernels_inside_other_layers():
    # MultiHeadAttention's kernels are kernels: they keep AdamW's decay,
    # everything else is excluded (zero gradients: decay alone moves).
    model = _attention_model()
    optimizer = keras.optimizers.AdamW(0.1, weight_decay=0.5)
    excluded = decay_kernels_only(optimizer, model)
    assert excluded and all(p.endswith("bias") for p in excluded)
    before = [np.asarray(v) for v in model.trainable_variables]
    optimizer.apply([keras.ops.zeros(v.shape, v.dtype)
                     for v in model.trainable_variables],
                    model.trainable_variables)
    for v, w in zip(model.trainable_variables, before, strict=True):
        factor = 1.0 if v.path in excluded else 1 - 0.1 * 0.5
        np.testing.assert_allclose(np.asarray(v), w * factor, rtol=1e-6,
                                   err_msg=v.path)


def test_decay_kernels_only_with_a_wrapper_optimizer():
    # Ranger nests RAdam two levels deep; the wrapper reports RAdam's decay
    # and forwards the exclusion (zero gradients: decay alone moves).
    from recipes.optimizers import get

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        2, bias_initializer="ones", name="fc")], name="net")
    optimizer = get("ranger", learning_rate=0.1, weight_decay=0.5)
    assert decay_kernels_only(optimizer, model) == ["net/fc/bias"]
    kernel = np.asarray(model.layers[0].kernel)
    optimizer.apply([keras.ops.zeros(v.shape, v.dtype)
                     for v in model.trainable_variables],
                    model.trainable_variables)
    np.testing.assert_allclose(np.asarray(model.layers[0].kernel),
                               kernel * (1 - 0.1 * 0.5), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(model.layers[0].bias), np.ones(2))


def test_weight_decay_rate_is_per_apply_call_under_accumulation():
    # As documented: Keras applies constraints on every micro-batch call,
    # so one real update over 4 micro-batches decays by (1 - rate) ** 4.
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(
        1, use_bias=False, kernel_initializer="ones")])
    add_weight_decay(model, 0.1)
    optimizer = keras.optimizers.SGD(0.1, gradient_accumulation_steps=4)
    for _ in range(4):
        optimizer.apply([keras.ops.zeros((2, 1))], model.trainable_variables)
    assert int(optimizer.iterations) == 1
    np.testing.assert_allclose(np.asarray(model.trainable_variables[0]),
                               np.full((2, 1), 0.9 ** 4), rtol=1e-6)
    assert "per micro-batch" in WeightDecay.__doc__


@pytest.mark.parametrize("wrapped", [False, True])
def test_decay_kernels_only_restricts_lars_coupled_decay(wrapped):
    # LARS keeps its decay apart from Keras's `weight_decay` (it is coupled
    # to the trust ratio); the exclusion still applies to it. With zero
    # gradients and trust 1 (gradient norm 0), one step of LARS is
    # w - lr * wd * w for decayed variables and leaves excluded ones.
    from recipes.optimizers import LARS, Lookahead

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        2, name="fc", bias_initializer="ones")], name="net")
    optimizer = LARS(learning_rate=0.1, weight_decay=0.5, momentum=0.0,
                     exclude_bias_and_norm=False)
    if wrapped:
        optimizer = Lookahead(optimizer)
    assert decay_kernels_only(optimizer, model) == ["net/fc/bias"]
    kernel = np.asarray(model.layers[0].kernel)
    optimizer.apply([keras.ops.zeros((4, 2)), keras.ops.zeros((2,))],
                    model.trainable_variables)
    np.testing.assert_allclose(np.asarray(model.layers[0].kernel),
                               kernel * (1 - 0.1 * 0.5), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(model.layers[0].bias), np.ones(2))
    with pytest.raises(ValueError, match="no weight decay"):
        decay_kernels_only(LARS(), model)
