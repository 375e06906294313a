import json
import os
import random
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from callbacks import ScheduleLR, _ownership
from callbacks.checkpointing import (
    Checkpointing,
    checkpoint_status,
    is_chief,
    latest_checkpoint,
    load_checkpoint,
)
from tests.helpers import needs_steps_per_execution

WORKER = os.path.join(os.path.dirname(__file__), "_resume_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


class CrashAt(keras.callbacks.Callback):
    """Raise after optimizer step `step`, like a crash of the process."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise KeyboardInterrupt(f"crash at step {self.step}")


class CountSteps(keras.callbacks.Callback):
    """Optimizer steps actually computed in this `fit` call."""

    def on_train_begin(self, logs=None):
        self.start = int(self.model.optimizer.iterations.numpy())

    def on_train_end(self, logs=None):
        self.computed = int(self.model.optimizer.iterations.numpy()) - (
            self.start
        )


def _model(steps_per_execution=1):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dropout(0.1, seed=0),
        keras.layers.Dense(10),
    ])
    model.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


def _fit(model, data, callbacks, epochs=3):
    (x, y), _ = data
    # TensorFlow's shuffle order is a function of the seed and the epoch,
    # so a resumed epoch sees the batches an uninterrupted one saw; JAX's
    # and torch's trainers shuffle with the global NumPy/torch generator,
    # whose draws a resumed process has not made: there, a fixed order.
    shuffle = keras.backend.backend() == "tensorflow"
    return model.fit(x[:320], y[:320], batch_size=32, epochs=epochs,
                     verbose=0, callbacks=callbacks, shuffle=shuffle)


@pytest.mark.parametrize(
    "steps_per_execution, crash_step, last_save, scheduled",
    # 10 batches per epoch. With 4 steps per execution, executions begin at
    # global steps 0, 4, 8, 10, 14, 18: saves (>= 4 steps apart) land at
    # 4, 8, 14, 18. The scheduled case puts an in-graph LR schedule after
    # the checkpointing callback (it resets its step offset at the resumed
    # epoch's start, which the restore must override).
    [(1, 17, 16, True),
     pytest.param(4, 18, 14, False, marks=needs_steps_per_execution)],
)
def test_resume_after_crash_takes_exactly_the_uninterrupted_steps(
    tmp_path, digits_8x8, steps_per_execution, crash_step, last_save,
    scheduled
):
    def extra():
        if not scheduled:
            return []
        cosine = keras.optimizers.schedules.CosineDecay(1e-2, 20)
        return [ScheduleLR(cosine)]

    reference = _model(steps_per_execution)
    _fit(reference, digits_8x8, extra(), epochs=2)
    assert int(reference.optimizer.iterations.numpy()) == 20

    directory = tmp_path / "run"
    crashed = _model(steps_per_execution)
    with pytest.raises(KeyboardInterrupt):
        _fit(crashed, digits_8x8,
             [Checkpointing(directory, save_freq=4), *extra(),
              CrashAt(crash_step)],
             epochs=2)
    saved = latest_checkpoint(directory)[0]
    assert saved["step"] == last_save
    assert (saved["epoch"], saved["step_in_epoch"]) == divmod(
        saved["step"], 10
    )
    assert checkpoint_status(directory) == "unfinished"

    resumed = _model(steps_per_execution)
    counter = CountSteps()
    history = _fit(resumed, digits_8x8,
                   [Checkpointing(directory, save_freq=4), *extra(),
                    counter],
                   epochs=2)
    assert int(resumed.optimizer.iterations.numpy()) == 20
    assert counter.computed == 20 - saved["step"]
    # fit restarted at the saved epoch: only the remaining epochs are logged.
    assert len(history.history["loss"]) == 2 - saved["epoch"]
    for got, want in zip(resumed.get_weights(), reference.get_weights(),
                         strict=True):
        np.testing.assert_array_equal(got, want)
    assert checkpoint_status(directory) == "finished"


def test_resumed_fit_that_raises_leaves_no_start_epoch_behind(
        tmp_path, digits_8x8):
    directory = tmp_path / "run"
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        _fit(model, digits_8x8,
             [Checkpointing(directory, save_freq=4), CrashAt(24)], epochs=3)
    # Resume from the epoch-2 checkpoint, and crash again in that epoch.
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        _fit(model, digits_8x8,
             [Checkpointing(directory, save_freq=4), CrashAt(26)], epochs=3)
    # A plain fit of the same model afterwards runs all its epochs.
    history = _fit(model, digits_8x8, [], epochs=3)
    assert len(history.history["loss"]) == 3


def test_same_seed_gives_identical_weights_twice_on_cpu(mnist_5k):
    (x, y), _ = mnist_5k

    def train():
        keras.utils.set_random_seed(7)
        model = keras.Sequential([
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(10),
        ])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        model.fit(x[:512], y[:512], batch_size=32, epochs=2, verbose=0)
        return model.get_weights()

    first, second = train(), train()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_keras_backup_and_restore_replays_batches(tmp_path, digits_8x8):
    """The problem this callback solves, measured on Keras's own callback."""
    directory = str(tmp_path / "backup")
    crashed = _model()
    with pytest.raises(KeyboardInterrupt):
        _fit(crashed, digits_8x8, [
            keras.callbacks.BackupAndRestore(directory, save_freq=4),
            CrashAt(17),
        ])
    resumed = _model()
    counter = CountSteps()
    _fit(resumed, digits_8x8, [
        keras.callbacks.BackupAndRestore(directory, save_freq=4), counter
    ])
    # Backup at step 16 (epoch 1, batch 5) restored, but training restarts
    # at batch 0 of epoch 1: 30 - 16 = 14 steps remain, yet 20 are computed.
    assert counter.computed == 20


@pytest.mark.slow
def test_sigkill_at_a_random_step_resumes_to_identical_weights(tmp_path):
    kill_at = random.SystemRandom().randint(8, 95)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_NUM_INTRAOP_THREADS="1",
               TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")

    def start(name, kill):
        return subprocess.Popen(
            [sys.executable, WORKER, str(tmp_path / name),
             str(tmp_path / f"{name}.npz"), str(kill)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )

    def finish(process, timeout=150):
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        return process.returncode, out.decode(errors="replace")

    reference, killed = start("reference", -1), start("killed", kill_at)
    code, out = finish(reference)
    assert code == 0, out
    code, out = finish(killed)
    assert code == -9, f"kill_at={kill_at}: {out}"
    assert checkpoint_status(tmp_path / "killed") in ("empty", "unfinished")
    code, out = finish(start("killed", -1))
    assert code == 0, out

    want = np.load(tmp_path / "reference.npz")
    got = np.load(tmp_path / "killed.npz")
    assert int(want["steps"]) == int(got["steps"]) == 96
    # The restart resumed from the last save (every 7 steps) before the kill.
    assert int(got["start"]) == (kill_at - 1) // 7 * 7, kill_at
    weights = [k for k in want.files if k.startswith("arr_")]
    for key in weights:
        np.testing.assert_array_equal(got[key], want[key],
                                      err_msg=f"kill_at={kill_at}")


def _train_with_checkpoints(directory, data, epochs=2, save_freq=3, keep=2):
    model = _model()
    _fit(model, data, [Checkpointing(directory, save_freq=save_freq,
                                     keep=keep)], epochs=epochs)
    return model


@pytest.fixture(scope="module")
def _finished_run(tmp_path_factory, digits_8x8):
    """One finished 2-epoch run (20 steps) saving every 3 steps, keep=3."""
    directory = tmp_path_factory.mktemp("finished")
    model = _train_with_checkpoints(directory, digits_8x8, keep=3)
    return directory, model.get_weights()


@pytest.fixture
def finished_run(_finished_run, tmp_path):
    """A private copy of the finished run, and its final weights."""
    directory = tmp_path / "run"
    shutil.copytree(_finished_run[0], directory)
    return directory, _finished_run[1]


def test_keeps_newest_files_and_marks_finished(finished_run):
    directory, _ = finished_run
    names = sorted(_listing(directory))
    # Saves 1-6 at steps 3, 6, ..., 18 and save 7, the finished state, at
    # step 20; the newest 3 are kept.
    assert names == [f"ckpt-{n:012d}.npz" for n in (5, 6, 7)]
    steps = [latest_checkpoint(directory)[0]["step"]]
    for name in names[::-1][:-1]:
        os.remove(directory / name)
        steps.append(latest_checkpoint(directory)[0]["step"])
    assert steps == [20, 18, 15]

def test_finished_run_status(finished_run):
    directory, _ = finished_run
    meta = latest_checkpoint(directory)[0]
    assert (meta["step"], meta["epoch"], meta["finished"]) == (20, 2, True)
    assert checkpoint_status(directory) == "finished"


def test_resuming_a_finished_run_trains_nothing(finished_run, digits_8x8):
    directory, weights = finished_run
    again = _model()
    counter = CountSteps()
    _fit(again, digits_8x8, [Checkpointing(directory), counter], epochs=2)
    assert counter.computed == 0
    for got, want in zip(again.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)


def test_save_freq_epoch(tmp_path, digits_8x8):
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        _fit(model, digits_8x8,
             [Checkpointing(tmp_path, save_freq="epoch"), CrashAt(25)])
    meta = latest_checkpoint(tmp_path)[0]
    assert (meta["epoch"], meta["step_in_epoch"], meta["step"]) == (2, 0, 20)


def test_truncated_newest_checkpoint_falls_back_with_warning(finished_run):
    directory, _ = finished_run
    newest, previous, _ = sorted(_listing(directory), reverse=True)
    path = directory / newest
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.warns(UserWarning, match="unreadable"):
        meta, _ = latest_checkpoint(directory)
    assert os.path.basename(meta["path"]) == previous
    assert meta["step"] == 18


def test_bit_flipped_checkpoint_is_detected(finished_run):
    directory, _ = finished_run
    newest = directory / sorted(_listing(directory))[-1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 3] ^= 0xFF
    newest.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="unreadable"):
        assert latest_checkpoint(directory)[0]["step"] == 18


def test_all_checkpoints_corrupt_is_a_clear_error(finished_run):
    directory, _ = finished_run
    for name in _listing(directory):
        (directory / name).write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning), pytest.raises(ValueError,
                                                  match="directory="):
        checkpoint_status(directory)


def _attached(directory, **kwargs):
    """A Checkpointing callback on a fresh model, as `fit` would set it up."""
    callback = Checkpointing(directory, **kwargs)
    callback.set_model(_model())
    callback.on_train_begin()
    return callback


def _listing(directory):
    """Entries of a checkpoint directory but its ownership manifest."""
    return [n for n in os.listdir(directory) if n != _ownership.MANIFEST]


def test_stale_temporary_file_is_ignored_and_removed(tmp_path):
    # Only the temporary file of a checkpoint the manifest lists is ours.
    _ownership.claim(tmp_path, "ckpt-000000000001.npz")
    stale = tmp_path / ".ckpt-000000000001.npz.tmp-123"
    stale.write_bytes(b"half written")
    users = tmp_path / ".ckpt-000000000002.npz.tmp-9"
    users.write_bytes(b"not ours")
    assert checkpoint_status(tmp_path) == "empty"
    _attached(tmp_path)
    assert not stale.exists()
    assert users.read_bytes() == b"not ours"


def test_only_listed_checkpoints_are_deleted(tmp_path):
    # A checkpoint-named file the manifest does not list (a user's, or one
    # of an older version) is read but never rotated away.
    callback = _attached(tmp_path, keep=2)
    callback._save(epoch=0, step_in_epoch=0)
    (first,) = _listing(tmp_path)
    manifest = json.loads((tmp_path / _ownership.MANIFEST).read_text())
    manifest["entries"].remove(first)
    (tmp_path / _ownership.MANIFEST).write_text(json.dumps(manifest))
    (tmp_path / "notes.txt").write_text("mine")
    for _ in range(3):
        callback._save(epoch=0, step_in_epoch=0)
    names = sorted(_listing(tmp_path))
    assert names == [first, "ckpt-000000000003.npz", "ckpt-000000000004.npz",
                     "notes.txt"]


def test_non_finite_state_is_never_written(tmp_path):
    callback = _attached(tmp_path)
    callback._save(epoch=0, step_in_epoch=0)
    (name,) = _listing(tmp_path)
    before = (tmp_path / name).read_bytes()
    kernel = callback.model.layers[1].kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    with pytest.warns(UserWarning, match="non-finite"):
        callback._save(epoch=0, step_in_epoch=0)
    assert _listing(tmp_path) == [name]
    assert (tmp_path / name).read_bytes() == before


def test_other_model_in_directory_is_refused_untouched(finished_run,
                                                      digits_8x8):
    tmp_path, _ = finished_run
    snapshot = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}
    other = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    other.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="another model"):
        _fit(other, digits_8x8, [Checkpointing(tmp_path)], epochs=1)
    assert {n: (tmp_path / n).read_bytes()
            for n in os.listdir(tmp_path)} == snapshot


def test_only_the_chief_writes(tmp_path, monkeypatch):
    config = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
              "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert not is_chief()
    _attached(tmp_path / "w1")._save(epoch=0, step_in_epoch=0)
    assert not (tmp_path / "w1").exists()


@pytest.mark.parametrize(
    "task, cluster, chief",
    [
        ({"type": "worker", "index": 0}, {"worker": ["a", "b"]}, True),
        ({"type": "worker", "index": 0}, {"chief": ["c"], "worker": ["a"]},
         False),
        ({"type": "chief", "index": 0}, {"chief": ["c"], "worker": ["a"]},
         True),
        ({"type": "worker", "index": 2}, {"worker": ["a", "b", "c"]}, False),
    ],
)
def test_is_chief_follows_tf_config(monkeypatch, task, cluster, chief):
    monkeypatch.setenv("TF_CONFIG",
                       json.dumps({"cluster": cluster, "task": task}))
    assert is_chief() is chief


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"directory": 3}, TypeError, "directory"),
        ({"directory": ""}, TypeError, "directory"),
        ({"save_freq": 0}, ValueError, "save_freq"),
        ({"save_freq": "batch"}, ValueError, "save_freq"),
        ({"save_freq": 2.5}, TypeError, "save_freq"),
        ({"keep": 1}, ValueError, "keep"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, error, name):
    args = {"directory": tmp_path, **kwargs}
    with pytest.raises(error, match=f"{name}="):
        Checkpointing(**args)


def test_directory_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("user data")
    with pytest.raises(ValueError, match="directory="):
        Checkpointing(path)
    assert path.read_text() == "user data"


def _early_stopped_run(directory, data, crash_step=None, track=True):
    """6 epochs of 10 steps under EarlyStopping on the training loss."""
    model = _model()
    stopper = keras.callbacks.EarlyStopping(
        monitor="loss", min_delta=0.3, patience=1,
        restore_best_weights=True)
    checkpointing = Checkpointing(directory, save_freq=5,
                                  track=[stopper] if track else [])
    callbacks = [stopper, checkpointing]
    if crash_step is not None:
        with pytest.raises(KeyboardInterrupt):
            _fit(model, data, [*callbacks, CrashAt(crash_step)], epochs=6)
        model = _model()
        stopper = keras.callbacks.EarlyStopping(
            monitor="loss", min_delta=0.3, patience=1,
            restore_best_weights=True)
        callbacks = [stopper, Checkpointing(
            directory, save_freq=5, track=[stopper] if track else [])]
    history = _fit(model, data, callbacks, epochs=6)
    return model, stopper, history


def test_tracked_early_stopping_resumes_its_state(tmp_path, digits_8x8):
    """A crash inside the epoch after the best one: the resumed stopper
    still knows the best epoch, its weights and its patience count."""
    model, stopper, _ = _early_stopped_run(tmp_path / "plain", digits_8x8)
    assert 0 < stopper.stopped_epoch < 5  # it did stop early
    crash = (stopper.stopped_epoch * 10) + 3  # inside the stopping epoch
    resumed, again, _ = _early_stopped_run(tmp_path / "crash", digits_8x8,
                                           crash_step=crash)
    assert (again.stopped_epoch, again.best_epoch, again.wait) == (
        stopper.stopped_epoch, stopper.best_epoch, stopper.wait)
    assert again.best == pytest.approx(stopper.best, rel=1e-6)
    for got, want in zip(resumed.get_weights(), model.get_weights(),
                         strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # Negative control: without tracking, the resumed stopper starts afresh
    # and ends elsewhere.
    _, fresh, _ = _early_stopped_run(tmp_path / "untracked", digits_8x8,
                                     crash_step=crash, track=False)
    assert (fresh.stopped_epoch, fresh.best_epoch) != (
        stopper.stopped_epoch, stopper.best_epoch)


def test_the_epoch_that_stops_training_is_not_checkpointed(tmp_path,
                                                          digits_8x8):
    model = _model()
    stopper = keras.callbacks.EarlyStopping(monitor="loss", min_delta=0.3,
                                            patience=1)
    _fit(model, digits_8x8,
         [stopper, Checkpointing(tmp_path, save_freq="epoch")], epochs=6)
    assert 0 < stopper.stopped_epoch < 5
    newest, previous = (latest_checkpoint(tmp_path)[0], None)
    os.remove(newest["path"])
    previous = latest_checkpoint(tmp_path)[0]
    assert newest["finished"] and newest["epoch"] == stopper.stopped_epoch + 1
    # The last epoch-end save is the one before the stopping epoch.
    assert not previous["finished"]
    assert previous["epoch"] == stopper.stopped_epoch


def test_track_rejects_other_callbacks(tmp_path):
    with pytest.raises(TypeError, match="track"):
        Checkpointing(tmp_path, track=[keras.callbacks.History()])


def test_load_checkpoint_loads_model_weights_only(finished_run):
    directory, weights = finished_run
    model = _model()
    meta = load_checkpoint(model, directory)
    assert meta["finished"] and meta["step"] == 20
    for got, want in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)
    # The optimizer was not touched (still unbuilt, step 0).
    assert int(model.optimizer.iterations.numpy()) == 0
    other = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="another model"):
        load_checkpoint(other, directory)
