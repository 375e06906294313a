"""Training machinery shared by the recipes (image, sequence, tuning).

A recipe validates its keyword arguments, builds its data and model, and
hands the rest to the pieces here: the distribution strategy and precision
policy (`resolve_runtime`, `precision_policy`), the optimizer with its
schedule (`make_schedule`, `make_optimizer`, `find_peak_learning_rate`),
the callbacks (`make_callbacks`), the run directory (`OutputDir`) and the
object returned to the user (`FitResult`).
"""

import atexit
import contextlib
import csv
import dataclasses
import json
import math
import numbers
import os
import shutil
import tempfile
import warnings

import keras
import numpy as np

import callbacks as cb
from callbacks import _ownership
from callbacks._validation import check_choice, check_number
from callbacks.checkpointing import (
    Checkpointing,
    checkpoint_status,
    is_chief,
    latest_checkpoint,
    load_checkpoint,
)
from recipes import _ema, distribute
from recipes import optimizers as optimizer_registry

SCHEDULES = ("warmup_cosine", "one_cycle", "cyclical", "constant")
# Layers whose variables weight decay leaves alone (biases, norm scales).
_NO_DECAY = ["bias", "gamma", "beta"]


@dataclasses.dataclass
class Runtime:
    """Where and how training runs.

    Attributes:
        strategy: The `tf.distribute.Strategy`.
        policy: Keras dtype policy name.
        replicas: Replicas in sync.
        batch_size: Global batch size (per-replica batch x replicas).
    """

    strategy: object
    policy: str
    replicas: int
    batch_size: int


def resolve_runtime(strategy="auto", mixed_precision="auto", batch_size=32):
    """Resolve strategy, precision policy and global batch size.

    Args:
        strategy: Passed to `recipes.get_strategy`. Defaults to `"auto"`.
        mixed_precision: Passed to `recipes.distribute.resolve_precision`.
            Defaults to `"auto"`.
        batch_size: Per-replica batch size. Defaults to `32`.

    Returns:
        A `Runtime`.
    """
    chosen = distribute.get_strategy(strategy)
    policy = distribute.resolve_precision(mixed_precision, chosen)
    return Runtime(chosen, policy, chosen.num_replicas_in_sync,
                   distribute.global_batch_size(batch_size, chosen))


@contextlib.contextmanager
def precision_policy(policy):
    """Set the global dtype policy while building, then restore it."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def make_schedule(schedule, peak_learning_rate, total_steps, warmup_steps):
    """A learning-rate schedule from `callbacks` by name.

    Args:
        schedule: `"warmup_cosine"` (linear warmup then cosine decay to 0),
            `"one_cycle"` (Smith & Topin), `"cyclical"` (triangular between
            peak/10 and peak, two cycles) or `"constant"`.
        peak_learning_rate: Highest learning rate.
        total_steps: Optimizer steps of the phase.
        warmup_steps: Warmup steps (`"warmup_cosine"` only).

    Returns:
        A `LearningRateSchedule`, or a float for `"constant"`.
    """
    check_choice("schedule", schedule, SCHEDULES)
    total_steps = max(int(total_steps), 1)
    if schedule == "constant":
        return float(peak_learning_rate)
    if schedule == "one_cycle":
        return cb.OneCycleSchedule(peak_learning_rate, total_steps)
    if schedule == "cyclical":
        return cb.CyclicalLearningRate(
            peak_learning_rate / 10, peak_learning_rate,
            step_size=max(total_steps // 4, 1))
    return cb.WarmupCosineDecay(peak_learning_rate, total_steps,
                                warmup_steps=min(warmup_steps,
                                                 total_steps - 1))


def make_optimizer(name, learning_rate, weight_decay, ema_momentum=None):
    """An optimizer from the registry, weight decay off biases and norms.

    Args:
        name: A name from `recipes.optimizers.list_optimizers()`.
        learning_rate: A float or a schedule.
        weight_decay: Decoupled weight decay, or `None`/0 for none.
        ema_momentum: Momentum of a moving average of the weights the
            optimizer keeps (`use_ema`), or `None` for none. Defaults to
            `None`.

    Returns:
        A new `keras.optimizers.Optimizer`.
    """
    kwargs = {"weight_decay": weight_decay} if weight_decay else {}
    if ema_momentum is not None:
        kwargs.update(use_ema=True, ema_momentum=ema_momentum)
    optimizer = optimizer_registry.get(name, learning_rate=learning_rate,
                                       **kwargs)
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=_NO_DECAY)
    return optimizer


def default_learning_rate(optimizer, batch_size):
    """The registry's learning rate for `optimizer`, scaled to the batch.

    Registry defaults are Keras-style rates for batches of 32; the square
    root rule (Hoffer et al., 2017) moves them to `batch_size`.
    """
    return distribute.scale_learning_rate(
        optimizer_registry.default_learning_rate(optimizer), batch_size, 32,
        rule="sqrt")


def find_peak_learning_rate(model, train, num_steps=60, verbose=0):
    """Peak learning rate from an LR range test on the compiled `model`.

    The model and its optimizer are left as they were (see
    `callbacks.find_learning_rate`).

    Returns:
        `(learning_rate, LRFinderResult)`.
    """
    result = cb.find_learning_rate(model, train, num_steps=num_steps,
                                   start_learning_rate=1e-6,
                                   end_learning_rate=1.0, verbose=verbose)
    return float(result.suggestion()), result


def resolve_learning_rate(learning_rate, *, model, make_train, loss, out,
                          runtime, optimizer, make_optimizer, verbose,
                          default_scale=1.0, num_examples=None):
    """The phase-1 peak learning rate of a recipe, and where it came from.

    `None`: the registry's rate for `optimizer`, scaled to the global batch
    (at most `num_examples`, the training set's size) and multiplied by
    `default_scale`;
    `"auto"`: an LR range test on `model` (compiled here with
    `make_optimizer(1e-3)`), or the rate a crashed run in `out` already
    chose; a number: itself. The result is recorded in `out` so a resumed
    run uses the same one.

    The range test reads a new copy of the training pipeline from
    `make_train()`, so it does not move the shuffle of the pipeline the run
    trains on (a resumed run, which skips the test, must find that shuffle
    where an uninterrupted one does: see `align_shuffle`).

    Returns:
        `(peak, finder)`: the rate, and the `LRFinderResult` (or
        `"resumed"`, or `None` when no range test was involved).
    """
    peak, finder = learning_rate, None
    if peak is None:
        # A batch larger than the data set is the whole data set: the
        # rate follows the batch the optimizer really sees.
        batch = runtime.batch_size
        if num_examples is not None:
            batch = max(1, min(batch, num_examples))
        peak = default_learning_rate(optimizer, batch) * default_scale
    elif peak == "auto":
        peak = out.recall().get("learning_rate")
        finder = "resumed" if peak is not None else None
    if peak is None:
        with runtime.strategy.scope():
            model.compile(make_optimizer(1e-3), loss=loss,
                          metrics=[accuracy_metric()])
        peak, finder = find_peak_learning_rate(model, make_train(),
                                               verbose=int(verbose > 0))
    out.remember(learning_rate=peak)
    return peak, finder


def check_training_args(*, epochs, batch_size, learning_rate, weight_decay,
                        label_smoothing, schedule, warmup_fraction,
                        steps_per_execution, verbose, callbacks=None,
                        seed=None, auto_epochs=False):
    """Validate the keyword arguments every recipe shares (before work).

    With `auto_epochs`, `epochs` may also be `"auto"` (a recipe that
    resolves it from the data).
    """
    check_callbacks(callbacks)
    # `keras.utils.set_random_seed` hands the seed to NumPy, which takes
    # only 32-bit seeds.
    check_number("seed", seed, low=0, high=2**32 - 1, integer=True,
                 allow_none=True)
    check_epochs(epochs, auto=auto_epochs)
    check_number("batch_size", batch_size, low=1, integer=True)
    if learning_rate != "auto":
        check_number("learning_rate", learning_rate, low=0.0,
                     low_inclusive=False, allow_none=True)
    check_number("weight_decay", weight_decay, low=0.0, allow_none=True)
    check_number("label_smoothing", label_smoothing, low=0.0, high=1.0,
                 high_inclusive=False)
    check_choice("schedule", schedule, SCHEDULES)
    check_number("warmup_fraction", warmup_fraction, low=0.0, high=1.0,
                 high_inclusive=False)
    if steps_per_execution != "auto":
        check_number("steps_per_execution", steps_per_execution, low=1,
                     integer=True)
    check_choice("verbose", verbose, (0, 1, 2))


def check_epochs(epochs, auto=False):
    """`epochs` must be an integer >= 1 (or `"auto"`, with `auto`)."""
    if not auto:
        check_number("epochs", epochs, low=1, integer=True)
        return
    if isinstance(epochs, str) and epochs == "auto":
        return
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Real):
        raise TypeError(
            "Argument `epochs` must be 'auto' or an integer >= 1. "
            f"Received: epochs={epochs!r}"
        )
    check_number("epochs", epochs, low=1, integer=True)


def check_callbacks(callbacks):
    """`callbacks` must be `None` or a list/tuple of Keras callbacks."""
    if callbacks is None:
        return
    if not isinstance(callbacks, (list, tuple)) or not all(
            isinstance(c, keras.callbacks.Callback) for c in callbacks):
        raise TypeError(
            "Argument `callbacks` must be a list of `keras.callbacks."
            f"Callback` instances. Received: callbacks={callbacks!r}"
        )


def steps_per_execution_for(steps_per_execution, steps_per_epoch,
                            runtime=None):
    """`"auto"`: 32 steps per call (bounded by the epoch), else as given.

    Running several steps per `tf.function` call removes the per-step
    Python overhead (3.4x on a small model here); the recipes' schedules
    are computed in-graph from the step counter, so they stay exact. Under
    a multi-replica strategy other than TPU, `"auto"` is 1: with TF 2.21 and
    Keras 3.15, `MirroredStrategy` over 2 CPU devices failed here inside
    Keras's multi-step loop ("You must feed a value for placeholder tensor
    'while/cond/Placeholder_1'").
    """
    if steps_per_execution == "auto":
        if runtime is not None and runtime.replicas > 1 and (
                "TPU" not in type(runtime.strategy).__name__):
            return 1
        return max(1, min(32, steps_per_epoch))
    return int(steps_per_execution)


class OutputDir:
    """A run directory: best model, history, logs, config, plots.

    The directory's manifest (`.keras-recipes.json`, see
    `callbacks._ownership`) lists what the recipe created there and the
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
        self._foreign = _ownership.foreign(self.path, self.FILES + self.DIRS)
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
            changes = _ownership.changed_settings(
                _ownership.read_manifest(self.path).get("settings"),
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
            _ownership.remove_owned(self.path)
        fresh = not self._owns("run.json")
        # Listed before they exist; a user's file of the same name
        # (`overwrite=True`) is written over but never listed, so never
        # deleted.
        _ownership.claim(
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
        return (name in _ownership.owned(self.path)
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
            _ownership.remove_owned(self.path, ["checkpoints"])


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
    described by `callbacks._ownership.describe` (arrays by shape, dtype
    and a hash of their bytes).
    """
    return {name: _ownership.describe(value)
            for name, value in arguments.items() if name not in ignore}


def _write_json(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)


def build_optimizer(model):
    """Creates the compiled optimizer's variables now, before `fit`.

    Without a distribution strategy set, Keras creates the optimizer's slot
    variables inside the first trace of the train step; TensorFlow then
    traces the whole step a second time, since a traced function may create
    variables only on its first trace. Building them beforehand makes that
    one trace: on MNIST-5k it took 1.5-2.3 s off the small CNN's first
    epoch (same weights and metrics). Call it inside the strategy scope the
    model was compiled in.

    Args:
        model: A compiled, built model.
    """
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)


def accuracy_metric():
    """The recipes' accuracy metric (one-hot labels), named `accuracy`."""
    return keras.metrics.CategoricalAccuracy(name="accuracy")


def fit_phase(model, *, phase, epochs, initial_epoch, optimizer_fn, train,
              val, loss, spe, steps, runtime, out, verbose, early_stopping,
              patience, schedule, warmup_fraction, extra_callbacks,
              earlier=None):
    """Compile and fit one training phase, resuming it from `out`.

    Args:
        model: The model (built under `runtime.strategy`).
        phase: Phase number; names its checkpoint directory.
        epochs: Epochs of this phase.
        initial_epoch: Epochs of the earlier phases.
        optimizer_fn: `optimizer_fn(make)` returns the optimizer, where
            `make(peak)` is this phase's schedule peaking at `peak`.
        earlier: History of the earlier phases (decides the best model
            `best.keras` must beat). Defaults to `None`.

    Returns:
        This phase's history as a dict of lists (after a resume, read back
        from `history.csv` for the epochs before the crash).
    """
    total = epochs * steps

    def make(peak):
        return make_schedule(schedule, peak, total,
                             round(warmup_fraction * total))

    with runtime.strategy.scope():
        model.compile(optimizer=optimizer_fn(make), loss=loss,
                      metrics=[accuracy_metric()], steps_per_execution=spe)
        build_optimizer(model)
    status = out.phase_status(phase)
    if status == "finished":
        return out.load_finished_phase(model, phase, initial_epoch)
    before, start = {}, initial_epoch
    if status == "unfinished":
        # The model, optimizer (step, slots, schedule position), dropout
        # seeds, metric and early-stopping state resume exactly; the
        # shuffle order too, through `align_shuffle`.
        before, start = out.prepare_resume(phase, initial_epoch)
    align_shuffle(train, out, start)
    monitor = "val_accuracy" if val is not None else "accuracy"
    so_far = merge_histories(earlier or {}, before).get(monitor)
    found = make_callbacks(
        output_dir=out, phase=phase, early_stopping=early_stopping,
        patience=patience, has_validation=val is not None, verbose=verbose,
        extra=extra_callbacks, best=max(so_far) if so_far else None,
        resuming=status == "unfinished",
        ema=bool(_ema.ema_pairs(model.optimizer)))
    # Only non-finite losses and weights: a spike rule would misfire late
    # in training, when the median loss nears zero and one hard batch is
    # many times the median.
    guard = cb.DivergenceGuard(spike_factor=None, verbose=int(verbose > 0))
    # Inside the scope: a model from `distribute.prepare_model` does not
    # carry its strategy.
    with runtime.strategy.scope():
        try:
            history = model.fit(train, validation_data=val,
                                epochs=initial_epoch + epochs,
                                initial_epoch=initial_epoch,
                                callbacks=[guard, *found],
                                shuffle=False, verbose=verbose)
        except cb.DivergenceError as error:
            failure = diverged_error(model, phase, start, error)
            out.mark_failed(str(failure))
            raise failure from error
    if guard.rollbacks:
        step, back_to, reason = guard.rollbacks[-1]
        if int(model.optimizer.iterations.numpy()) == back_to:
            # Training ended right after a rollback: no step since trained.
            failure = diverged_error(model, phase, start, (
                f"The last rollback (step {step}: {reason}) was followed "
                "by no step that trained."))
            out.mark_failed(str(failure))
            raise failure
        warnings.warn(
            f"Training phase {phase} diverged {len(guard.rollbacks)} "
            "time(s) and recovered (rolled back, learning rate cut): "
            f"{guard.rollbacks}. Consider a smaller `learning_rate`.",
            stacklevel=3)
    out.epochs_drawn = start + len(history.history.get("loss", []))
    return merge_histories(before, history.history)


def diverged_error(model, phase, start, error):
    """The recipes' `DivergenceError`: what happened, the last good epoch."""
    # `History.epoch` holds the global indices of the epochs this `fit`
    # finished; an epoch that ended in a rollback logs a NaN loss.
    record = getattr(model, "history", None)
    losses = getattr(record, "history", {}).get("loss", [])
    good = [epoch for epoch, loss in zip(getattr(record, "epoch", []),
                                         losses, strict=False)
            if math.isfinite(loss)]
    last = good[-1] + 1 if good else start
    good = (f"the last epoch that finished without diverging is epoch "
            f"{last}" if last else "no epoch finished without diverging")
    return cb.DivergenceError(
        f"Training phase {phase} diverged (the loss or weights became "
        f"NaN/inf) and the learning-rate cuts did not help; {good}. "
        f"Details: {error} Pass a smaller `learning_rate`, or check the "
        "data for NaN/inf values."
    )


class HistoryCSV(keras.callbacks.CSVLogger):
    """`CSVLogger` counting epochs from 1, as the progress bar does."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)


# Iterators Keras's `fit` makes of a dataset of known length per epoch: the
# epoch's own, and one at its end, which the next epoch replaces unused
# (Keras 3.15's `EpochIterator`; the resume tests catch a change).
_ITERATORS_PER_EPOCH = 2


def align_shuffle(train, out, epoch):
    """Bring `train`'s shuffle to where an uninterrupted run has it at `epoch`.

    A `tf.data` shuffle with `reshuffle_each_iteration=True` draws a new
    order for each iterator made of it, from a sequence that starts afresh
    in a new process. A resumed run (or a phase 2 whose phase 1 was read
    back from disk) would replay the first epochs' orders; making, without
    reading, the iterators the skipped epochs' `fit` calls would have made
    moves the sequence to the uninterrupted run's position, so resumed
    weights equal uninterrupted ones (tested on CPU without a distribution
    strategy, which re-creates the dataset per replica). Datasets of
    unknown length are left as they are: Keras iterates those a different
    number of times. Randomness inside the pipeline (augmentation layers,
    MixUp, CutMix) is not realigned.

    Args:
        train: The training `tf.data.Dataset` every phase of the run fits.
        out: The run's `OutputDir`; its `epochs_drawn` counts the epochs
            this process has drawn so far.
        epoch: The global epoch the next `fit` starts at.
    """
    missing = epoch - out.epochs_drawn
    if missing <= 0 or int(train.cardinality()) < 0:
        return
    for _ in range(_ITERATORS_PER_EPOCH * missing):
        iter(train)
    out.epochs_drawn = epoch


def make_callbacks(*, output_dir, phase, early_stopping, patience,
                   has_validation, verbose, extra=(), best=None,
                   resuming=False, ema=False):
    """Callbacks of one phase: early stopping, run-directory writers.

    With `ema` (the optimizer keeps a weight average), validation, early
    stopping, the best-model file and the `extra` callbacks see the
    averaged weights at each epoch end; the crash-resume checkpoint is
    written with the raw weights in the model (see `recipes._ema`).
    """
    monitor = "val_accuracy" if has_validation else "accuracy"
    # Keras's own bar counts past its total with steps_per_execution > 1.
    found = [*extra, cb.ProgressBar()]
    stoppers = []
    if early_stopping and has_validation:
        stoppers.append(cb.EarlyStopping(
            monitor=monitor, mode="max", patience=patience,
            restore_best_weights=True, verbose=int(verbose > 0)))
    found.extend(stoppers)
    found.extend(output_dir.callbacks(phase, monitor, "max", best=best,
                                      resuming=resuming, track=stoppers))
    if ema:
        first, last = _ema.ema_callbacks()
        at = next((i for i, c in enumerate(found)
                   if isinstance(c, Checkpointing)), len(found))
        found = [first, *found[:at], last, *found[at:]]
    return found


def evaluate_splits(model, strategy=None, **splits):
    """`{split}_{metric}` for each non-None dataset given by keyword."""
    metrics = {}
    for prefix, dataset in splits.items():
        if dataset is not None:
            with (strategy.scope() if strategy is not None
                  else contextlib.nullcontext()):
                logs = model.evaluate(dataset, verbose=0, return_dict=True)
            metrics.update({f"{prefix}_{k}": float(v) for k, v in logs.items()})
    return metrics


def training_config(*, runtime, steps_per_execution, learning_rate,
                    requested_learning_rate, used_lr_finder, history,
                    **settings):
    """The part of a recipe's resolved config that every recipe shares:
    the given `settings`, where the learning rate came from, the runtime
    (strategy, replicas, precision) and how many epochs really ran."""
    return {
        **settings,
        "learning_rate": learning_rate,
        "learning_rate_source": (
            "lr_finder" if used_lr_finder
            else "given" if requested_learning_rate else "default"),
        "global_batch_size": runtime.batch_size,
        "replicas": runtime.replicas,
        "strategy": type(runtime.strategy).__name__,
        "mixed_precision": runtime.policy,
        "steps_per_execution": steps_per_execution,
        "epochs_run": len(history.get("loss", [])),
    }


def merge_histories(*histories):
    """One dict of lists from several `History.history` dicts, in order."""
    merged = {}
    for history in histories:
        for key, values in history.items():
            merged.setdefault(key, []).extend(float(v) for v in values)
    return merged


def save_plot(history, path):
    """Save training curves (loss and accuracy) to `path`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    axes = draw_history(history)
    axes[0].figure.tight_layout()
    axes[0].figure.savefig(path, dpi=100)
    plt.close(axes[0].figure)


def draw_history(history):
    """Loss and accuracy curves (with their `val_` twins) on new axes."""
    return cb.plot_history(history, metrics=[
        k for k in ("loss", "accuracy") if k in history])


def jsonable(value):
    """Config values as JSON: tuples to lists, NumPy scalars to Python."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


class FitResult:
    """What a recipe returns: the trained model and what happened.

    Attributes:
        model: The trained `keras.Model` (best validation epoch restored
            when early stopping is on).
        history: Dict of per-epoch lists over all phases.
        metrics: Final metrics (`val_*`, and `test_*` with test data).
        config: The resolved configuration (every default made explicit).
        output_dir: The run directory, or `None`.
    """

    def __init__(self, model, history, metrics, config, output_dir=None):
        self.model = model
        self.history = history
        self.metrics = metrics
        self.config = config
        self.output_dir = output_dir

    def plot(self, path=None):
        """Plot the training curves (matplotlib).

        Args:
            path: Optional file to save the figure to. Defaults to `None`.

        Returns:
            The list of matplotlib `Axes`.
        """
        axes = draw_history(self.history)
        if path is not None:
            axes[0].figure.savefig(path, dpi=100)
        return axes

    def __repr__(self):
        shown = ", ".join(f"{k}={v:.4f}" for k, v in self.metrics.items())
        return f"{type(self).__name__}({shown})"


class ClassifierResult(FitResult):
    """A classifier recipe's result: predictions, evaluation with test-time
    augmentation, and interpretation.

    Subclasses turn raw user inputs into model inputs (`_model_inputs`),
    say how examples are drawn (`_input_kind`) and which TTA policy a
    `tta` argument means (`_tta_policy`).

    Attributes:
        class_names: Class names; `model` output `i` is `class_names[i]`.
    """

    def __init__(self, model, class_names, history, metrics, config,
                 output_dir=None):
        super().__init__(model, history, metrics, config, output_dir)
        self.class_names = list(class_names)

    def _tta_policy(self, tta):
        if tta is None or tta is False:
            return None
        raise ValueError(
            "Argument `tta` (test-time augmentation) applies to image "
            f"classifiers only. Received: tta={tta!r}"
        )

    def predict_proba(self, x, batch_size=256, tta=False):
        """Class probabilities of raw examples `x` (like the training data).

        Args:
            x: Examples (see `predict`).
            batch_size: Prediction batch size. Defaults to `256`.
            tta: Test-time augmentation (image classifiers): `False`,
                `True`/`"auto"`, `"shift"` or `"flip"` (see `recipes.tta`).
                Defaults to `False`.

        Returns:
            Float array `(n, num_classes)`.
        """
        from recipes import tta as tta_module

        policy = self._tta_policy(tta)
        check_number("batch_size", batch_size, low=1, integer=True)
        inputs = self._model_inputs(x)

        def predict(batch):
            return self.model.predict(batch, batch_size=batch_size,
                                      verbose=0)

        if policy is None:
            return np.asarray(predict(inputs))
        return tta_module.predict_with_tta(predict, inputs, policy)

    def predict(self, x, batch_size=256, tta=False):
        """Class names of raw examples `x` (like the training data).

        Args:
            x: Images (one or a batch) for an image classifier; a
                `(n, timesteps, features)` array, a list of sequences, or
                strings for a sequence classifier.
            batch_size: Prediction batch size. Defaults to `256`.
            tta: Test-time augmentation, see `predict_proba`. Defaults to
                `False`.

        Returns:
            NumPy array of `n` class names.

        Raises:
            ValueError: If the examples do not fit the model.
        """
        probabilities = self.predict_proba(x, batch_size=batch_size, tta=tta)
        return np.asarray(self.class_names)[np.argmax(probabilities, -1)]

    def _label_indices(self, y, n):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.shape != (n,):
            raise ValueError(
                f"Argument `data` must hold one label per example ({n}). "
                f"Received: labels of shape {y.shape}"
            )
        if y.dtype.kind in "USO":
            lookup = {name: i for i, name in enumerate(self.class_names)}
            unknown = sorted({str(v) for v in y} - set(lookup))
            if unknown:
                raise ValueError(
                    "Argument `data` has labels that are not class names "
                    f"{self.class_names}. Received: {unknown[:5]}"
                )
            return np.array([lookup[str(v)] for v in y], dtype="int64")
        if y.dtype.kind not in "iuf" or not np.all(np.mod(y, 1) == 0) or (
                y.min() < 0 or y.max() >= len(self.class_names)):
            raise ValueError(
                "Argument `data` must hold class names or integer labels in "
                f"[0, {len(self.class_names)}). Received: labels of dtype "
                f"{y.dtype}"
            )
        return y.astype("int64")

    def interpret(self, data, batch_size=256, tta=False):
        """Confusion matrix, per-class scores and top losses on `data`.

        Args:
            data: A pair `(x, y)` of raw examples (like the training data)
                and their labels (class names, or indices into
                `class_names`).
            batch_size: Prediction batch size. Defaults to `256`.
            tta: Test-time augmentation, see `predict_proba`. Defaults to
                `False`.

        Returns:
            A `recipes.interpretation.Interpretation`.

        Raises:
            ValueError: For data that is not such a pair, or labels that
                are not classes of the model.
        """
        from recipes.interpretation import Interpretation

        if not (isinstance(data, tuple | list) and len(data) == 2):
            raise ValueError(
                "Argument `data` must be a pair `(x, y)` of examples and "
                f"labels. Received: data of type {type(data).__name__}"
            )
        x, y = data
        probabilities = self.predict_proba(x, batch_size=batch_size, tta=tta)
        labels = self._label_indices(y, len(probabilities))
        kind, inputs = self._input_kind(x)
        return Interpretation(
            labels, probabilities, self.class_names, inputs=inputs,
            kind=kind, value_range=self.config.get("value_range", 255.0))

    def evaluate(self, data, batch_size=256, tta=False):
        """Accuracy and cross-entropy on `data`, with or without TTA.

        The cross-entropy is the mean of `-log p(true class)`, without the
        label smoothing training may use (so it differs from
        `model.evaluate`'s loss when `label_smoothing` > 0).

        Args:
            data: A pair `(x, y)` (see `interpret`).
            batch_size: Prediction batch size. Defaults to `256`.
            tta: Test-time augmentation, see `predict_proba`. Defaults to
                `False`.

        Returns:
            `{"accuracy": float, "cross_entropy": float}`.
        """
        interpretation = self.interpret(data, batch_size=batch_size,
                                        tta=tta)
        return {"accuracy": interpretation.accuracy,
                "cross_entropy": float(np.mean(interpretation.losses))}
