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

from callbacks import _lr_control, _state, _step_loss
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

    After every execution of the train function the guard reads the loss
    of each step it ran (recorded in-graph: a step's own loss, not a
    difference of the tracker's running sums, which a huge loss would
    swamp), so with `steps_per_execution=k` it judges `k` losses per
    check. A loss diverges when it is NaN/inf, or when it exceeds
    `spike_factor` times the median of the last `window` accepted losses.
    Every `snapshot_every` steps it also checks that the weights and
    optimizer slots are finite: a NaN can corrupt weights while the loss
    stays finite (measured: a NaN image in an MNIST batch turned first-layer
    weights to NaN, yet ReLU mapped the NaNs to 0 and the loss stayed
    normal). On a divergence the guard:

    1. restores the model's and optimizer's variables (weights, statistics,
       optimizer slots and step counter) from the last state that was all
       finite and whose own loss (the loss of the step that trained from
       it) was accepted: a snapshot kept in memory, or, when `directory` is
       given, the newest such checkpoint of a `Checkpointing` directory;
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
    non-finite state, and the guard never rolls back to a checkpoint
    whose state's loss it has not accepted, nor to one of the timeline an
    earlier rollback abandoned.

    Checking forces a host sync per check (the loss must be read), which
    also stops Keras dispatching batch-end callbacks asynchronously: on a
    small model that costs a noticeable fraction of step time (see the
    README). With `steps_per_execution=k`, the guard checks every `k` steps.

    Args:
        spike_factor: A loss above this multiple of the running median is
            an explosion; `None` checks only for NaN/inf. Defaults to `10.0`.
        window: How many recent losses the running median covers.
            Defaults to `50`.
        min_history: Steps whose losses are needed before spikes are
            judged (early losses fall fast); counted in steps, whatever
            `steps_per_execution` is. Defaults to `10`.
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

    def _take_snapshot(self, step):
        """Check that the state is finite and (in memory mode) keep it as a
        candidate rollback point; say whether it was finite."""
        arrays = _state.read(self.model)
        if _state.non_finite(self.model, arrays):
            return False
        if self.directory is None:
            self._candidate = (arrays, step)
        return True

    def _accept_through(self, step):
        """The losses computed from the states up to `step` are accepted.

        A state is a safe rollback point only once the loss of the step
        that trained from it has been accepted: the state right after a
        bad update looks finite, and only the next step's loss shows it.
        """
        self._accepted = step
        if self._candidate is not None and self._candidate[1] <= step:
            self._snapshot, self._snapshot_step = self._candidate
            self._candidate = None

    def _rollback_target(self):
        if self.directory is not None:
            found = latest_checkpoint(self.directory, accept=self._usable)
            if found is not None and _state.mismatch(self.model,
                                                     found[1]) is None:
                self._oldest_path = found[0]["path"]
                return found[1], found[0]["step"]
        return self._snapshot, self._snapshot_step

    def _usable(self, meta):
        # Not a checkpoint of a timeline a rollback abandoned (saved before
        # the checkpoint the last rollback restored), nor one whose state's
        # loss is unknown yet.
        newer = (self._oldest_path is None
                 or os.path.basename(meta["path"])
                 >= os.path.basename(self._oldest_path))
        return newer and meta["step"] <= self._accepted

    def _restore_good_state(self):
        arrays, step = self._rollback_target()
        _state.write(self.model, arrays, ("model", "optimizer"))
        self._candidate = None
        self._accepted = step
        self._checked_step = step
        return step

    # ------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        self._control = _lr_control.attach(self, self.model)
        _state.ensure_optimizer_built(self.model)
        self._recorder = _step_loss.StepLossRecorder(
            self.model, _lr_control.variable_scope(self.model))
        if not self._recorder.install():
            self._recorder = None
        self.rollbacks = []
        self._history = collections.deque(maxlen=self.window)
        self._snapshot = self._candidate = None
        self._oldest_path = None

    def on_epoch_begin(self, epoch, logs=None):
        # Steps trained since this epoch's last rollback (None: none yet).
        self._since_rollback = None
        if self._recorder is not None:
            # Validation steps update the same tracker.
            self._recorder.skip()
        if self._snapshot is not None:
            return
        # The first snapshot is taken here rather than at train begin, so
        # that a Checkpointing callback listed after the guard has already
        # restored the resumed state.
        step = int(self.model.optimizer.iterations.numpy())
        self._checked_step = self._accepted = step
        if not self._take_snapshot(step):
            self._release()
            raise ValueError(
                "DivergenceGuard: the model's state is already non-finite "
                "at the start of training."
            )
        self._accept_through(step)

    def _step_losses(self, logs):
        if self._recorder is not None:
            losses = self._recorder.read()
            if losses:
                return losses
        # A custom `train_step` that does not update the loss tracker: the
        # logged loss (a running mean) is all there is.
        loss = (logs or {}).get("loss")
        return [] if loss is None else [float(loss)]

    def on_train_batch_end(self, batch, logs=None):
        losses = self._step_losses(logs)
        if not losses:
            return
        step = int(self.model.optimizer.iterations.numpy())
        for loss in losses:
            reason = is_divergent(loss, self._history, self.spike_factor,
                                  self.min_history)
            if reason is not None:
                self._recover(step, reason)
                return
            self._history.append(loss)
        # Step `step` trained from the state at `step - 1`.
        self._accept_through(step - 1)
        if self._since_rollback is not None:
            self._since_rollback += len(losses)
        if step - self._checked_step >= self.snapshot_every:
            self._checked_step = step
            if not self._take_snapshot(step):
                self._recover(step, "non-finite weights")

    def _release(self):
        # Keras skips `on_train_end` when `fit` raises: give the optimizer
        # back its own (settable) learning rate and the tracker its own
        # `update_state` now.
        _lr_control.release(self.model)
        if self._recorder is not None:
            self._recorder.uninstall()

    def _recover(self, step, reason):
        if len(self.rollbacks) >= self.max_retries:
            back_to = self._restore_good_state()
            self._release()
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
        self._control.set_floor(floor)
        # The epoch's metrics include the diverged steps.
        self.model.reset_metrics()
        self._since_rollback = 0
        if self.verbose:
            print(f"\nDivergenceGuard: step {step}: {reason}; rolled back "
                  f"to step {back_to}, learning rate x{scale:.4g} "
                  f"(rollback {len(self.rollbacks)}/{self.max_retries}).")

    def on_epoch_end(self, epoch, logs=None):
        if self._since_rollback == 0 and logs is not None:
            # No step trained after the rollback: the reset metrics would
            # log a loss of 0; the epoch has no training metrics.
            for key in logs:
                if not key.startswith("val_"):
                    logs[key] = float("nan")

    def on_train_end(self, logs=None):
        if self._recorder is not None:
            self._recorder.uninstall()
        _lr_control.detach(self, self.model)
