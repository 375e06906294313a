import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from callbacks.pruning import MagnitudePruner, Pruning, PruningSpec
from tests.helpers import mlp, only_on, steps_per_execution

# Refused on JAX at construction (tests/test_backend_support.py).
pytestmark = only_on("tensorflow", "torch")


def _compiled(model, learning_rate=1e-3, optimizer=None, **kwargs):
    model.compile(
        optimizer or keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
        **kwargs,
    )
    return model


def _kernels(model):
    return [layer.kernel.numpy() for layer in model.layers
            if hasattr(layer, "kernel")]


def _numpy_sparsity(t, s_i, s_f, t0, t1, power=3):
    """Zhu & Gupta (2017), eq. 1, written independently in NumPy."""
    t = np.clip(t, t0, t1)
    return s_f + (s_i - s_f) * (1.0 - (t - t0) / (t1 - t0)) ** power


def test_schedule_matches_zhu_gupta_formula():
    spec = PruningSpec(0.9, begin_step=10, end_step=110, frequency=20,
                       initial_sparsity=0.1)
    steps = np.arange(0, 140)
    got = np.array([float(spec.sparsity_at(t)) for t in steps])
    want = _numpy_sparsity(steps, 0.1, 0.9, 10, 110)
    np.testing.assert_allclose(got, want, atol=1e-6)
    # Hand values: halfway, (1 - 0.5)^3 = 0.125 of the gap remains.
    assert float(spec.sparsity_at(60)) == pytest.approx(0.9 - 0.8 * 0.125)
    updates = [t for t in steps if bool(spec.is_update_step(t))]
    assert updates == [10, 30, 50, 70, 90, 110]


def test_end_step_is_an_update_step_off_the_beat():
    spec = PruningSpec(0.5, begin_step=0, end_step=25, frequency=10)
    updates = [t for t in range(40) if bool(spec.is_update_step(t))]
    assert updates == [0, 10, 20, 25]


def _frozen_step_fit(model, x, y, callback, steps):
    """Train `steps` steps with SGD(lr=0): weights stay at their init."""
    _compiled(model, optimizer=keras.optimizers.SGD(0.0))
    model.fit(x[:32 * steps], y[:32 * steps], batch_size=32, epochs=1,
              verbose=0, callbacks=[callback])


def test_one_shot_masks_match_numpy_magnitude_ranking(mnist_5k):
    (x, y), _ = mnist_5k
    model = mlp(units=32)
    before = _kernels(model)
    cb = Pruning(0.7, schedule="constant", begin_step=0, end_step=0,
                 frequency=1)
    _frozen_step_fit(model, x, y, cb, steps=1)
    for w0, w1 in zip(before, _kernels(model), strict=True):
        k = int(round(0.7 * w0.size))
        threshold = np.sort(np.abs(w0).ravel())[k - 1]
        np.testing.assert_array_equal(w1 == 0, np.abs(w0) <= threshold)
        np.testing.assert_array_equal(w1[w1 != 0], w0[w1 != 0])


def test_global_scope_uses_one_threshold(mnist_5k):
    (x, y), _ = mnist_5k
    model = mlp(units=32)
    before = _kernels(model)
    cb = Pruning(0.6, schedule="constant", end_step=0, frequency=1,
                 scope="global")
    _frozen_step_fit(model, x, y, cb, steps=1)
    all_w = np.concatenate([np.abs(w).ravel() for w in before])
    k = int(round(0.6 * all_w.size))
    threshold = np.sort(all_w)[k - 1]
    after = _kernels(model)
    for w0, w1 in zip(before, after, strict=True):
        np.testing.assert_array_equal(w1 == 0, np.abs(w0) <= threshold)
    # Per-layer sparsities differ while the total hits the target.
    layer_sparsity = [np.mean(w == 0) for w in after]
    assert abs(layer_sparsity[0] - layer_sparsity[1]) > 0.05
    zeros = sum(int(np.sum(w == 0)) for w in after)
    assert zeros == k


def test_schedule_is_followed_in_graph_with_steps_per_execution(mnist_5k):
    (x, y), _ = mnist_5k
    model = _compiled(mlp(units=32),
                      steps_per_execution=steps_per_execution(5))
    cb = Pruning(0.8, begin_step=0, end_step=100, frequency=10)
    sizes = [w.size for w in _kernels(model)]
    # 37 updates: the last mask update was at pruning step 30.
    model.fit(x[:37 * 32], y[:37 * 32], batch_size=32, verbose=0,
              callbacks=[cb])
    expected = _numpy_sparsity(30, 0.0, 0.8, 0, 100)
    for w, size in zip(_kernels(model), sizes, strict=True):
        assert np.sum(w == 0) == int(round(expected * size))
    # 75 more updates (step 111 > end_step): the target is reached exactly.
    model.fit(x[:75 * 32], y[:75 * 32], batch_size=32, verbose=0,
              callbacks=[cb])
    assert int(cb.pruner.step.numpy()) == 112
    for w, size in zip(_kernels(model), sizes, strict=True):
        assert np.sum(w == 0) == int(round(0.8 * size))


def test_masks_stay_applied_and_callback_detaches(mnist_5k):
    (x, y), _ = mnist_5k
    model = _compiled(mlp(units=32))
    cb = Pruning(0.5, schedule="constant", end_step=0, frequency=1)
    model.fit(x[:640], y[:640], batch_size=32, verbose=0, callbacks=[cb])
    zeros = [w == 0 for w in _kernels(model)]
    model.fit(x[:640], y[:640], batch_size=32, verbose=0, callbacks=[cb])
    for before, w in zip(zeros, _kernels(model), strict=True):
        np.testing.assert_array_equal(w == 0, before)
    # Outside the callback the model is plain Keras: zeros regrow (except
    # under MNIST's always-blank border pixels, whose gradient is zero).
    assert all(layer.kernel.constraint is None
               for layer in model.layers if hasattr(layer, "kernel"))
    model.fit(x[:320], y[:320], batch_size=32, verbose=0)
    assert np.mean(_kernels(model)[0] == 0) < 0.3


def test_existing_constraint_is_kept_and_chained(mnist_5k):
    (x, y), _ = mnist_5k
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Flatten(),
        keras.layers.Dense(16, kernel_constraint=keras.constraints.NonNeg()),
        keras.layers.Dense(10, activation="softmax"),
    ])
    _compiled(model, 1e-2)
    cb = Pruning(0.5, schedule="constant", end_step=0, frequency=1)
    model.fit(x[:320], y[:320], batch_size=32, verbose=0, callbacks=[cb])
    kernel = model.layers[1].kernel
    assert np.all(kernel.numpy() >= 0)
    assert np.mean(kernel.numpy() == 0) >= 0.5
    assert isinstance(kernel.constraint, keras.constraints.NonNeg)


def test_two_of_four_structure(mnist_5k):
    (x, y), _ = mnist_5k
    model = mlp(units=32)
    before = _kernels(model)
    cb = Pruning(0.5, schedule="constant", end_step=0, frequency=1,
                 structure="2:4")
    _frozen_step_fit(model, x, y, cb, steps=1)
    for w0, w1 in zip(before, _kernels(model), strict=True):
        # Groups of 4 consecutive inputs feeding one output unit.
        groups0 = np.abs(w0).T.reshape(w0.shape[1], -1, 4)
        groups1 = w1.T.reshape(w1.shape[1], -1, 4)
        np.testing.assert_array_equal(np.sum(groups1 == 0, axis=-1), 2)
        keep = np.argsort(np.argsort(groups0, axis=-1), axis=-1) >= 2
        np.testing.assert_array_equal(groups1 != 0, keep)


def test_default_selection_skips_biases_and_embeddings(mnist_5k):
    (x, y), _ = mnist_5k
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Flatten(),
        keras.layers.Dense(16), keras.layers.BatchNormalization(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    cb = Pruning(0.5, schedule="constant", end_step=0, frequency=1)
    _frozen_step_fit(model, x, y, cb, steps=1)
    names = sorted(v.path for _, v in cb.pruner.targets)
    assert names == ["sequential/dense/kernel", "sequential/dense_1/kernel"]
    cb = Pruning(0.5, layers=["dense"], prune_biases=True)
    cb.pruner = None
    cb.set_model(model)
    cb.on_train_begin()
    assert sorted(v.path for _, v in cb.pruner.targets) == [
        "sequential/dense/bias", "sequential/dense/kernel"]
    cb.on_train_end()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target_sparsity": 1.0}, "`target_sparsity` must be < 1"),
        ({"target_sparsity": -0.1}, "`target_sparsity` must be >= 0"),
        ({"schedule": "cubic"}, "`schedule` must be one of"),
        ({"frequency": 0}, "`frequency` must be >= 1"),
        ({"begin_step": 10, "end_step": 5}, "`end_step` must be >= 10"),
        ({"initial_sparsity": 0.9}, "`initial_sparsity` must be <= 0.8"),
        ({"scope": "model"}, "`scope` must be one of"),
        ({"structure": "4:2"}, "`structure` must be `None` or"),
        ({"target_sparsity": 0.8, "structure": "2:4"},
         "`target_sparsity` must be 0.5"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Pruning(**kwargs)


def test_unknown_layer_name_is_reported(mnist_5k):
    (x, y), _ = mnist_5k
    model = _compiled(mlp(units=8))
    with pytest.raises(ValueError, match="not in the model: 'conv'"):
        model.fit(x[:32], y[:32], verbose=0,
                  callbacks=[Pruning(layers=["conv"])])


class _MovesWeightsAfterConstraints(keras.optimizers.SGD):
    """SGD(0) that adds 0.5 to every weight after its constraints ran.

    It stands for any optimizer that writes the weights after the masking
    constraint (as Lookahead's slow-weight sync does).
    """

    def __init__(self):
        super().__init__(learning_rate=0.0, name="moves_weights")

    def apply(self, grads, trainable_variables=None):
        super().apply(grads, trainable_variables)
        for variable in trainable_variables:
            variable.assign_add(keras.ops.full(variable.shape, 0.5,
                                               variable.dtype))


def test_weights_are_masked_after_fit_whatever_the_optimizer_did(mnist_5k):
    (x, y), _ = mnist_5k
    model = mlp(units=32)
    before = _kernels(model)
    _compiled(model, optimizer=_MovesWeightsAfterConstraints())
    cb = Pruning(0.7, schedule="constant", end_step=0, frequency=1)
    steps = 3
    model.fit(x[:32 * steps], y[:32 * steps], batch_size=32, verbose=0,
              callbacks=[cb])
    # Masks from the initial magnitudes (step 0); each step adds 0.5 after
    # masking, and the end of `fit` masks once more.
    for w0, w1 in zip(before, _kernels(model), strict=True):
        k = int(round(0.7 * w0.size))
        keep = np.abs(w0) > np.sort(np.abs(w0).ravel())[k - 1]
        np.testing.assert_allclose(w1, np.where(keep, w0 + 0.5 * steps, 0.0),
                                   rtol=1e-6)
    assert all(layer.kernel.constraint is None
               for layer in model.layers if hasattr(layer, "kernel"))


def test_gradient_accumulation_counts_optimizer_updates(mnist_5k):
    (x, y), _ = mnist_5k
    model = mlp(units=32)
    sizes = [w.size for w in _kernels(model)]
    _compiled(model, optimizer=keras.optimizers.Adam(
        1e-3, gradient_accumulation_steps=2))
    cb = Pruning(0.8, begin_step=0, end_step=10, frequency=2)
    # 10 batches = 5 optimizer updates (steps 0-4): last mask update at 4.
    model.fit(x[:320], y[:320], batch_size=32, verbose=0, callbacks=[cb])
    assert int(model.optimizer.iterations.numpy()) == 5
    assert int(cb.pruner.step.numpy()) == 5
    expected = _numpy_sparsity(4, 0.0, 0.8, 0, 10)
    for w, size in zip(_kernels(model), sizes, strict=True):
        assert np.sum(w == 0) == int(round(expected * size))


_MIRRORED_SCRIPT = textwrap.dedent("""
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from callbacks.pruning import MagnitudePruner, Pruning, PruningSpec

    rng = np.random.default_rng(0)
    x = rng.random((512, 64)).astype("float32")
    y = rng.integers(0, 10, 512)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {}
    for how in ("callback", "pruner_outside_scope"):
        with strategy.scope():
            model = keras.Sequential([keras.Input((64,)),
                                      keras.layers.Dense(32),
                                      keras.layers.Dense(10)])
            model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
                from_logits=True))
        kwargs = dict(target_sparsity=0.5, end_step=16, frequency=1)
        if how == "callback":
            pruner, cbs = None, [Pruning(**kwargs)]
        else:
            pruner = MagnitudePruner(model, PruningSpec(**kwargs))
            pruner.attach()
            cbs = []
        model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=cbs)
        pruner = pruner or cbs[0].pruner
        out[how] = [int(model.optimizer.iterations.numpy()),
                    int(pruner.step.numpy()),
                    [int(np.sum(layer.kernel.numpy() == 0))
                     for layer in model.layers]]
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_schedule_runs_at_one_step_per_update_under_mirrored_strategy():
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    env = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT],
                          capture_output=True, text=True, env=env,
                          timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # 8 updates of 2 replicas: steps 0-7, last masks at step 7, not 15.
    expected = _numpy_sparsity(7, 0.0, 0.5, 0, 16)
    for how in ("callback", "pruner_outside_scope"):
        iterations, step, zeros = out[how]
        assert (iterations, step) == (8, 8), how
        assert zeros == [int(round(expected * 64 * 32)),
                         int(round(expected * 32 * 10))], how


def test_custom_loop_without_compile_counts_each_update():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16)])
    before = model.layers[0].kernel.numpy()
    pruner = MagnitudePruner(model, PruningSpec(0.5, end_step=2,
                                                frequency=1))
    pruner.attach()
    optimizer = keras.optimizers.SGD(0.0)
    for _ in range(2):  # pruning steps 0 and 1
        grads = [keras.ops.zeros_like(v) for v in model.trainable_variables]
        optimizer.apply(grads, model.trainable_variables)
    assert int(pruner.step.numpy()) == 2
    k = int(round(_numpy_sparsity(1, 0.0, 0.5, 0, 2) * before.size))
    keep = np.abs(before) > np.sort(np.abs(before).ravel())[k - 1]
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(),
                                  np.where(keep, before, 0.0))
    pruner.detach()
