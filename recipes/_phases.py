"""Training phases: one compiled `fit` per phase (optimizer, schedule,
callbacks, resume), the mechanism every recipe trains through."""

import math
import warnings

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
