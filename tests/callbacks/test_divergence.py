import math
import os

import keras
import numpy as np
import pytest

from callbacks import ScheduleLR, _lr_control
from callbacks.checkpointing import Checkpointing, _checkpoint_paths, _read
from callbacks.divergence import DivergenceError, DivergenceGuard, is_divergent
from tests.helpers import mlp, needs_steps_per_execution

# The suite's models must never pair a softmax with a logits loss.
pytestmark = pytest.mark.filterwarnings(
    "error:.*received `from_logits=True`, but:UserWarning")

BATCH = 64
STEPS_PER_EPOCH = math.ceil(4000 / BATCH)  # 63 on MNIST-5k


def _compiled(learning_rate=1e-3, input_shape=(28, 28, 1)):
    keras.utils.set_random_seed(0)
    model = mlp(input_shape=input_shape, output_activation=None)
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _accuracy(model, x, y):
    logits = model.predict(x, verbose=0, batch_size=500)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def _all_weights_finite(model):
    return all(np.all(np.isfinite(w)) for w in model.get_weights())


def _checkpoints_finite(directory):
    paths = _checkpoint_paths(directory)
    assert paths
    for path in paths:
        _, groups = _read(path)
        for array in groups["model"] + groups["optimizer"]:
            assert np.all(np.isfinite(array)), path


class SpikeLearningRate(keras.callbacks.Callback):
    """Set the optimizer's own LR variable to `value` once, at `step`.

    Simulates a bad manual LR change; the value lives in the optimizer's
    state, so a rollback of the optimizer undoes it.
    """

    def __init__(self, step, value):
        super().__init__()
        self.step, self.value, self.done = step, value, False

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if not self.done and step == self.step:
            _lr_control.get(self.model).original.assign(self.value)
            self.done = True


class LearningRateAtEnd(keras.callbacks.Callback):
    """The LR the next step would use, read while the controller is on."""

    def on_train_end(self, logs=None):
        optimizer = self.model.optimizer
        self.step = int(optimizer.iterations.numpy())
        self.value = _lr_control.current_learning_rate(optimizer)


def test_poisoned_batch_is_rolled_back_on_mnist(mnist_5k, tmp_path):
    (x, y), (x_val, y_val) = mnist_5k
    x = x.copy()
    x[123] = np.nan  # one poisoned image: its batch gives a NaN loss
    total = 2 * STEPS_PER_EPOCH
    cosine = keras.optimizers.schedules.CosineDecay(2e-3, total)
    guard = DivergenceGuard(snapshot_every=10, verbose=0)
    monitor = LearningRateAtEnd()
    model = _compiled()
    history = model.fit(
        x, y, batch_size=BATCH, epochs=2, verbose=0,
        callbacks=[monitor, Checkpointing(tmp_path, save_freq=5), guard,
                   ScheduleLR(cosine)],
    )
    # The poisoned image is in one batch per epoch: one rollback each. Its
    # NaN reaches the first-layer weights, which ReLU hides from the loss:
    # the periodic state check finds it, and the rollback goes to the
    # snapshot before.
    assert len(guard.rollbacks) == 2
    for step, back_to, reason in guard.rollbacks:
        assert reason in ("loss is nan", "non-finite weights")
        assert 0 < step - back_to <= 10
    assert _all_weights_finite(model)
    assert all(np.isfinite(history.history["loss"]))
    assert _accuracy(model, x_val, y_val) >= 0.85
    _checkpoints_finite(tmp_path)
    # LR = 0.5 ** rollbacks * cosine(step), by the cosine formula.
    step = monitor.step
    assert step == total - sum(s - b for s, b, _ in guard.rollbacks)
    cosine_value = 2e-3 * 0.5 * (1 + math.cos(math.pi * step / total))
    np.testing.assert_allclose(monitor.value, 0.25 * cosine_value, rtol=1e-5)


def test_the_same_poisoned_run_without_guard_ends_in_nan(mnist_5k):
    (x, y), _ = mnist_5k
    x = x.copy()
    x[123] = np.nan
    model = _compiled()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    assert not _all_weights_finite(model)


def test_learning_rate_spike_is_rolled_back_on_mnist(mnist_5k):
    (x, y), (x_val, y_val) = mnist_5k
    guard = DivergenceGuard(snapshot_every=10, verbose=0)
    model = _compiled()
    model.fit(
        x, y, batch_size=BATCH, epochs=2, verbose=0,
        callbacks=[guard, SpikeLearningRate(step=70, value=50.0)],
    )
    assert len(guard.rollbacks) == 1
    step, back_to, reason = guard.rollbacks[0]
    # Step 71 trains with LR 50; the loss of step 72 shows it.
    assert back_to == 70 and step in (71, 72, 73), guard.rollbacks
    assert "median" in reason or "nan" in reason or "inf" in reason
    assert _all_weights_finite(model)
    assert _accuracy(model, x_val, y_val) >= 0.85
    # The rollback restored LR 1e-3; the guard halved it, and a float LR
    # keeps its reduction after fit, like Keras's ReduceLROnPlateau.
    np.testing.assert_allclose(
        float(np.asarray(model.optimizer.learning_rate)), 5e-4, rtol=1e-6)


def test_gives_up_after_max_retries_with_a_finite_model(digits_8x8,
                                                        tmp_path):
    (x, y), _ = digits_8x8
    x = x.copy()
    x[100::9] = np.nan  # most batches of 32 are poisoned after the first
    guard = DivergenceGuard(max_retries=2, snapshot_every=1, verbose=0)
    model = _compiled(1e-2, input_shape=(8, 8, 1))
    with pytest.raises(DivergenceError, match="max_retries=2"):
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False,
                  callbacks=[Checkpointing(tmp_path, save_freq=1), guard])
    assert len(guard.rollbacks) == 2
    assert _all_weights_finite(model)
    _checkpoints_finite(tmp_path)


def test_rolls_back_to_the_checkpoint_directory(digits_8x8, tmp_path):
    (x, y), _ = digits_8x8
    x = x.copy()
    x[500] = np.nan  # in batch 15 (0-based) of an unshuffled epoch
    guard = DivergenceGuard(directory=str(tmp_path), snapshot_every=4,
                            verbose=0)
    model = _compiled(input_shape=(8, 8, 1))
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False,
              callbacks=[Checkpointing(tmp_path, save_freq=4), guard])
    # Checkpoints at steps 4, 8, 12; batch 15 is step 16, whose update
    # makes weights NaN: back to 12. Whether step 16's loss is already NaN
    # depends on the CPU's kernels (finite on the machine this test was
    # written on, NaN on a later AVX2-only one), so either check may catch
    # it first.
    ((step, back_to, reason),) = guard.rollbacks
    assert (step, back_to) == (16, 12)
    assert reason in ("non-finite weights", "loss is nan")
    assert _all_weights_finite(model)
    assert os.listdir(tmp_path)


@pytest.mark.parametrize(
    "loss, history, expected",
    [
        (float("nan"), [1.0] * 20, "loss is nan"),
        (float("inf"), [], "loss is inf"),
        # median of [1..20] is 10.5: the threshold is 105.
        (106.0, list(range(1, 21)), "median"),
        (104.0, list(range(1, 21)), None),
        (1e6, [1.0] * 5, None),  # fewer than min_history=10 losses
        (-50.0, [-1.0] * 20, None),  # a factor means nothing below zero
    ],
)
def test_is_divergent_rule(loss, history, expected):
    got = is_divergent(loss, history, spike_factor=10.0, min_history=10)
    if expected is None:
        assert got is None
    else:
        assert expected in got
    if history and expected == "median":
        assert loss > 10 * np.median(np.asarray(history, dtype=float))


def test_spike_factor_none_checks_only_finiteness():
    assert is_divergent(1e9, [1.0] * 50, None, 10) is None
    assert is_divergent(float("nan"), [1.0] * 50, None, 10) is not None


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"spike_factor": 1.0}, ValueError, "spike_factor"),
        ({"spike_factor": "10"}, TypeError, "spike_factor"),
        ({"window": 0}, ValueError, "window"),
        ({"min_history": 60}, ValueError, "min_history"),
        ({"lr_factor": 0.0}, ValueError, "lr_factor"),
        ({"lr_factor": 2.0}, ValueError, "lr_factor"),
        ({"max_retries": -1}, ValueError, "max_retries"),
        ({"max_retries": 1.5}, TypeError, "max_retries"),
        ({"snapshot_every": 0}, ValueError, "snapshot_every"),
        ({"directory": 3}, TypeError, "directory"),
    ],
)
def test_bad_arguments(kwargs, error, name):
    with pytest.raises(error, match=f"{name}="):
        DivergenceGuard(**kwargs)


def test_first_snapshot_is_the_resumed_state(digits_8x8, tmp_path):
    (x, y), _ = digits_8x8

    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == 7:
                raise KeyboardInterrupt

    model = _compiled(input_shape=(8, 8, 1))
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=32, epochs=1, verbose=0,
                  callbacks=[Checkpointing(tmp_path, save_freq=3), Crash()])
    # The guard comes first in the list, Checkpointing restores after it.
    guard = DivergenceGuard(verbose=0)
    resumed = _compiled(input_shape=(8, 8, 1))
    resumed.fit(x, y, batch_size=32, epochs=1, verbose=0,
                callbacks=[guard, Checkpointing(tmp_path, save_freq=3)])
    assert guard._snapshot_step == 6


class _PoisonAtStep(keras.callbacks.Callback):
    """Makes the first kernel NaN once, before global step `step`."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            kernel = self.model.trainable_weights[0]
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))
            self.step = None


def _tiny_regression(optimizer):
    rng = np.random.default_rng(0)
    x = rng.random((64, 3)).astype("float32")
    y = rng.random((64, 1)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer, "mse")
    return model, x, y


def test_divergence_error_gives_back_a_settable_learning_rate():
    class PoisonEveryStepFrom2(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch >= 2:
                kernel = self.model.trainable_weights[0]
                kernel.assign(np.full(kernel.shape, np.nan, "float32"))

    model, x, y = _tiny_regression(keras.optimizers.SGD(0.01))
    with pytest.raises(DivergenceError) as raised:
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[
            PoisonEveryStepFrom2(),
            DivergenceGuard(max_retries=2, lr_factor=0.5, verbose=0)])
    # The controller is gone: the float LR keeps the two halvings
    # (0.01 * 0.5 ** 2) and can be set again.
    assert _lr_control.get(model) is None
    assert isinstance(model.optimizer.learning_rate, keras.Variable)
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 0.0025,
                               rtol=1e-6)
    assert "learning rate is now 0.0025" in str(raised.value)
    model.optimizer.learning_rate = 1e-3
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)


def test_directory_accepts_path_like(tmp_path):
    guard = DivergenceGuard(directory=tmp_path)
    assert guard.directory == str(tmp_path)


def test_rollbacks_go_below_the_plateau_min_lr():
    from callbacks import ReduceLROnPlateau
    from tests.callbacks._recording import RecordingSGD

    class Flat(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["flat"] = 1.0

    opt = RecordingSGD(0.1)
    model, x, y = _tiny_regression(opt)
    # 8 steps per epoch. The plateau halves the LR after epoch 1 (0.05 =
    # its min_lr); the kernel is poisoned after the snapshot of step 20,
    # whose own loss (step 21's) is therefore never accepted: the rollback
    # goes to step 19, and the guard halves the LR: 0.025, below min_lr.
    guard = DivergenceGuard(spike_factor=None, snapshot_every=1, verbose=0)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False,
              callbacks=[Flat(), _PoisonAtStep(20), guard,
                         ReduceLROnPlateau(monitor="flat", mode="min",
                                           patience=1, factor=0.5,
                                           min_lr=0.05)])
    assert [r[:2] for r in guard.rollbacks] == [(21, 19)]
    lrs = opt.lr_log.numpy()
    np.testing.assert_allclose(lrs[:16], 0.1, rtol=1e-6)
    np.testing.assert_allclose(lrs[16:19], 0.05, rtol=1e-6)
    np.testing.assert_allclose(lrs[19:22], 0.025, rtol=1e-6)


def _frozen_regression(y, batch_size, steps_per_execution=1):
    """A Dense(1) that never moves (SGD with LR 0): every batch's loss is
    the NumPy MSE of its targets against the fixed initial predictions."""
    rng = np.random.default_rng(1)
    x = rng.random((len(y), 3)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.0), "mse",
                  steps_per_execution=steps_per_execution)
    pred = model.predict(x, verbose=0)
    batch_losses = [
        float(np.mean((y[i:i + batch_size] - pred[i:i + batch_size]) ** 2))
        for i in range(0, len(y), batch_size)
    ]
    return model, x, batch_losses


@needs_steps_per_execution
def test_min_history_counts_steps_not_checks():
    # 16 batches of 8, 8 steps per execution: two checks per epoch. Batch
    # 12 (step 13) has a loss ~200x the others; 12 step losses are known
    # by then (>= min_history=10), so it is a spike, although only one
    # check came before.
    y = np.ones((128, 1), "float32")
    y[96:104] = 15.0
    model, x, losses = _frozen_regression(y, 8, steps_per_execution=8)
    median = np.median(losses[:12])
    assert losses[12] > 100 * median
    guard = DivergenceGuard(min_history=10, verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False,
              callbacks=[guard])
    ((step, back_to, reason),) = guard.rollbacks
    assert (step, back_to) == (16, 0)
    assert f"loss {losses[12]:.4g} > 10 x running median {median:.4g}" \
        == reason


def test_a_huge_loss_does_not_hide_the_later_ones():
    # Batch 0's loss is ~5e29 (accepted: fewer than min_history=3 losses
    # are known); the float32 running sum then absorbs every later loss
    # of order 1. Batch 6's loss of ~1e3 must still be read, and is a
    # spike over the median of batches 0..5.
    y = np.ones((80, 1), "float32")
    y[:8] = 7e14
    y[48:56] = 40.0
    model, x, losses = _frozen_regression(y, 8)
    assert losses[0] > 1e29
    median = np.median(losses[:6])
    assert losses[6] > 10 * median
    guard = DivergenceGuard(min_history=3, verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False,
              callbacks=[guard])
    ((step, _, reason),) = guard.rollbacks
    assert step == 7
    assert f"loss {losses[6]:.4g} >" in reason


def _latest_checkpoint_number(directory):
    name = os.path.basename(_checkpoint_paths(directory)[0])
    return int(name[len("ckpt-"):-len(".npz")])


@pytest.mark.parametrize("directory_mode", [False, True])
def test_lr_spike_recovers_beside_checkpointing(digits_8x8, tmp_path,
                                                directory_mode):
    (x, y), _ = digits_8x8
    steps_per_epoch = math.ceil(len(x) / 32)
    guard = DivergenceGuard(
        snapshot_every=10, verbose=0,
        directory=tmp_path if directory_mode else None)
    model = _compiled(input_shape=(8, 8, 1))
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[
        Checkpointing(tmp_path, save_freq=5), guard,
        SpikeLearningRate(step=34, value=50.0)])
    # Step 35 trains with LR 50; its result shows in step 36's loss. The
    # state at step 35 is finite and was checkpointed, but its loss was
    # never accepted; the newest one whose loss was is 30, saved by
    # Checkpointing (directory mode) and snapshotted by the guard (memory
    # mode).
    ((step, back_to, _),) = guard.rollbacks
    assert back_to == 30 and step in (35, 36, 37), guard.rollbacks
    assert _all_weights_finite(model)
    # One save per 5 batches trained (plus the final one), a rollback or
    # not: Checkpointing does not save at every step after it.
    batches = 2 * steps_per_epoch
    assert _latest_checkpoint_number(tmp_path) <= batches // 5 + 2
    _checkpoints_finite(tmp_path)


@pytest.mark.parametrize("steps_per_execution", [1, 2])
def test_rollback_lr_cut_reaches_the_weights(steps_per_execution):
    """The halved LR is the one the compiled step applies (on JAX the
    step is retraced): with every batch the same, the final weights are
    NumPy SGD at 0.1 up to the rollback target, then at 0.05."""
    if steps_per_execution > 1 and keras.backend.backend() == "torch":
        pytest.skip("Keras's torch trainer refuses steps_per_execution > 1")
    rng = np.random.default_rng(0)
    x8 = rng.random((8, 3)).astype("float32")
    y8 = (x8 @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype("float32")
    x, y = np.tile(x8, (8, 1)), np.tile(y8, (8, 1))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse",
                  steps_per_execution=steps_per_execution)
    kernel, bias = (np.asarray(w, "float64") for w in model.get_weights())
    guard = DivergenceGuard(spike_factor=None, snapshot_every=1, verbose=0)
    model.fit(x, y, batch_size=8, epochs=4, verbose=0, shuffle=False,
              callbacks=[_PoisonAtStep(20), guard])
    ((_, back_to, reason),) = guard.rollbacks
    assert reason in ("loss is nan", "non-finite weights")
    steps = int(np.asarray(model.optimizer.iterations))
    for step in range(steps):
        residual = x8 @ kernel + bias - y8
        lr = 0.1 if step < back_to else 0.05
        kernel = kernel - lr * 2 * x8.T @ residual / len(x8)
        bias = bias - lr * 2 * residual.mean(axis=0)
    np.testing.assert_allclose(model.get_weights()[0], kernel, rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(model.get_weights()[1], bias, rtol=1e-4,
                               atol=1e-5)
