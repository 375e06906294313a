"""Every touch of Keras internals, in one module (internal).

The library uses Keras's public API everywhere else. Where that API has no
way to do something the library needs, the internal it relies on is
reached here and only here, one small function (or constant) per touch
point, each with a comment saying what it does, the Keras versions it was
checked on and the public API that is missing. `recipes` reaches it as
`callbacks._internal.keras_compat`.

Every touch point has a canary test in `tests/test_keras_compat.py` that
exercises the internal directly on a tiny model or optimizer and fails
with a message naming the touch point when a Keras release changes it.
`setup.cfg` pins the Keras range these were checked on (`KERAS_CHECKED`).

Not touch points: Keras's documented extension points (`Optimizer.build`,
`update_step`, `add_optimizer_variables`, `Callback` hooks,
`Model.train_step`, `keras.StatelessScope`, ...), used as documented.
"""

import keras

# The Keras releases every touch point below was checked on, TensorFlow and
# JAX backends (the lowest and highest of the range `setup.cfg` allows).
KERAS_CHECKED = ("3.13.1", "3.15.1")


def touch_point_error(name, detail):
    """The message of a canary test whose touch point no longer holds."""
    return (f"Keras compat touch point `{name}`: Keras "
            f"{keras.__version__} {detail}; see callbacks/_keras_compat.py "
            f"(checked on Keras {', '.join(KERAS_CHECKED)}).")


# --------------------------------------------------------------- optimizers

def learning_rate_object(optimizer):
    """What drives `optimizer`'s learning rate: its LR variable (float
    learning rates), a `LearningRateSchedule`, or a callable.

    Touch point `optimizer_learning_rate_object`: `optimizer._learning_rate`
    (Keras 3.13.1, 3.15.1). Missing public API: `optimizer.learning_rate`
    returns the evaluated rate, never the schedule or variable behind it.
    """
    return optimizer._learning_rate


def set_learning_rate_object(optimizer, value):
    """Make `value` (a schedule, the LR variable) drive the learning rate.

    Touch point `optimizer_learning_rate_object`: assigns
    `optimizer._learning_rate`, bypassing the `learning_rate` setter
    (Keras 3.13.1, 3.15.1). Missing public API: the setter refuses a float
    over a schedule, and setting a schedule over a float untracks the LR
    variable, which changes the optimizer's variable list and so the
    layout of the checkpoints written during the `fit`.
    """
    set_untracked(optimizer, "_learning_rate", value)


def set_untracked(obj, name, value):
    """Set attribute `name` of a Keras object without its tracker.

    Touch point `untracked_attribute`: `object.__setattr__` past
    `Optimizer.__setattr__`/`Layer.__setattr__`, whose tracker would add a
    variable to the object's lists (Keras 3.13.1, 3.15.1). Used for the
    learning-rate object, scheduled momentum hyperparameters (`beta_1`,
    `momentum`: Keras's `update_step`s read them inside the traced step)
    and the library's own markers. Missing public API: replacing a
    hyperparameter of a built optimizer.
    """
    object.__setattr__(obj, name, value)


def delete_untracked(obj, name):
    """Delete attribute `name` set by `set_untracked`."""
    object.__delattr__(obj, name)


def optimizer_built_variables(optimizer):
    """The model variables `optimizer` was built for (its slots' order).

    Touch point `optimizer_built_variables`: `optimizer._trainable_variables`
    (Keras 3.13.1, 3.15.1). Missing public API: a list of the variables an
    optimizer was built for (it refuses others with "Unknown variable").
    """
    return optimizer._trainable_variables


def optimizer_own_variables(optimizer):
    """The variables `optimizer` itself created (step counter, LR, slots).

    Touch point `optimizer_own_variables`: `optimizer._variables` (Keras
    3.13.1, 3.15.1). Missing public API: a wrapper that overrides
    `variables` to add its inner optimizer's cannot reach the base list.
    """
    return optimizer._variables


def variable_index(optimizer, variable):
    """Index of `variable` in the slot lists of `optimizer`.

    Touch point `optimizer_variable_index`:
    `optimizer._get_variable_index(variable)`, what Keras's own optimizers
    call in `update_step` (Keras 3.13.1, 3.15.1). Missing public API: a
    slot lookup by variable for custom optimizers.
    """
    return optimizer._get_variable_index(variable)


def uses_weight_decay(optimizer, variable):
    """Whether `optimizer` decays `variable` (not excluded).

    Touch point `optimizer_weight_decay_exclusions`:
    `optimizer._use_weight_decay(variable)` (Keras 3.13.1, 3.15.1).
    Missing public API: a query of what `exclude_from_weight_decay` set.
    """
    return optimizer._use_weight_decay(variable)


# The attributes `Optimizer.exclude_from_weight_decay` writes.
_WEIGHT_DECAY_EXCLUSIONS = ("_exclude_from_weight_decay",
                            "_exclude_from_weight_decay_pattern")


def copy_weight_decay_exclusions(source, target):
    """Give `target` the weight-decay exclusions set on `source`.

    Touch point `optimizer_weight_decay_exclusions`: copies the two
    attributes `exclude_from_weight_decay` writes (Keras 3.13.1, 3.15.1).
    Missing public API: a getter for the exclusions (the variable keys and
    the compiled name pattern); an optimizer's config does not hold them.
    """
    for attribute in _WEIGHT_DECAY_EXCLUSIONS:
        if hasattr(source, attribute):
            set_untracked(target, attribute, getattr(source, attribute))


def ema_averages(optimizer):
    """The moving averages of a built optimizer with `use_ema=True`, in
    the order of `optimizer_built_variables`.

    Touch point `optimizer_ema_averages`:
    `optimizer._model_variables_moving_average` (Keras 3.13.1, 3.15.1;
    AttributeError without EMA). Missing public API: the EMA weights of an
    optimizer (`keras.callbacks.SwapEMAWeights` reads this list too).
    """
    return optimizer._model_variables_moving_average


def delegate_ema_averages(cls):
    """Class decorator: a wrapper optimizer shows its `inner_optimizer`'s
    moving averages where Keras looks for them.

    Touch point `optimizer_ema_averages`: `keras.callbacks.SwapEMAWeights`
    swaps the model's weights with `optimizer._model_variables_moving_average`
    of the optimizer it is given (Keras 3.13.1, 3.15.1), the wrapper, while
    the averages are the wrapped optimizer's. Missing public API: an
    optimizer method `SwapEMAWeights` calls for the averages.
    """
    cls._model_variables_moving_average = property(
        lambda self: ema_averages(self.inner_optimizer),
        doc="The wrapped optimizer's moving averages (EMA).")
    return cls


# ---------------------------------------------------------- training loop

def set_initial_epoch(model, epoch):
    """Make the `fit` being set up start its epoch loop at `epoch` (call
    in `on_train_begin`; `None` clears it).

    Touch point `model_initial_epoch`: `model._initial_epoch`, the hook
    `keras.callbacks.BackupAndRestore` uses; each backend's `fit` reads it
    after `on_train_begin` (Keras 3.13.1, 3.15.1). Missing public API: a
    callback setting the epoch `fit` starts at.
    """
    model._initial_epoch = epoch


def train_function(model):
    """The model's cached traced train function, or `None` before one.

    Touch point `model_train_function`: `model.train_function`, undocumented
    (Keras 3.13.1, 3.15.1). Missing public API: whether a step was traced.
    """
    return getattr(model, "train_function", None)


def rebuild_train_function(model):
    """Drop the cached traced train step; the next step retraces.

    Touch point `model_train_function`: `model.make_train_function(force=True)`,
    undocumented (Keras 3.13.1, 3.15.1). `fit` keeps the traced function
    across calls, so a change to what the step reads at trace time (the
    learning-rate object, constraints, trainable flags, a wrapped metric)
    is ignored until it is rebuilt. Missing public API: invalidating the
    traced step.
    """
    model.make_train_function(force=True)


def skip_batches(model, count):
    """Make the next calls of the train function consume `count` batches
    of the epoch without training on them.

    Touch point `model_train_function`: replaces `model.train_function`
    until `count` batches are drawn, then puts it back. It relies on each
    backend's calling convention (Keras 3.13.1, 3.15.1): TensorFlow calls
    it with the epoch's iterator and takes logs back; JAX with
    `(state, iterator)` and takes `(logs, state)` back; PyTorch with the
    batches its epoch iterator already drew. Each call stands for
    `steps_per_execution` batches. Missing public API: resuming `fit`
    mid-epoch (`BackupAndRestore` replays the partial epoch instead).
    """
    real = model.train_function
    per_call = int(getattr(model, "steps_per_execution", 1) or 1)
    remaining = [count]
    backend = keras.backend.backend()

    def skip(*args):
        if backend != "torch":
            iterator = args[-1]
            for _ in range(min(per_call, remaining[0])):
                next(iterator)
        remaining[0] -= per_call
        if remaining[0] <= 0:
            model.train_function = real
        # No step ran, so there is no loss to report for these batches.
        return ({}, args[0]) if backend == "jax" else {}

    model.train_function = skip


# Iterators the TensorFlow backend's `fit` makes of a `tf.data.Dataset` of
# known length per epoch: the epoch's own, and one at its end, which the
# next epoch replaces unused (the JAX backend's differ; the recipes, the
# only users, train on TensorFlow). Touch point `iterators_per_epoch`
# (`EpochIterator`, Keras 3.13.1, 3.15.1). Missing public API: control over
# (or a statement of) how often `fit` iterates a dataset, which moves a
# reshuffling dataset's order.
ITERATORS_PER_EPOCH = 2


# The name of the model's loss tracker (a `keras.metrics.Mean` among
# `model.metrics`), whose `update_state(loss)` every backend's train step
# calls once per step with the step's scalar loss. Touch point
# `loss_tracker_update_state` (`backend/*/trainer.py`, Keras 3.13.1,
# 3.15.1): the step-loss recorder wraps that `update_state` on the tracker
# instance. Missing public API: a hook that sees each step's loss inside
# the traced train step.
LOSS_TRACKER_NAME = "loss"


def jax_state_sync(model):
    """Attach the JAX trainer's pending step state to the model variables.

    Touch point `jax_state_sync`: `model.jax_state_sync()` of the JAX
    trainer, undocumented (Keras 3.13.1, 3.15.1); mid-epoch the trainer
    keeps the step's state apart from the variables until something
    (`Callback.model`) attaches it. Missing public API: reading a metric's
    current value from a callback mid-epoch on JAX.
    """
    model.jax_state_sync()


def jax_loss_and_updates(model):
    """The JAX trainer's stateless loss function of `model`.

    Touch point `jax_compute_loss_and_updates`: the JAX trainer's
    `compute_loss_and_updates(trainable, non_trainable, metrics, x, y,
    sample_weight, training=..., optimizer_variables=...)`, which returns
    `(loss, (unscaled loss, y_pred, non_trainable, metrics))`, undocumented
    (Keras 3.13.1, 3.15.1). Missing public API: the stateless loss a custom
    JAX `train_step` differentiates.
    """
    return model.compute_loss_and_updates


def remove_metric_variables(metric, variables):
    """Remove `variables` (added by `metric.add_variable`) from `metric`.

    Touch point `metric_variables`: filters `metric._variables` in place
    (Keras 3.13.1, 3.15.1). Missing public API: removing a metric variable.
    """
    metric._variables[:] = [
        v for v in metric._variables
        if not any(v is other for other in variables)]


# ------------------------------------------------------------- monitoring

def settle_monitor_mode(callback):
    """Settle the comparison of a Keras monitoring callback
    (`ReduceLROnPlateau`, `EarlyStopping`, ...) on first use, as Keras's own
    `on_epoch_end` does (`mode="auto"` reads the model's metrics; raises
    ValueError when it cannot tell).

    Touch point `monitor_improvement`: `MonitorCallback.monitor_op` and
    `MonitorCallback._set_monitor_op()` (Keras 3.13.1, 3.15.1). Missing
    public API: the comparison Keras's monitoring callbacks use.
    """
    if callback.monitor_op is None:
        callback._set_monitor_op()


def monitor_improved(callback, value):
    """Whether `value` improves on `callback.best` (any value improves on
    `None`), by at least `min_delta`, for a settled monitoring callback.

    Touch point `monitor_improvement`: `MonitorCallback._is_improvement`
    (Keras 3.13.1, 3.15.1). Missing public API: as `settle_monitor_mode`.
    """
    return callback._is_improvement(value, callback.best)
