"""Schedule callbacks in real `model.fit` on MNIST-5k: the learning rate
(and momentum) Keras actually hands to the optimizer at each step."""

import math

import keras
import numpy as np
import pytest

import callbacks
from tests.callbacks._recording import RecordingAdam, RecordingSGD
from tests.helpers import (
    mlp,
    needs_steps_per_execution,
    only_on,
    steps_per_execution,
)

# Keras's torch optimizers cannot follow a momentum schedule: refused there
# (tests/test_backend_support.py).
MOMENTUM_CYCLING = only_on("tensorflow", "jax")

BATCH = 100  # 4000 / 100 = 40 steps per epoch


@pytest.fixture(scope="module")
def data(mnist_5k):
    (x, y), _ = mnist_5k
    return x[:2000], y[:2000]  # 20 steps per epoch


def compiled(optimizer, spe=1):
    model = mlp(units=32)
    model.compile(optimizer, "sparse_categorical_crossentropy",
                  steps_per_execution=spe)
    return model


def logged(optimizer, n, start=0):
    return np.asarray(optimizer.lr_log.numpy()[start:start + n], "float64")


def clr(t, lo=1e-3, hi=1e-2, size=7):
    cycle = math.floor(1 + t / (2 * size))
    x = abs(t / size - 2 * cycle + 1)
    return lo + (hi - lo) * max(0.0, 1 - x)


@pytest.mark.parametrize(
    "spe", [1, pytest.param(4, marks=needs_steps_per_execution)])
def test_cyclical_lr_is_exact_per_step(data, spe):
    x, y = data
    opt = RecordingSGD(0.5)
    model = compiled(opt, spe)
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0,
              callbacks=[callbacks.CyclicalLR(1e-3, 1e-2, step_size=7)])
    np.testing.assert_allclose(logged(opt, 40), [clr(t) for t in range(40)],
                               rtol=1e-5)
    # The compiled float learning rate comes back after fit.
    assert float(opt.learning_rate) == pytest.approx(0.5)
    assert isinstance(opt.learning_rate, keras.Variable)


def test_second_fit_uses_new_schedule_then_plain_lr(data):
    x, y = data
    opt = RecordingSGD(0.05)
    model = compiled(opt, spe=steps_per_execution(4))
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0,
              callbacks=[callbacks.CyclicalLR(1e-3, 1e-2, step_size=7)])
    # Second fit: a different schedule callback, counted from its own start.
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0,
              callbacks=[callbacks.WarmupCosine(0.02, total_steps=20,
                                                 warmup_steps=5)])
    expected = [0.02 * t / 5 if t < 5 else
                0.01 * (1 + math.cos(math.pi * (t - 5) / 15))
                for t in range(20)]
    np.testing.assert_allclose(logged(opt, 20, start=20), expected,
                               rtol=1e-5, atol=1e-9)
    # Third fit without callbacks: the plain float LR, no stale schedule.
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    np.testing.assert_allclose(logged(opt, 20, start=40), 0.05, rtol=1e-6)


def test_wrapped_optimizer_gets_the_schedule(data):
    # LossScaleOptimizer (what mixed_float16 uses) delegates the LR to the
    # optimizer it wraps: the schedule must reach that one.
    x, y = data
    inner = RecordingSGD(0.5)
    model = compiled(keras.optimizers.LossScaleOptimizer(inner),
                     spe=steps_per_execution(4))
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0,
              callbacks=[callbacks.CyclicalLR(1e-3, 1e-2, step_size=7)])
    np.testing.assert_allclose(logged(inner, 20), [clr(t) for t in range(20)],
                               rtol=1e-5)
    assert float(inner.learning_rate) == pytest.approx(0.5)


def test_initial_epoch_resumes_at_the_right_step(data):
    x, y = data
    opt = RecordingSGD(0.05)
    model = compiled(opt)
    model.fit(x, y, batch_size=BATCH, epochs=3, initial_epoch=2, verbose=0,
              callbacks=[callbacks.CyclicalLR(1e-3, 1e-2, step_size=7)])
    # Epoch 2 of 20-step epochs: the schedule starts at step 40.
    np.testing.assert_allclose(logged(opt, 20),
                               [clr(t) for t in range(40, 60)], rtol=1e-5)


def test_restart_false_continues_the_global_step(data):
    x, y = data
    opt = RecordingSGD(0.05)
    model = compiled(opt)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[
        callbacks.CyclicalLR(1e-3, 1e-2, step_size=7, restart=False)])
    np.testing.assert_allclose(logged(opt, 20, start=20),
                               [clr(t) for t in range(20, 40)], rtol=1e-5)


def torch_cos(start, end, frac):
    return end + (start - end) / 2 * (math.cos(math.pi * frac) + 1)


@MOMENTUM_CYCLING
@pytest.mark.parametrize(
    "spe", [1, pytest.param(4, marks=needs_steps_per_execution)])
def test_one_cycle_cycles_adam_beta_1_inversely(data, spe):
    x, y = data
    opt = RecordingAdam(1e-3)
    model = compiled(opt, spe)
    total = 40
    history = model.fit(
        x, y, batch_size=BATCH, epochs=2, verbose=0,
        callbacks=[callbacks.OneCycleLR(1e-2, total_steps=total),
                   callbacks.LearningRateMonitor()])
    up = 0.25 * total - 1
    lr_expected, mom_expected = [], []
    for t in range(total):
        if t <= up:
            lr_expected.append(torch_cos(1e-2 / 25, 1e-2, t / up))
            mom_expected.append(torch_cos(0.95, 0.85, t / up))
        else:
            frac = (t - up) / (total - 1 - up)
            lr_expected.append(torch_cos(1e-2, 1e-2 / 25 / 1e4, frac))
            mom_expected.append(torch_cos(0.85, 0.95, frac))
    np.testing.assert_allclose(logged(opt, total), lr_expected, rtol=1e-4)
    np.testing.assert_allclose(opt.momentum_log.numpy()[:total],
                               mom_expected, rtol=1e-5)
    # Monitor: LR of the last step of each epoch, into History.
    np.testing.assert_allclose(history.history["learning_rate"],
                               [lr_expected[19], lr_expected[39]], rtol=1e-4)
    np.testing.assert_allclose(history.history["beta_1"],
                               [mom_expected[19], mom_expected[39]],
                               rtol=1e-5)
    # beta_1 is a plain float again after fit.
    assert type(opt.beta_1) is float and opt.beta_1 == 0.9


@MOMENTUM_CYCLING
def test_one_cycle_sgd_momentum_update_matches_numpy():
    # One weight, constant gradient 1: the SGD-momentum recursion with the
    # per-step LR and momentum of the cycle, written out in NumPy.
    model = keras.Sequential([keras.Input((1,)),
                              keras.layers.Dense(1, use_bias=False,
                                                 kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=lambda y_true, y_pred: keras.ops.mean(y_pred),
                  steps_per_execution=steps_per_execution(3))
    x = np.ones((12, 1), "float32")
    cb = callbacks.OneCycleLR(0.1, total_steps=12, pct_start=0.5)
    model.fit(x, x, batch_size=1, epochs=1, verbose=0, shuffle=False,
              callbacks=[cb])
    w, velocity = 0.0, 0.0
    up = 0.5 * 12 - 1
    for t in range(12):
        frac = t / up if t <= up else (t - up) / (11 - up)
        if t <= up:
            lr, m = torch_cos(0.004, 0.1, frac), torch_cos(0.95, 0.85, frac)
        else:
            lr = torch_cos(0.1, 0.004 / 1e4, frac)
            m = torch_cos(0.85, 0.95, frac)
        # Keras SGD: v = m * v - lr * g ; w = w + v
        velocity = m * velocity - lr * 1.0
        w += velocity
    assert float(model.get_weights()[0][0, 0]) == pytest.approx(w, rel=1e-5)



def newton_schulz5(g, steps=5, a=3.4445, b=-4.7750, c=2.0315):
    # Muon's quintic Newton-Schulz orthogonalization (Jordan et al.).
    transposed = g.shape[0] > g.shape[1]
    x = g.T if transposed else g
    x = x / (np.linalg.norm(x) + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if transposed else x


@MOMENTUM_CYCLING
def test_one_cycle_cycles_both_muon_momenta_in_the_train_step():
    # Muon updates the 2-D kernel by its Nesterov-momentum step (`momentum`)
    # and the bias by AdamW (`adam_beta_1`): both follow the cycle, as a
    # NumPy Muon with the per-step LR and coefficients shows.
    total, rng = 12, np.random.default_rng(0)
    x = rng.normal(size=(total, 3)).astype("float32")
    y = rng.normal(size=(total, 2)).astype("float32")
    kernel = (0.5 * rng.normal(size=(3, 2))).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.set_weights([kernel, np.zeros(2, "float32")])
    opt = keras.optimizers.Muon(0.01, weight_decay=0.0,
                                adam_weight_decay=0.0)
    model.compile(opt, "mse", steps_per_execution=steps_per_execution(3))
    history = model.fit(x, y, batch_size=1, epochs=1, verbose=0,
                        shuffle=False, callbacks=[
                            callbacks.OneCycleLR(0.05, total, pct_start=0.5),
                            callbacks.LearningRateMonitor()])

    w, bias = kernel.astype("float64"), np.zeros(2)
    m_w, m_b, v_b = np.zeros_like(w), np.zeros(2), np.zeros(2)
    up = 0.5 * total - 1
    for t in range(total):
        if t <= up:
            lr = torch_cos(0.05 / 25, 0.05, t / up)
            beta = torch_cos(0.95, 0.85, t / up)
        else:
            frac = (t - up) / (total - 1 - up)
            lr = torch_cos(0.05, 0.05 / 25 / 1e4, frac)
            beta = torch_cos(0.85, 0.95, frac)
        # d(mean squared error over 2 outputs) / d(prediction).
        err = x[t:t + 1] @ w + bias - y[t:t + 1]
        g_w, g_b = x[t:t + 1].T @ err, err[0]
        # Muon step of the kernel, Nesterov, Moonlight scale 0.2*sqrt(3).
        m_w = beta * m_w + g_w
        w = w - lr * 0.2 * math.sqrt(3) * newton_schulz5(g_w + beta * m_w)
        # AdamW step of the bias (beta_2 = 0.999, epsilon = 1e-7).
        m_b = beta * m_b + (1 - beta) * g_b
        v_b = 0.999 * v_b + 0.001 * g_b**2
        alpha = lr * math.sqrt(1 - 0.999 ** (t + 1)) / (1 - beta ** (t + 1))
        bias = bias - alpha * m_b / (np.sqrt(v_b) + 1e-7)
    got_w, got_b = model.get_weights()
    np.testing.assert_allclose(got_w, w, atol=1e-6)
    np.testing.assert_allclose(got_b, bias, atol=1e-5)
    assert history.history["momentum"] == pytest.approx([beta], rel=1e-5)
    assert history.history["adam_beta_1"] == pytest.approx([beta], rel=1e-5)
    # Both come back as the floats Muon was built with.
    assert type(opt.momentum) is float and opt.momentum == 0.95
    assert type(opt.adam_beta_1) is float and opt.adam_beta_1 == 0.9


def test_schedule_lr_accepts_keras_schedule_and_saves_mid_fit(data,
                                                              tmp_path):
    x, y = data
    opt = keras.optimizers.Adam(1e-3)
    model = compiled(opt, spe=steps_per_execution(4))
    path = str(tmp_path / "ckpt.keras")
    sched = keras.optimizers.schedules.CosineDecay(2e-3, 40)
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[
        callbacks.ScheduleLR(sched),
        keras.callbacks.ModelCheckpoint(path)])
    # The checkpoint written mid-fit holds the optimizer as compiled.
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert float(loaded.optimizer.learning_rate) == pytest.approx(1e-3)
    assert len(loaded.optimizer.variables) == len(opt.variables)
    np.testing.assert_allclose(loaded.predict(x[:50], verbose=0),
                               model.predict(x[:50], verbose=0), atol=1e-6)


def test_two_schedule_callbacks_in_one_fit_is_an_error(data):
    x, y = data
    model = compiled(keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match="Only one learning-rate schedule"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[
            callbacks.CyclicalLR(1e-3, 1e-2, 5),
            callbacks.WarmupCosine(1e-2, 100)])


def test_bad_arguments():
    with pytest.raises(ValueError, match="`step_size`.*Received"):
        callbacks.CyclicalLR(1e-3, 1e-2, step_size=0)
    with pytest.raises(ValueError, match="`maximal_learning_rate`"):
        callbacks.CyclicalLR(1e-2, 1e-3, step_size=3)
    with pytest.raises(ValueError, match="`warmup_steps`.*Received"):
        callbacks.WarmupCosine(1e-3, total_steps=10, warmup_steps=20)
    with pytest.raises(ValueError, match="`base_momentum`.*Received"):
        callbacks.OneCycleLR(1e-2, 100, base_momentum=0.99)
    with pytest.raises(TypeError, match="`schedule`.*Received"):
        callbacks.ScheduleLR(0.1)
    with pytest.raises(ValueError, match="`peak_learning_rate`"):
        callbacks.WarmupCosine(-1.0, total_steps=10)


class _FailAtBatch(keras.callbacks.Callback):
    """Raises mid-epoch, like Ctrl-C or a bad batch: Keras then skips
    `on_train_end`."""

    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            raise RuntimeError("interrupted")


def _tiny():
    rng = np.random.default_rng(0)
    x = rng.random((40, 3)).astype("float32")
    y = rng.random((40, 1)).astype("float32")
    return x, y


def _tiny_model(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer, "mse")
    return model


def _interrupted_one_cycle(opt):
    """A model whose `fit` with OneCycleLR raised at batch 3 (no
    on_train_end, so the controller stays on `opt`)."""
    x, y = _tiny()
    model = _tiny_model(opt)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[
            callbacks.OneCycleLR(1.0, 100), _FailAtBatch(3)])
    return model, x, y


@MOMENTUM_CYCLING
def test_fit_after_an_interrupted_fit_gets_a_fresh_controller():
    opt = RecordingSGD(0.5, momentum=0.9)
    model, x, y = _interrupted_one_cycle(opt)
    # A new schedule callback replaces the stale controller (no "Only one
    # learning-rate schedule callback" error) and counts from its start.
    model.fit(x, y, batch_size=4, epochs=2, verbose=0,
              callbacks=[callbacks.CyclicalLR(1e-3, 1e-2, step_size=7)])
    np.testing.assert_allclose(logged(opt, 20, start=4),
                               [clr(t) for t in range(20)], rtol=1e-5)
    # Momentum is no longer cycled: the compiled 0.9 at every step.
    np.testing.assert_allclose(opt.momentum_log.numpy()[4:24], 0.9,
                               rtol=1e-6)
    assert isinstance(opt.learning_rate, keras.Variable)
    assert float(opt.learning_rate) == pytest.approx(0.5)
    assert type(opt.momentum) is float


@MOMENTUM_CYCLING
def test_restore_optimizer_after_an_interrupted_fit():
    opt = RecordingSGD(0.01, momentum=0.9)
    model, x, y = _interrupted_one_cycle(opt)
    assert callbacks.restore_optimizer(model) is True
    assert callbacks.restore_optimizer(model) is False
    assert isinstance(opt.learning_rate, keras.Variable)
    assert float(opt.learning_rate) == pytest.approx(0.01)
    assert type(opt.momentum) is float and opt.momentum == 0.9
    # A plain fit uses the compiled LR and momentum again, and the LR is
    # settable.
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    np.testing.assert_allclose(logged(opt, 10, start=4), 0.01, rtol=1e-6)
    np.testing.assert_allclose(opt.momentum_log.numpy()[4:14], 0.9,
                               rtol=1e-6)
    opt.learning_rate = 1e-3
    assert float(opt.learning_rate) == pytest.approx(1e-3)


def _unknown_length(x, y, batch_size):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    return ds.filter(lambda a, b: True)  # cardinality: unknown


def test_initial_epoch_with_unknown_steps_raises_and_restores():
    x, y = _tiny()
    opt = RecordingSGD(0.5)
    model = _tiny_model(opt)
    schedule = callbacks.schedules.LinearSchedule(1.0, 0.0, 100)
    with pytest.raises(ValueError, match="steps_per_epoch=None"):
        model.fit(_unknown_length(x, y, 4), epochs=3, initial_epoch=2,
                  shuffle=False, verbose=0,
                  callbacks=[callbacks.ScheduleLR(schedule)])
    assert callbacks.restore_optimizer(model) is False
    assert float(opt.learning_rate) == pytest.approx(0.5)
    # With `steps_per_epoch` the schedule resumes at step 2 * 10.
    model.fit(_unknown_length(x, y, 4).repeat(), epochs=3, initial_epoch=2,
              steps_per_epoch=10, shuffle=False, verbose=0,
              callbacks=[callbacks.ScheduleLR(schedule)])
    np.testing.assert_allclose(logged(opt, 10),
                               [1.0 - (20 + t) / 100 for t in range(10)],
                               rtol=1e-5)


class _FlatLoss(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        logs["flat"] = 1.0


@pytest.mark.parametrize("compiled_lr", ["float", "schedule"])
@pytest.mark.parametrize("monitor_first", [False, True])
def test_monitor_logs_the_last_step_rate_beside_plateau(compiled_lr,
                                                        monitor_first):
    x, y = _tiny()
    lr = 0.1 if compiled_lr == "float" else (
        keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5))
    opt = RecordingSGD(lr)
    model = _tiny_model(opt)
    plateau = callbacks.ReduceLROnPlateau(monitor="flat", mode="min",
                                          patience=1, factor=0.5)
    monitor = callbacks.LearningRateMonitor()
    order = [monitor, plateau] if monitor_first else [plateau, monitor]
    history = model.fit(x, y, batch_size=4, epochs=4, verbose=0,
                        shuffle=False, callbacks=[_FlatLoss(), *order])
    # The rate the optimizer received at the last step (9, 19, 29, 39).
    used = opt.lr_log.numpy()[9:40:10]
    np.testing.assert_allclose(history.history["learning_rate"], used,
                               rtol=1e-5)
    if compiled_lr == "float":
        np.testing.assert_allclose(used, [0.1, 0.1, 0.05, 0.025],
                                   rtol=1e-6)


def test_one_cycle_checks_momentum_arguments_also_without_cycling():
    with pytest.raises(ValueError, match="base_momentum=5"):
        callbacks.OneCycleLR(0.1, 100, cycle_momentum=False,
                             base_momentum=5)
