"""Checkpointing that resumes training at the exact optimizer step.

Keras's `BackupAndRestore` resumes at the start of the interrupted epoch and
replays its batches, so a resumed run takes more optimizer steps than an
uninterrupted one. `Checkpointing` records where in the epoch training was,
restores the model, optimizer and metric state, restarts `fit` at the saved
epoch and skips the batches that were already consumed, without computing
them: the resumed run takes exactly the steps the uninterrupted run takes.
"""

import glob
import json
import os
import re
import time
import warnings

import keras
import numpy as np

from callbacks import _keras_compat as keras_compat
from callbacks import _ownership, _state
from callbacks._validation import check_number

FORMAT_VERSION = 1
_PREFIX = "ckpt-"
_SUFFIX = ".npz"
_NAME = re.compile(r"^ckpt-(\d{12})\.npz$")


def is_chief():
    """Whether this process writes checkpoints under multi-worker training.

    Reads `TF_CONFIG` the way `tf.distribute` does: the `chief` task, or
    worker 0 when the cluster has no chief, is the chief. Without
    `TF_CONFIG` the single process is the chief.

    Returns:
        `bool`.
    """
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    try:
        config = json.loads(raw)
        task = config.get("task", {})
        cluster = config.get("cluster", {})
    except (ValueError, AttributeError):
        return True
    kind = task.get("type")
    if kind == "chief":
        return True
    return kind == "worker" and task.get("index", 0) == 0 and (
        "chief" not in cluster
    )


def _checkpoint_paths(directory):
    """Checkpoint files in `directory`, newest (highest number) first."""
    if not os.path.isdir(directory):
        return []
    names = [n for n in os.listdir(directory) if _NAME.match(n)]
    return [os.path.join(directory, n) for n in sorted(names, reverse=True)]


def _read(path):
    """Read one checkpoint file fully (so zip CRCs are verified)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"unknown checkpoint format {meta.get('format')!r}")
    groups = {
        group: [arrays[f"{group}/{i}"] for i in range(count)]
        for group, count in meta["counts"].items()
    }
    return meta, groups


def latest_checkpoint(directory, accept=None):
    """Read the newest readable checkpoint of `directory`.

    Unreadable (truncated, corrupt) checkpoints are skipped with a warning,
    falling back to the previous one.

    Args:
        directory: A `Checkpointing` directory.
        accept: Optional `accept(meta)` predicate: checkpoints whose `meta`
            it rejects are passed over (`DivergenceGuard` rolls back only
            to a step whose loss it has accepted). Defaults to `None`.

    Returns:
        `(meta, groups)` or `None` when the directory holds no checkpoint
        (or, with `accept`, none that it accepts).
        `meta` is a dict with `epoch`, `step_in_epoch`, `step`, `finished`
        and `path`; `groups` maps `"model"`, `"optimizer"` and `"metrics"`
        to lists of NumPy arrays.

    Raises:
        ValueError: If checkpoints exist but none is readable.
    """
    paths = _checkpoint_paths(directory)
    readable = False
    for path in paths:
        try:
            meta, groups = _read(path)
        except Exception as error:  # noqa: BLE001 - any damage means skip
            warnings.warn(
                f"Checkpoint {path} is unreadable ({type(error).__name__}: "
                f"{error}); falling back to the previous checkpoint.",
                stacklevel=2,
            )
            continue
        meta["path"] = path
        readable = True
        if accept is not None and not accept(meta):
            continue
        return meta, groups
    if paths and not readable and accept is None:
        raise ValueError(
            "Argument `directory` holds checkpoints but none is readable. "
            f"Received: directory={directory!r}"
        )
    return None


def checkpoint_status(directory):
    """Say whether `directory` holds no run, an unfinished or a finished one.

    Recipes call it before training: an unfinished run is resumed, a
    finished one must not be overwritten without consent.

    Args:
        directory: A `Checkpointing` directory (need not exist).

    Returns:
        `"empty"`, `"unfinished"` or `"finished"`.

    Raises:
        ValueError: If checkpoints exist but none is readable.

    Example:

    >>> checkpoint_status("/tmp/no-such-run")
    'empty'
    """
    found = latest_checkpoint(directory)
    if found is None:
        return "empty"
    return "finished" if found[0]["finished"] else "unfinished"


def load_checkpoint(model, directory):
    """Load the model variables of the newest readable checkpoint.

    Only the model's own variables (weights, normalization statistics) are
    loaded, not the optimizer's: use it to take the weights a finished or
    interrupted run left in `directory`, e.g. to evaluate them.

    Args:
        model: A built `keras.Model` of the same architecture.
        directory: A `Checkpointing` directory.

    Returns:
        The checkpoint's `meta` dict (`epoch`, `step`, `finished`, `path`,
        ...), or `None` when the directory holds no checkpoint (the model is
        then left unchanged).

    Raises:
        ValueError: If the checkpoint belongs to another model, or
            checkpoints exist but none is readable.

    Example:

    ```python
    model = build_model()
    meta = load_checkpoint(model, "runs/mnist")
    print(meta["step"], model.evaluate(x_test, y_test))
    ```
    """
    found = latest_checkpoint(directory)
    if found is None:
        return None
    meta, groups = found
    want = [tuple(v.shape) for v in model.variables]
    have = [tuple(a.shape) for a in groups["model"]]
    if want != have:
        raise ValueError(
            "Argument `directory` holds a checkpoint of another model: "
            f"{meta['path']}. Received: directory={directory!r}"
        )
    for variable, value in zip(model.variables, groups["model"],
                               strict=True):
        variable.assign(value)
    return meta


def _write_atomically(path, arrays):
    """Write `arrays` to `path` so a reader sees the old or the new file."""
    directory = os.path.dirname(path)
    tmp = os.path.join(
        directory, f".{os.path.basename(path)}.tmp-{os.getpid()}"
    )
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    # The rename itself must reach the disk, or a crash can lose it.
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_TRACKED = (
    (keras.callbacks.EarlyStopping,
     ("wait", "stopped_epoch", "best", "best_epoch")),
    (keras.callbacks.ReduceLROnPlateau, ("wait", "cooldown_counter", "best")),
    (keras.callbacks.ModelCheckpoint, ("best",)),
)


def _tracked_fields(callback):
    for cls, fields in _TRACKED:
        if isinstance(callback, cls):
            return fields
    raise TypeError(
        "Argument `track` must hold keras.callbacks.EarlyStopping, "
        "ReduceLROnPlateau or ModelCheckpoint instances. Received: "
        f"track item {callback!r}"
    )


def _tracked_state(callback):
    """JSON-able counters of `callback` and its best weights (or None)."""
    state = {}
    for field in _tracked_fields(callback):
        value = getattr(callback, field, None)
        state[field] = None if value is None else (
            float(value) if field == "best" else int(value))
    weights = getattr(callback, "best_weights", None)
    arrays = None if weights is None else [np.asarray(w) for w in weights]
    return state, arrays


def _set_tracked_state(callback, state, arrays):
    """Inverse of `_tracked_state` (`arrays` is None: no best weights)."""
    for field in _tracked_fields(callback):
        setattr(callback, field, state.get(field))
    if arrays is not None:
        callback.best_weights = list(arrays)


class Checkpointing(keras.callbacks.Callback):
    """Save training state every N steps and resume at the exact step.

    Add it to `fit` with a directory. The first run saves checkpoints there;
    when the same script runs again after a crash (even `SIGKILL` mid-epoch),
    the callback restores model, optimizer and metric state, restarts `fit`
    at the saved epoch and skips the batches of that epoch that were already
    trained on, without computing them. The resumed run therefore takes
    exactly the optimizer steps of an uninterrupted run, and with
    `keras.utils.set_random_seed` plus
    `tf.config.experimental.enable_op_determinism` it ends with identical
    weights, provided the data order of an epoch does not depend on how
    many epochs this process has already iterated (true for NumPy inputs
    under `set_random_seed`, and for `tf.data` pipelines shuffled with a
    `seed` and `reshuffle_each_iteration=False`; a reshuffling pipeline
    restarts its shuffle sequence in a new process).

    The state saved is the model's variables (weights, normalization
    statistics, dropout seed states), the optimizer's (step, learning rate,
    slots), the epoch's metric accumulators and, when an in-graph LR
    callback (`ScheduleLR`, `ReduceLROnPlateau`, `DivergenceGuard`) is
    active, its LR scale and step offset, so schedules resume exactly too.
    Keras's monitoring callbacks passed in `track` (`EarlyStopping`,
    `ReduceLROnPlateau`, `ModelCheckpoint`, and their subclasses in this
    library) resume with their counters, best value and, for early
    stopping with `restore_best_weights`, best weights; other callbacks'
    Python counters start afresh. An epoch after which training stops (early
    stopping) is not checkpointed: a crash before the end of `fit` repeats
    that epoch from the previous checkpoint and stops again, rather than
    resuming past the stop.

    Checkpoints are single `.npz` files (no pickles) numbered in save
    order, written to a temporary file, synced and renamed over, so a crash
    never leaves a half-written checkpoint under a checkpoint name. Each is
    listed in the directory's manifest (`.keras-recipes.json`) before it is
    written, and only listed files are ever deleted: other files in the
    directory are left alone. The newest `keep` are kept; a truncated or
    corrupt newest checkpoint is skipped with a warning in favour of the
    previous one. A state holding
    NaN or infinity is never written. Under multi-worker training only the
    chief writes; every worker restores. The last checkpoint of a
    completed `fit` is marked finished (`checkpoint_status`).

    The per-step cost is one Python comparison in `on_train_batch_begin`:
    the callback adds no `on_train_batch_end` hook, so Keras keeps
    dispatching batch-end callbacks asynchronously. With
    `steps_per_execution=k`, checkpoints land on multiples of `k` steps.

    Args:
        directory: Folder for the checkpoints (created if needed).
        save_freq: Save every `save_freq` optimizer steps (an `int`), or
            `"epoch"` to save at the end of each epoch. Defaults to `500`.
        keep: How many checkpoints to keep (>= 2 so a damaged newest one
            has a fallback). Defaults to `2`.
        verbose: Print a line for every save and restore. Defaults to `0`.
        track: Callbacks of the same `fit` whose state is saved and
            restored with each checkpoint: instances of
            `keras.callbacks.EarlyStopping`, `ReduceLROnPlateau` or
            `ModelCheckpoint` (or subclasses). Defaults to `()`.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If `save_freq` or `keep` is out of range, or a
            checkpoint in `directory` belongs to a different model.

    Example:

    ```python
    model.fit(x, y, epochs=10,
              callbacks=[Checkpointing("runs/mnist", save_freq=100)])
    # killed at any step? run the same script again: it resumes exactly.
    ```
    """

    def __init__(self, directory, save_freq=500, keep=2, verbose=0,
                 track=()):
        super().__init__()
        if not isinstance(directory, (str, os.PathLike)) or not str(
            directory
        ):
            raise TypeError(
                "Argument `directory` must be a non-empty path. "
                f"Received: directory={directory!r}"
            )
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise ValueError(
                "Argument `directory` must be a folder, not a file. "
                f"Received: directory={directory!r}"
            )
        if save_freq != "epoch":
            if isinstance(save_freq, str):
                raise ValueError(
                    "Argument `save_freq` must be 'epoch' or an integer >= 1."
                    f" Received: save_freq={save_freq!r}"
                )
            save_freq = check_number("save_freq", save_freq, low=1,
                                     integer=True)
        self.directory = os.fspath(directory)
        self.save_freq = save_freq
        self.keep = check_number("keep", keep, low=2, integer=True)
        self.verbose = verbose
        self.track = list(track)
        for item in self.track:
            _tracked_fields(item)

    # ----------------------------------------------------------- state I/O
    def _save(self, epoch, step_in_epoch, finished=False):
        step = int(self.model.optimizer.iterations.numpy())
        self._last_save_step = step
        values = _state.read(self.model)
        # Every worker reads: under multi-worker training, reading a metric
        # (a sync-on-read variable) is a collective all workers must join.
        values["metrics"] = [
            np.array(v.numpy()) for v in self.model.metrics_variables
        ]
        if not is_chief():
            return
        tracked = []
        for index, item in enumerate(self.track):
            state, arrays = _tracked_state(item)
            tracked.append(state)
            if arrays is not None:
                values[f"track{index}"] = arrays
        bad = _state.non_finite(self.model, values)
        if bad:
            warnings.warn(
                f"Not saving step {step}: non-finite values in {bad[:3]}.",
                stacklevel=2,
            )
            return
        meta = {
            "format": FORMAT_VERSION,
            "epoch": int(epoch),
            "step_in_epoch": int(step_in_epoch),
            "step": step,
            "finished": bool(finished),
            "time": time.time(),
            "counts": {g: len(a) for g, a in values.items()},
            "tracked": tracked,
        }
        arrays = {f"{g}/{i}": a for g, group in values.items()
                  for i, a in enumerate(group)}
        arrays["meta"] = np.array(json.dumps(meta))
        os.makedirs(self.directory, exist_ok=True)
        # Files are numbered by save, not by optimizer step: a rollback
        # (DivergenceGuard) lowers the step, yet its save is the newest.
        existing = _checkpoint_paths(self.directory)
        number = 1 + (
            int(_NAME.match(os.path.basename(existing[0])).group(1))
            if existing else 0
        )
        name = f"{_PREFIX}{number:012d}{_SUFFIX}"
        path = os.path.join(self.directory, name)
        # Listed before it exists: a crash never leaves a file of ours
        # unlisted, so only listed files are ever removed.
        _ownership.claim(self.directory, name)
        _write_atomically(path, arrays)
        _ownership.remove_owned(self.directory, [
            os.path.basename(old)
            for old in _checkpoint_paths(self.directory)[self.keep:]])
        if self.verbose:
            print(f"Checkpointing: saved step {step} (epoch {epoch}, "
                  f"batch {step_in_epoch}) to {path}")

    def _restore(self):
        found = latest_checkpoint(self.directory)
        if found is None:
            return None
        meta, groups = found
        _state.ensure_optimizer_built(self.model)
        group = _state.mismatch(self.model, groups)
        if group is not None:
            raise ValueError(
                f"Argument `directory` holds a checkpoint of another model "
                f"(its {group} state differs from this model's): "
                f"{meta['path']}. Use a new directory. "
                f"Received: directory={self.directory!r}"
            )
        _state.write(self.model, groups, ("model", "optimizer"))
        self._saved = groups
        self._saved_tracked = (meta.get("tracked", []), groups)
        if self.verbose:
            print(f"Checkpointing: resumed from {meta['path']} (epoch "
                  f"{meta['epoch']}, batch {meta['step_in_epoch']}).")
        return meta

    def _restore_metrics(self):
        metrics = list(self.model.metrics_variables)
        saved = self._saved["metrics"]
        if [tuple(v.shape) for v in metrics] != [a.shape for a in saved]:
            # Without a distribution strategy Keras builds compiled metrics
            # at the first traced step, too late to restore them; only the
            # logged metrics of this one epoch are affected, not training.
            if self.verbose:
                print("Checkpointing: the resumed epoch's metrics count only "
                      "the batches after the resume.")
            return
        for variable, value in zip(metrics, saved, strict=True):
            variable.assign(value)

    # ------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        mine = _ownership.owned(self.directory)
        for stale in glob.glob(
            os.path.join(glob.escape(self.directory), f".{_PREFIX}*.tmp-*")
        ):
            # The temporary file of a checkpoint of ours a crash cut short.
            if os.path.basename(stale)[1:].split(".tmp-")[0] in mine:
                os.remove(stale)
        self._skip = self._pending_skip = 0
        self._resume_epoch = None
        self._saved = None
        self._saved_tracked = None
        self._epoch = 0
        self._trained = False
        meta = self._restore()
        if meta is not None:
            self._resume_epoch = meta["epoch"]
            self._skip = meta["step_in_epoch"]
            # The hook Keras's own BackupAndRestore uses.
            keras_compat.set_initial_epoch(self.model, meta["epoch"])
        self._last_save_step = int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        # `fit` has read its start epoch by now; clearing the hook here, not
        # only at train end, means a resumed `fit` that raises leaves no
        # stale start epoch for the next `fit` of the model.
        keras_compat.set_initial_epoch(self.model, None)
        self._epoch = epoch
        self._trained = True
        if self._saved_tracked is not None:
            # Tracked callbacks reset themselves in on_train_begin; every
            # on_train_begin has run by now.
            states, groups = self._saved_tracked
            self._saved_tracked = None
            if len(states) == len(self.track):
                for index, (item, state) in enumerate(
                        zip(self.track, states, strict=True)):
                    _set_tracked_state(item, state,
                                       groups.get(f"track{index}"))
        skip = 0
        if epoch == self._resume_epoch:
            skip = self._skip
            if skip:
                self._restore_metrics()
        # Installed at the first batch, after every on_epoch_begin: on JAX
        # an LR controller change there (ScheduleLR resets its step offset)
        # rebuilds the train function, which would drop the skipping one.
        self._pending_skip = skip
        self._epoch_start = (
            int(self.model.optimizer.iterations.numpy()) - skip
        )
        self._skip_until = skip

    def on_train_batch_begin(self, batch, logs=None):
        if self._saved is not None:
            # LR callbacks (ScheduleLR) reset their controller's step offset
            # in on_epoch_begin; by the first batch all of them have, so
            # the saved scale/offset are restored last.
            _state.write(self.model, self._saved, ("lr_control",))
            self._saved = None
        if self._pending_skip:
            keras_compat.skip_batches(self.model, self._pending_skip)
            self._pending_skip = 0
        if self.save_freq == "epoch" or batch < self._skip_until:
            return
        if self._epoch_start + batch - self._last_save_step >= self.save_freq:
            self._save(self._epoch, batch)
            # Counted in batches, not optimizer steps: a rollback
            # (DivergenceGuard) lowers the step counter, and counting from
            # it would save at every batch until the counter caught up.
            self._last_save_step = self._epoch_start + batch

    def on_epoch_end(self, epoch, logs=None):
        # Not when training stops here: resuming from this epoch's end would
        # train past the stop; on_train_end saves the final state.
        if self.save_freq == "epoch" and not self.model.stop_training:
            self._save(epoch + 1, 0)

    def on_train_end(self, logs=None):
        keras_compat.set_initial_epoch(self.model, None)
        if self._trained:
            self._save(self._epoch + 1, 0, finished=True)
