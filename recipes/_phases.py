"""Training phases: a run is a list of `Phase`s, each one compiled `fit`
(optimizer, schedule, callbacks, resume), trained by `run_phases`, the
mechanism every recipe trains through."""

import contextlib
import dataclasses
import math
import warnings
from collections.abc import Callable

import callbacks as cb
from callbacks._internal import keras_compat
from callbacks.checkpointing import (
    Checkpointing,
)
from recipes import _ema
from recipes._optimization import (
    accuracy_metric,
    build_optimizer,
    make_schedule,
)


@dataclasses.dataclass(frozen=True)
class Phase:
    """One training phase: one compiled `fit` of `epochs` epochs.

    Attributes:
        number: Phase number (1, 2, ...); names its checkpoint directory.
        epochs: Epochs of this phase.
        optimizer: `optimizer(schedule)` returns the phase's optimizer,
            where `schedule(peak)` is the run's schedule over this phase's
            steps, peaking at `peak`.
        setup: Called before the phase compiles (which layers train), or
            `None`.
        callbacks: `callbacks(initial_epoch)` returns this phase's own
            callbacks (added to the run's), or `None`.
    """

    number: int
    epochs: int
    optimizer: Callable
    setup: Callable | None = None
    callbacks: Callable | None = None


@dataclasses.dataclass(frozen=True)
class Training:
    """What every phase of one run shares.

    Attributes:
        train: The training `tf.data.Dataset`.
        val: The validation dataset, or `None`.
        loss: The loss.
        steps_per_epoch: Optimizer steps per epoch.
        steps_per_execution: Steps per compiled call.
        runtime: The run's `recipes._runtime.Runtime`.
        out: The run's `recipes._run_dir.OutputDir`.
        verbose: Verbosity (0, 1 or 2).
        early_stopping: Whether a phase stops on a validation plateau.
        patience: Early-stopping patience in epochs.
        schedule: Learning-rate schedule name.
        warmup_fraction: Warmup fraction of each phase's steps.
        callbacks: The user's callbacks, added to every phase.
    """

    train: object
    val: object
    loss: object
    steps_per_epoch: int
    steps_per_execution: int
    runtime: object
    out: object
    verbose: int
    early_stopping: bool
    patience: int
    schedule: str
    warmup_fraction: float
    callbacks: tuple = ()

    @classmethod
    def of_run(cls, config, plan, *, train, val, loss, runtime, out):
        """The `Training` of a recipe run: the settings of its `config`
        (`verbose`, `early_stopping`, `schedule`, `warmup_fraction`,
        `callbacks`) and its `plan` (`steps_per_epoch`,
        `steps_per_execution`, `patience`)."""
        return cls(
            train=train, val=val, loss=loss,
            steps_per_epoch=plan.steps_per_epoch,
            steps_per_execution=plan.steps_per_execution, runtime=runtime,
            out=out, verbose=config.verbose,
            early_stopping=config.early_stopping, patience=plan.patience,
            schedule=config.schedule, warmup_fraction=config.warmup_fraction,
            callbacks=tuple(config.callbacks or ()))


def resolve_patience(patience, epochs):
    """Early-stopping patience: `patience`, or `max(3, epochs // 4)` for
    `None` (a quarter of the run, at least 3 epochs)."""
    return max(3, epochs // 4) if patience is None else patience


def run_phases(model, phases, training):
    """Train `model` through `phases` in order; their merged history.

    Each phase starts at the epoch the earlier ones ended (early stopping
    may end one sooner) and competes with them for the best model.

    Args:
        model: The model (built under `training.runtime.strategy`).
        phases: The `Phase`s, in order.
        training: The run's `Training`.

    Returns:
        The history of all phases, a dict of lists.
    """
    history = {}
    for phase in phases:
        if phase.setup is not None:
            phase.setup()
        history = merge_histories(history, fit_phase(
            model, phase, training,
            initial_epoch=len(history.get("loss", [])), earlier=history))
    return history


def compile_phase(model, phase, *, loss, steps_per_epoch,
                  steps_per_execution, schedule, warmup_fraction,
                  strategy=None):
    """Compile `model` for `phase`: its optimizer on the schedule
    `schedule` over the phase's steps, `loss` and the accuracy metric; the
    optimizer's variables are built now (see `build_optimizer`).

    Args:
        model: The model.
        phase: The `Phase`.
        strategy: The `tf.distribute.Strategy` to compile under, or `None`.
            Defaults to `None`.
    """
    total = phase.epochs * steps_per_epoch

    def make(peak):
        return make_schedule(schedule, peak, total,
                             round(warmup_fraction * total))

    with (strategy.scope() if strategy is not None
          else contextlib.nullcontext()):
        model.compile(optimizer=phase.optimizer(make), loss=loss,
                      metrics=[accuracy_metric()],
                      steps_per_execution=steps_per_execution)
        build_optimizer(model)


def fit_phase(model, phase, training, *, initial_epoch, earlier=None):
    """Compile and fit one training phase, resuming it from `training.out`.

    Args:
        model: The model (built under `training.runtime.strategy`).
        phase: The `Phase`.
        training: The run's `Training`.
        initial_epoch: Epochs of the earlier phases.
        earlier: History of the earlier phases (decides the best model
            `best.keras` must beat). Defaults to `None`.

    Returns:
        This phase's history as a dict of lists (after a resume, read back
        from `history.csv` for the epochs before the crash).
    """
    runtime, out, val = training.runtime, training.out, training.val
    train, verbose = training.train, training.verbose
    compile_phase(model, phase, loss=training.loss,
                  steps_per_epoch=training.steps_per_epoch,
                  steps_per_execution=training.steps_per_execution,
                  schedule=training.schedule,
                  warmup_fraction=training.warmup_fraction,
                  strategy=runtime.strategy)
    extra = list(training.callbacks)
    if phase.callbacks is not None:
        extra.extend(phase.callbacks(initial_epoch))
    status = out.phase_status(phase.number)
    if status == "finished":
        return out.load_finished_phase(model, phase.number, initial_epoch)
    before, start = {}, initial_epoch
    if status == "unfinished":
        # The model, optimizer (step, slots, schedule position), dropout
        # seeds, metric and early-stopping state resume exactly; the
        # shuffle order too, through `align_shuffle`.
        before, start = out.prepare_resume(phase.number, initial_epoch)
    align_shuffle(train, out, start)
    monitor = "val_accuracy" if val is not None else "accuracy"
    so_far = merge_histories(earlier or {}, before).get(monitor)
    found = make_callbacks(
        output_dir=out, phase=phase.number,
        early_stopping=training.early_stopping,
        patience=training.patience, has_validation=val is not None,
        verbose=verbose, extra=extra, best=max(so_far) if so_far else None,
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
                                epochs=initial_epoch + phase.epochs,
                                initial_epoch=initial_epoch,
                                callbacks=[guard, *found],
                                shuffle=False, verbose=verbose)
        except cb.DivergenceError as error:
            failure = diverged_error(model, phase.number, start, error)
            out.mark_failed(str(failure))
            raise failure from error
    if guard.rollbacks:
        step, back_to, reason = guard.rollbacks[-1]
        if int(model.optimizer.iterations.numpy()) == back_to:
            # Training ended right after a rollback: no step since trained.
            failure = diverged_error(model, phase.number, start, (
                f"The last rollback (step {step}: {reason}) was followed "
                "by no step that trained."))
            out.mark_failed(str(failure))
            raise failure
        warnings.warn(
            f"Training phase {phase.number} diverged "
            f"{len(guard.rollbacks)} time(s) and recovered (rolled back, "
            f"learning rate cut): {guard.rollbacks}. Consider a smaller "
            "`learning_rate`.",
            stacklevel=4)
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
    for _ in range(keras_compat.ITERATORS_PER_EPOCH * missing):
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


def merge_histories(*histories):
    """One dict of lists from several `History.history` dicts, in order."""
    merged = {}
    for history in histories:
        for key, values in history.items():
            merged.setdefault(key, []).extend(float(v) for v in values)
    return merged
