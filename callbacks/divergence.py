"""Recover from a diverging run: roll back, lower the LR, retry.

Keras's `TerminateOnNaN` only stops training (and `BackupAndRestore` then
deletes its backup, which may already hold NaN weights). `DivergenceGuard`
instead detects a non-finite or exploding loss, restores the model and
optimizer to the last state that was known to be finite, multiplies the
learning rate by a factor through the in-graph LR controller (so it works on
top of schedules) and carries on, up to a number of retries.
"""

import collections
import math
import os

import keras
import numpy as np

from callbacks import _lr_control, _state
from callbacks._validation import check_number
from callbacks.checkpointing import latest_checkpoint


class DivergenceError(RuntimeError):
    """Training kept diverging after all the rollbacks it was allowed."""


def is_divergent(loss, history, spike_factor, min_history):
    """Whether `loss` is non-finite or a spike relative to `history`.

    A spike is a loss above `spike_factor` times the median of the recent
    finite losses; it is only judged once `min_history` losses are known
    and when their median is positive (a factor means nothing otherwise).

    Args:
        loss: The newest loss (a float).
        history: Recent accepted losses (a sequence of floats).
        spike_factor: The factor, or `None` to check finiteness only.
        min_history: Losses needed before spikes are judged.

    Returns:
        `None` when the loss is fine, else a short reason string.
    """
    if not math.isfinite(loss):
        return f"loss is {loss}"
    if spike_factor is None or len(history) < min_history:
        return None
    median = float(np.median(history))
    if median > 0 and loss > spike_factor * median:
        return (f"loss {loss:.4g} > {spike_factor:g} x running median "
                f"{median:.4g}")
    return None


class DivergenceGuard(keras.callbacks.Callback):
    """Roll back and lower the learning rate when the loss diverges.

    After every step (every execution with `steps_per_execution > 1`) the
    guard reads the mean loss of the steps since its previous check (from
    the loss tracker, not the epoch's running mean, so a single bad batch
    stands out). The loss diverges when it is NaN/inf, or when it exceeds
    `spike_factor` times the median of the last `window` accepted losses.
    Every `snapshot_every` steps it also checks that the weights and
    optimizer slots are finite: a NaN can corrupt weights while the loss
    stays finite (measured: a NaN image in an MNIST batch turned first-layer
    weights to NaN, yet ReLU mapped the NaNs to 0 and the loss stayed
    normal). On a divergence the guard:

    1. restores the model's and optimizer's variables (weights, statistics,
       optimizer slots and step counter) from the last snapshot whose
       values were all finite, kept in memory, or read from the newest
       checkpoint of a `Checkpointing` directory when `directory` is given;
    2. multiplies the learning rate by `lr_factor` from the next step on,
       through the in-graph LR controller: it works on a float learning
       rate and on top of schedules and LR callbacks, without retracing;
    3. resets the epoch's metrics (they held the diverged steps) and trains
       on with the next batch (the data is not rewound).

    After `max_retries` rollbacks, a further divergence restores the last
    finite state, removes the in-graph LR controller (as
    `callbacks.restore_optimizer` does: the optimizer's learning rate is
    settable again, a reduced float rate stays reduced) and raises
    `DivergenceError`, so the model left behind is usable. The guard
    writes no files; a `Checkpointing` callback in the same `fit` refuses
    non-finite state, and as the guard checks every step and rolls back
    before the next step begins, a checkpoint only ever holds state the
    guard accepted.

    Checking forces a host sync per check (the loss must be read), which
    also stops Keras dispatching batch-end callbacks asynchronously: on a
    small model that costs a noticeable fraction of step time (see the
    README). With `steps_per_execution=k`, the guard checks every `k` steps.

    Args:
        spike_factor: A loss above this multiple of the running median is
            an explosion; `None` checks only for NaN/inf. Defaults to `10.0`.
        window: How many recent losses the running median covers.
            Defaults to `50`.
        min_history: Losses needed before spikes are judged (early losses
            fall fast). Defaults to `10`.
        lr_factor: Learning-rate multiplier applied at each rollback, in
            (0, 1]. Defaults to `0.5`.
        max_retries: Rollbacks allowed before giving up. Defaults to `3`.
        snapshot_every: Every this many steps, check that the state is
            finite and (without `directory`) keep it in memory as the
            rollback point. Defaults to `50`.
        directory: Optional `Checkpointing` directory (a path string or
            `os.PathLike`) to roll back to
            instead of keeping snapshots in memory (for models too large to
            copy); the state at train begin is still kept in memory, as the
            fallback when the directory holds no checkpoint yet.
            Defaults to `None`.
        verbose: Print a line for every rollback. Defaults to `1`.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If an argument is out of range.

    Example:

    ```python
    guard = DivergenceGuard(spike_factor=10.0, lr_factor=0.5, max_retries=3)
    model.fit(x, y, epochs=5, callbacks=[guard])
    print(guard.rollbacks)   # [(step, rolled back to step, reason), ...]
    ```
    """

    def __init__(self, spike_factor=10.0, window=50, min_history=10,
                 lr_factor=0.5, max_retries=3, snapshot_every=50,
                 directory=None, verbose=1):
        super().__init__()
        self.spike_factor = check_number(
            "spike_factor", spike_factor, low=1, low_inclusive=False,
            allow_none=True)
        self.window = check_number("window", window, low=1, integer=True)
        self.min_history = check_number(
            "min_history", min_history, low=1, high=self.window,
            integer=True)
        self.lr_factor = check_number(
            "lr_factor", lr_factor, low=0, low_inclusive=False, high=1)
        self.max_retries = check_number(
            "max_retries", max_retries, low=0, integer=True)
        self.snapshot_every = check_number(
            "snapshot_every", snapshot_every, low=1, integer=True)
        if directory is not None:
            if not isinstance(directory, (str, os.PathLike)):
                raise TypeError(
                    "Argument `directory` must be a path string, an "
                    "`os.PathLike` or None. "
                    f"Received: directory={directory!r}"
                )
            directory = os.fspath(directory)
        self.directory = directory
        self.verbose = verbose
        self.rollbacks = []

    def _loss_tracker(self):
        for metric in self.model.metrics:
            if metric.name == "loss" and len(metric.variables) == 2:
                return metric
        return None

    def _take_snapshot(self, step):
        """Keep the state if it is finite (in memory mode); say if it was."""
        arrays = _state.read(self.model)
        if _state.non_finite(self.model, arrays):
            return False
        if self.directory is None or self._snapshot is None:
            self._snapshot, self._snapshot_step = arrays, step
        return True

    def _rollback_target(self):
        if self.directory is not None:
            found = latest_checkpoint(self.directory)
            if found is not None and _state.mismatch(self.model,
                                                     found[1]) is None:
                return found[1], found[0]["step"]
        return self._snapshot, self._snapshot_step

    def _restore_good_state(self):
        arrays, step = self._rollback_target()
        _state.write(self.model, arrays, ("model", "optimizer"))
        return step

    # ------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        self._control = _lr_control.attach(self, self.model)
        _state.ensure_optimizer_built(self.model)
        self.rollbacks = []
        self._history = collections.deque(maxlen=self.window)
        self._snapshot = None
        self._tracker = self._loss_tracker()
        self._seen = (0.0, 0.0)

    def on_epoch_begin(self, epoch, logs=None):
        # `fit` resets the metrics before each epoch.
        self._seen = (0.0, 0.0)
        if self._snapshot is not None:
            return
        # The first snapshot is taken here rather than at train begin, so
        # that a Checkpointing callback listed after the guard has already
        # restored the resumed state.
        step = int(self.model.optimizer.iterations.numpy())
        self._checked_step = step
        if not self._take_snapshot(step):
            _lr_control.release(self.model)
            raise ValueError(
                "DivergenceGuard: the model's state is already non-finite "
                "at the start of training."
            )

    def on_train_batch_end(self, batch, logs=None):
        if self._tracker is not None:
            total, count = (float(v.numpy()) for v in self._tracker.variables)
            seen_total, seen_count = self._seen
            if count <= seen_count:
                return
            loss = (total - seen_total) / (count - seen_count)
            self._seen = (total, count)
        else:
            loss = float((logs or {}).get("loss", 0.0))
        reason = is_divergent(loss, self._history, self.spike_factor,
                              self.min_history)
        step = int(self.model.optimizer.iterations.numpy())
        if reason is not None:
            self._recover(step, reason)
            return
        self._history.append(loss)
        if step - self._checked_step >= self.snapshot_every:
            self._checked_step = step
            if not self._take_snapshot(step):
                self._recover(step, "non-finite weights")

    def _recover(self, step, reason):
        if len(self.rollbacks) >= self.max_retries:
            back_to = self._restore_good_state()
            # Keras skips `on_train_end` when `fit` raises: give the
            # optimizer back its own (settable) learning rate now.
            _lr_control.release(self.model)
            lr = _lr_control.current_learning_rate(self.model.optimizer)
            raise DivergenceError(
                f"Training diverged at step {step} ({reason}) after "
                f"{len(self.rollbacks)} rollback(s) (max_retries="
                f"{self.max_retries}); the model was restored to step "
                f"{back_to} and the optimizer's learning rate is now "
                f"{lr:.4g}. Lower the learning rate "
                "(`model.optimizer.learning_rate = ...`), check the data "
                "for NaN/inf, or clip gradients."
            )
        back_to = self._restore_good_state()
        self.rollbacks.append((step, back_to, reason))
        scale = float(self._control.scale.numpy()) * self.lr_factor
        self._control.set_scale(scale)
        # Its reductions go below a `ReduceLROnPlateau`'s `min_lr` floor.
        floor = float(self._control.floor.numpy()) * self.lr_factor
        self._control.floor.assign(floor)
        # The epoch's metrics include the diverged steps.
        self.model.reset_metrics()
        self._seen = (0.0, 0.0)
        if self.verbose:
            print(f"\nDivergenceGuard: step {step}: {reason}; rolled back "
                  f"to step {back_to}, learning rate x{scale:.4g} "
                  f"(rollback {len(self.rollbacks)}/{self.max_retries}).")

    def on_train_end(self, logs=None):
        _lr_control.detach(self, self.model)
