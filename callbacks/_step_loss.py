"""The loss of every training step, recorded in-graph (internal).

Keras exposes a training loss only as the running mean of the `loss`
tracker (a `keras.metrics.Mean` whose `total` and `count` are float32).
Differences of those sums do not give a step's loss back: after one step
with a loss of 5e29 the total absorbs every later loss of order 1 (the
difference reads 0.0 for the rest of the epoch), and with
`steps_per_execution=k` a callback sees one mean per `k` steps.

`StepLossRecorder` records each step's own loss inside the traced train
step, into a ring buffer of `steps_per_execution` float32 values, by
wrapping the tracker's `update_state` on the tracker instance.

It relies on Keras internals, all reached through `callbacks._keras_compat`
(touch points `loss_tracker_update_state`, `metric_variables`,
`jax_state_sync`). Missing public API: a hook that sees each step's loss
inside the train step. What it relies on (`backend/*/trainer.py`): the
train step calls `update_state(loss)` on the model's metric named `"loss"`
(`keras_compat.LOSS_TRACKER_NAME`) once per step, with the step's scalar
loss. The canary tests `tests/test_keras_compat.py` and
`tests/callbacks/test_step_loss.py` fail loudly if a Keras release changes
that. On TensorFlow and PyTorch the buffer variables live outside
the model's state, which their trainers allow. The JAX trainer's stateless
step carries only the model's, the optimizer's and the metrics' variables
(it would drop updates of any other), so there the buffer is made part of
the tracker's own variables (`Metric.add_variable`) for the recorder's
lifetime; the step then returns it with the metrics, and `read` first
attaches the step's state to the model, as `Callback.model` does on JAX.
Two more internals, JAX only: `uninstall` removes the buffer from the
tracker's variable list (`Metric._variables`: Keras has no public way to
remove a metric variable), and `read` calls the JAX trainer's
`jax_state_sync`.
"""

import keras
import numpy as np
from keras import ops

from callbacks import _keras_compat as keras_compat

_ATTR = "_keras_recipes_step_loss"


def loss_tracker(model):
    """The model's `loss` tracker (a `Mean` metric), or `None`."""
    for metric in model.metrics:
        if metric.name != keras_compat.LOSS_TRACKER_NAME:
            continue
        left_over = metric.__dict__.get(_ATTR)
        if left_over is not None:
            # From a `fit` that raised before its `on_train_end`.
            left_over.uninstall()
        if len(metric.variables) == 2:
            return metric
    return None


def _in_metric_state():
    # See the module docstring: only the JAX trainer needs the buffer to be
    # metric state.
    return keras.backend.backend() == "jax"


class StepLossRecorder:
    """Records every training step's loss of `model` (internal).

    Args:
        model: A compiled model.
        scope: A context manager to create the buffer's variables in (the
            model's distribution strategy scope).
    """

    def __init__(self, model, scope):
        self.model = model
        self.tracker = loss_tracker(model)
        self.capacity = max(1, int(getattr(model, "steps_per_execution", 1)
                                   or 1))
        self.losses = self.count = None
        if self.tracker is not None and _in_metric_state():
            self.losses = self.tracker.add_variable(
                (self.capacity,), "zeros", dtype="float32",
                name="step_losses")
            self.count = self.tracker.add_variable(
                (), "zeros", dtype="int32", name="step_loss_count")
        elif self.tracker is not None:
            with scope:
                self.losses = keras.Variable(
                    np.zeros(self.capacity, "float32"), trainable=False,
                    name="step_losses")
                self.count = keras.Variable(
                    0, dtype="int64", trainable=False,
                    name="step_loss_count")
        self._read = 0

    def install(self):
        """Wrap the tracker; returns whether there was one to wrap."""
        tracker = self.tracker
        if tracker is None:
            return False
        original = tracker.update_state
        capacity = self.capacity

        def update_state(values, sample_weight=None):
            result = original(values, sample_weight=sample_weight)
            loss = ops.mean(ops.cast(values, "float32"))
            index = ops.mod(self.count, capacity)
            self.losses.assign(ops.scatter_update(
                self.losses, ops.reshape(index, (1, 1)),
                ops.reshape(loss, (1,))))
            self.count.assign_add(1)
            return result

        tracker.update_state = update_state
        tracker.__dict__[_ATTR] = self
        keras_compat.rebuild_train_function(self.model)
        self.skip()
        return True

    def uninstall(self):
        tracker = self.tracker
        if tracker is None or tracker.__dict__.get(_ATTR) is not self:
            return
        del tracker.__dict__["update_state"]
        del tracker.__dict__[_ATTR]
        if _in_metric_state():
            # Internal (see the module docstring): the tracker gets back its
            # own two variables, so the model's metric state has its
            # original layout again.
            keras_compat.remove_metric_variables(
                tracker, (self.losses, self.count))
        keras_compat.rebuild_train_function(self.model)

    def _sync(self):
        if _in_metric_state():
            # Internal (see the module docstring): mid-epoch, the JAX
            # trainer keeps the step's state apart from the model's
            # variables until something attaches it.
            keras_compat.jax_state_sync(self.model)

    def skip(self):
        """Forget the losses recorded so far (validation steps, say)."""
        self._sync()
        self._read = int(ops.convert_to_numpy(self.count))

    def read(self):
        """The losses of the steps since the last `read` or `skip`, oldest
        first (at most `steps_per_execution` of them), as floats."""
        self._sync()
        count = int(ops.convert_to_numpy(self.count))
        new = min(count - self._read, self.capacity)
        self._read = count
        if new <= 0:
            return []
        values = ops.convert_to_numpy(self.losses)
        return [float(values[i % self.capacity])
                for i in range(count - new, count)]
