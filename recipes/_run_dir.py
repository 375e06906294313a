"""A recipe's run directory (`output_dir`): the files it writes, the
manifest of what it owns, and crash-resume of its phases."""

import atexit
import csv
import json
import os
import shutil
import tempfile

import keras
import numpy as np

from callbacks._internal import ownership
from callbacks.checkpointing import (
    Checkpointing,
    checkpoint_status,
    is_chief,
    latest_checkpoint,
    load_checkpoint,
)
from recipes._results import jsonable, save_plot


class OutputDir:
    """A run directory: best model, history, logs, config, plots.

    The directory's manifest (`.keras-recipes.json`, see
    `callbacks._internal.ownership`) lists what the recipe created there and the
    settings the run started with. Only listed entries are ever replaced or
    deleted. A file or folder of the recipe's names that the manifest does
    not list (a user's own `run.json`, `best.keras`, `checkpoints/`) is
    refused unless `overwrite=True`; even then it is only written over,
    never deleted (and a foreign `checkpoints/`, which training would
    resume from, is refused outright).

    A finished run is refused unless `overwrite=True` (then what it created
    is deleted first); an unfinished one (crashed) is resumed when the
    recipe is called with the same settings, and refused with the list of
    changed settings otherwise (`overwrite=True` starts it over). Each
    training phase checkpoints to `checkpoints/phase<N>` through
    `callbacks.Checkpointing`, a finished phase is not trained again (its
    weights and history are read back), an interrupted one resumes at its
    last completed epoch with its early stopping and best-model state, and
    `history.csv` keeps one row per epoch. When the run finishes, the
    crash-resume checkpoints are deleted, and `best.keras` becomes a hard
    link to `model.keras` when both hold the same weights (one copy on
    disk; a copy where the file system has no links).

    Nothing is written before `open()`, which recipes call once their
    arguments and data are checked. Under multi-worker training only the
    chief writes the directory; the other workers run the same writers
    (saving a model joins collective ops) into a temporary directory that
    is deleted at the end, and every worker reads the checkpoints (the
    directory must be shared).

    Args:
        path: The directory, or `None` for no artifacts.
        overwrite: Whether a finished run, a run of other settings or files
            the recipe did not create may be written over.
        settings: JSON-able settings that shape training (see
            `run_settings`), or `None` to skip the resume check.
    """

    FILES = ("best.keras", "model.keras", "history.csv", "run.json",
             "training_curves.png")
    DIRS = ("logs", "checkpoints")

    def __init__(self, path, overwrite=False, settings=None):
        self.path = None if path is None else os.fspath(path)
        self.writer = is_chief()
        self._root = self.path
        self.settings = settings
        self._restart = False
        # Epochs of the training pipeline's shuffle drawn in this process
        # (see `align_shuffle`).
        self.epochs_drawn = 0
        if self.path is None:
            return
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ValueError(
                "Argument `output_dir` must be a directory. Received: "
                f"output_dir={self.path!r} (an existing file)"
            )
        self.overwrite = overwrite
        self._foreign = ownership.foreign(self.path, self.FILES + self.DIRS)
        received = f"Received: output_dir={self.path!r}"
        if self._foreign and not overwrite:
            raise ValueError(
                "Argument `output_dir` holds files keras-recipes did not "
                f"create ({', '.join(self._foreign)}); choose another "
                "directory, or pass `overwrite=True` to write over them "
                f"(they are never deleted). {received}"
            )
        if "checkpoints" in self._foreign:
            raise ValueError(
                "Argument `output_dir` holds a `checkpoints/` folder "
                "keras-recipes did not create, which training would resume "
                "from; move it away or choose another directory. "
                f"{received}"
            )
        if self.finished():
            if not overwrite:
                raise ValueError(
                    "Argument `output_dir` holds a finished run; pass "
                    "`overwrite=True` to replace it, or choose another "
                    f"directory. {received}"
                )
            self._restart = True
        elif self._resumable():
            changes = ownership.changed_settings(
                ownership.read_manifest(self.path).get("settings"),
                settings)
            if changes and not overwrite:
                raise ValueError(
                    "Argument `output_dir` holds an unfinished run started "
                    "with other settings, which resuming would mix into "
                    f"one model: {'; '.join(changes)}. Call again with the "
                    "run's settings to resume it, pass `overwrite=True` to "
                    f"start it over, or choose another directory. {received}"
                )
            self._restart = bool(changes)

    def open(self):
        """Create the directory (clearing a replaced run) before training."""
        if self.path is None:
            return
        if not self.writer:
            self._root = tempfile.mkdtemp(prefix="recipes-worker-")
            # Removed by `write` at the end, or at exit if training fails.
            atexit.register(shutil.rmtree, self._root, True)
            return
        if self._restart:
            ownership.remove_owned(self.path)
        fresh = not self._owns("run.json")
        # Listed before they exist; a user's file of the same name
        # (`overwrite=True`) is written over but never listed, so never
        # deleted.
        ownership.claim(
            self.path, *(n for n in self.FILES + self.DIRS
                         if n not in self._foreign),
            settings=self.settings)
        if fresh:
            # Marks the directory as a run of the recipe from the start, so
            # a crashed run resumes.
            _write_json(self._shared("run.json"), {"status": "running"})

    def file(self, name):
        """Where this process writes `name` (a scratch folder on non-chief
        workers)."""
        return os.path.join(self._root, name)

    def _shared(self, name):
        return os.path.join(self.path, name)

    def _owns(self, name):
        return (name in ownership.owned(self.path)
                and os.path.lexists(self._shared(name)))

    def _run_json(self):
        if not self._owns("run.json"):
            return {}
        try:
            with open(self._shared("run.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def finished(self):
        return self._run_json().get("status") == "finished"

    def _resumable(self):
        return self._owns("run.json") or self._owns("checkpoints")

    def remember(self, **values):
        """Record resolved values of an unfinished run (e.g. the learning
        rate an LR range test chose), so a resumed run reuses them."""
        if self.path is None or not self.writer:
            return
        payload = {"status": "running",
                   "resolved": {**self.recall(), **jsonable(values)}}
        _write_json(self.file("run.json"), payload)

    def recall(self):
        """Values recorded by `remember` in an unfinished run, else {}."""
        if self.path is None:
            return {}
        run = self._run_json()
        return dict(run.get("resolved", {})) if run.get(
            "status") == "running" else {}

    def _phase_dir(self, phase):
        return self._shared(f"checkpoints/phase{phase}")

    def phase_status(self, phase):
        """`"empty"`, `"unfinished"` or `"finished"` for training phase N."""
        if self.path is None:
            return "empty"
        return checkpoint_status(self._phase_dir(phase))

    def load_finished_phase(self, model, phase, first_epoch):
        """Weights and history of a phase that finished before a crash."""
        meta = load_checkpoint(model, self._phase_dir(phase))
        return self.read_history(first_epoch, int(meta["epoch"]))

    def prepare_resume(self, phase, first_epoch):
        """History rows of an interrupted phase before its resume epoch, and
        that epoch.

        Rows at or after the resume epoch (written after the checkpoint,
        just before the crash) are dropped from `history.csv`, so the
        resumed epochs are not logged twice.
        """
        meta = latest_checkpoint(self._phase_dir(phase))[0]
        resume = int(meta["epoch"])
        if self.writer:
            self._truncate_history(resume)
        return self.read_history(first_epoch, resume), resume

    def _history_rows(self):
        try:
            with open(self._shared("history.csv"), newline="") as f:
                return list(csv.DictReader(f))
        except OSError:
            return []

    def read_history(self, first_epoch, end_epoch):
        """`history.csv` rows with `first_epoch <= epoch < end_epoch` as a
        dict of lists (`end_epoch=None`: to the end); epochs counted from 0
        here as in Keras, from 1 in the file."""
        history = {}
        for row in self._history_rows():
            epoch = int(row["epoch"]) - 1
            if epoch < first_epoch or (end_epoch is not None
                                       and epoch >= end_epoch):
                continue
            for key, value in row.items():
                if key != "epoch" and value not in (None, ""):
                    history.setdefault(key, []).append(float(value))
        return history

    def _truncate_history(self, end_epoch):
        path = self.file("history.csv")
        if not os.path.isfile(path):
            return
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = [r for r in reader
                    if r and int(float(r[0])) - 1 < end_epoch]
        if header is None:
            return
        tmp = path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)

    def callbacks(self, phase, monitor, mode, *, best=None, resuming=False,
                  track=()):
        """Callbacks writing this directory during one training phase.

        Args:
            phase: Phase number (1, 2, ...).
            monitor: Metric deciding the best model.
            mode: `"max"` or `"min"` for `monitor`.
            best: Best `monitor` value of earlier phases/epochs, so
                `best.keras` holds the best model of the whole run.
            resuming: Whether this phase resumes after a crash.
            track: Other callbacks of the phase whose state is
                checkpointed with it (early stopping).
        """
        if self.path is None:
            return []
        checkpoint = keras.callbacks.ModelCheckpoint(
            self.file("best.keras"), monitor=monitor, mode=mode,
            save_best_only=True, initial_value_threshold=best)
        return [
            checkpoint,
            HistoryCSV(self.file("history.csv"),
                       append=phase > 1 or resuming),
            keras.callbacks.TensorBoard(self.file("logs")),
            Checkpointing(self._phase_dir(phase), save_freq="epoch",
                          track=[*track, checkpoint]),
        ]

    def mark_failed(self, message):
        """Record in `run.json` that training failed, and why (a crashed
        run, by contrast, stays "running" so that it resumes)."""
        if self.path is None or not self.writer:
            return
        _write_json(self.file("run.json"), {
            "status": "failed", "error": message,
            "resolved": self.recall()})

    def write(self, model, config, metrics, history, status="finished"):
        """Write the final model, the run JSON and the plots."""
        if self.path is None:
            return
        final = self.file("model.keras")
        if os.path.isfile(final) and os.stat(final).st_nlink > 1:
            os.remove(final)  # never write through a link into best.keras
        model.save(final)
        if not self.writer:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = self.path
            return
        if history:
            save_plot(history, self.file("training_curves.png"))
        best = self.file("best.keras")
        same = (status == "finished" and self._owns("best.keras")
                and same_weights(model, best))
        if same:
            # Early stopping restored the best epoch: `best.keras` becomes a
            # hard link to `model.keras` (one copy on disk, both names kept).
            # Where links are unsupported, the copy stays.
            _link_over(self.file("model.keras"), best)
        _write_json(self.file("run.json"), {
            "status": status, "config": jsonable(config),
            "metrics": jsonable(metrics),
            "best_model": "best.keras" if os.path.isfile(best)
            else "model.keras",
            "best_is_final": bool(same)})
        if status == "finished":
            # What a finished run no longer needs: its crash-resume state.
            ownership.remove_owned(self.path, ["checkpoints"])


def _link_over(source, target):
    """Replaces `target` by a hard link to `source`; keeps it on failure."""
    tmp = target + ".link"
    try:
        if os.path.lexists(tmp):
            os.remove(tmp)
        os.link(source, tmp)
        os.replace(tmp, target)
    except OSError:
        if os.path.lexists(tmp):
            os.remove(tmp)


def same_weights(model, path):
    """Whether the `.keras` file at `path` holds `model`'s weights."""
    try:
        saved = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception:  # noqa: BLE001 - unreadable: not the same model
        return False
    ours, theirs = model.get_weights(), saved.get_weights()
    return len(ours) == len(theirs) and all(
        a.shape == b.shape and np.array_equal(a, b)
        for a, b in zip(ours, theirs, strict=True))


def run_settings(arguments, ignore=("output_dir", "overwrite", "verbose",
                                    "callbacks")):
    """The settings of a recipe call that shape training, as JSON.

    What a resumed run is checked against (see `OutputDir`): every keyword
    argument but those in `ignore` (where the run is written, how it
    reports, and callbacks, which a user may add to watch a resumed run),
    described by `callbacks._internal.ownership.describe` (arrays by
    shape, dtype and a hash of their bytes).
    """
    return {name: ownership.describe(value)
            for name, value in arguments.items() if name not in ignore}


def _write_json(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)


class HistoryCSV(keras.callbacks.CSVLogger):
    """`CSVLogger` counting epochs from 1, as the progress bar does."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)
