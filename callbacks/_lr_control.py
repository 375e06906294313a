"""In-graph control of an optimizer's learning rate (and momentum) from
callbacks, at zero per-batch cost.

Callbacks that change the learning rate (schedules, plateau reduction,
divergence recovery, the LR finder) `attach` to the model at train begin.
The first one installs a controller on the optimizer: the optimizer's
learning rate becomes

    lr(step) = scale * base(step - offset)

computed inside the traced train step, where `base` is a schedule set by a
callback (or, when none is, whatever the user compiled: a float or a
schedule), `scale` is a variable that callbacks may change between steps
(no retrace on TensorFlow), and `offset` is a variable holding the step
at which the current `fit` started. Callbacks change these variables through
`set_scale`, `set_floor` and `set_offset`, which on JAX also retrace the
step (there the jitted step reads them as constants). The last callback
to `detach` at train end restores the optimizer exactly as it was. The
train function is rebuilt on both occasions, because Keras caches the
traced function across `fit` calls.

Keras only calls `on_train_end` when `fit` returns normally: after Ctrl-C or
an exception the controller stays installed. Each controller therefore
remembers the `params` dict of the `fit` that installed it (Keras hands the
same dict object to every callback of one `fit`), and `attach` replaces a
controller left over from an earlier, interrupted `fit`. `release` removes
one explicitly (the public `callbacks.restore_optimizer`).

Checkpoints written while a controller is installed store the optimizer as
the user compiled it (see `ControlledLearningRate.get_config`), so a model
saved by `ModelCheckpoint` mid-fit reloads like one saved after.

A discriminative optimizer (`recipes.optimizers.DiscriminativeOptimizer`)
keeps per-group copies of its head optimizer whose learning rate is a
multiple of the head's, read in the traced step: controlling the head's
controls them all (`followers` lists them for momentum).

Momentum: `set_momentum_schedule` replaces each of the optimizer's
momentum hyperparameters (`beta_1`, `momentum`, and Muon's `adam_beta_1`
beside its `momentum`) with a float that converts to the in-graph value of
a schedule (`ScheduledHyperparameter`), so one-cycle momentum cycling is
exact per step too.
"""

import keras
from keras import ops

from callbacks import _keras_compat as keras_compat
from callbacks._api import register

_ATTR = "_keras_recipes_lr_control"
# First-moment coefficients, by optimizer: `beta_1` (Adam family, Lion,
# Lamb), `momentum` (SGD, RMSprop, LARS), and Muon's two: `momentum` for
# its orthogonalized step and `adam_beta_1` for the AdamW step it applies
# to non-matrix and excluded variables.
MOMENTUM_ATTRIBUTES = ("beta_1", "momentum", "adam_beta_1")

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule


def _original_value(original, step):
    if isinstance(original, LearningRateSchedule):
        return ops.cast(original(step), "float32")
    if isinstance(original, keras.Variable):
        return ops.cast(original, "float32")
    if callable(original):
        return ops.cast(original(), "float32")
    return ops.cast(original, "float32")


@register
class ControlledLearningRate(LearningRateSchedule):
    """The learning rate installed by `attach` (internal).

    It is serialized as the optimizer's original learning rate, and
    deserializes to it: a model saved while callbacks control its learning
    rate reloads with the optimizer the user compiled.
    """

    def __init__(self, learning_rate=None, control=None):
        self.learning_rate = learning_rate
        self.control = control

    def __call__(self, step):
        return self.rate(step, self.control.scale)

    def rate(self, step, scale):
        """The learning rate at `step` if the scale were `scale`."""
        c = self.control
        base = _original_value(c.original, step)
        if c.schedule is not None:
            base = ops.cast(c.schedule(step - c.offset), "float32")
        scale = ops.cast(scale, "float32")
        floor = ops.cast(c.floor, "float32")
        scaled = scale * base
        # A reduction (scale < 1) never pushes the LR below `floor`, but the
        # schedule itself may go lower.
        return ops.where(scale < 1.0,
                         ops.maximum(scaled, ops.minimum(base, floor)),
                         scaled)

    def get_config(self):
        original = self.control.original
        if isinstance(original, keras.Variable):
            original = float(ops.convert_to_numpy(original))
        elif isinstance(original, LearningRateSchedule):
            original = keras.optimizers.schedules.serialize(original)
        return {"learning_rate": original}

    @classmethod
    def from_config(cls, config):
        lr = config["learning_rate"]
        if isinstance(lr, dict):
            return keras.optimizers.schedules.deserialize(lr)
        return lr


class ScheduledHyperparameter(float):
    """A float hyperparameter whose in-graph value follows a schedule.

    Python code that inspects it (`momentum != 0`, `get_config`, pickling)
    sees the constant `float` it was created from; tensor code
    (`ops.cast(self.beta_1, dtype)`, `1 - self.beta_1`, `m * self.momentum`)
    sees `schedule(iterations - offset)`.
    """

    dtype = "float32"

    def __new__(cls, value, control):
        obj = super().__new__(cls, value)
        obj._control = control
        return obj

    def value_at(self, step=None):
        """The in-graph value at `step` (default: the optimizer's)."""
        c = self._control
        if step is None:
            step = c.optimizer.iterations
        step = ops.cast(step, "float32") - ops.cast(c.offset, "float32")
        return ops.cast(c.momentum_schedule(step), "float32")

    def __tf_tensor__(self, dtype=None, name=None):
        value = self.value_at()
        return value if dtype is None else ops.cast(value, dtype)

    def __jax_array__(self):
        # JAX's conversion (`ops.cast(self.momentum, dtype)` in Keras's
        # SGD) would otherwise read the constant float.
        return self.value_at()

    def __add__(self, other):
        return ops.add(self.value_at(), other)

    def __radd__(self, other):
        return ops.add(other, self.value_at())

    def __sub__(self, other):
        return ops.subtract(self.value_at(), other)

    def __rsub__(self, other):
        return ops.subtract(other, self.value_at())

    def __mul__(self, other):
        return ops.multiply(self.value_at(), other)

    def __rmul__(self, other):
        return ops.multiply(other, self.value_at())

    def __reduce__(self):
        return (float, (float(self),))


def followers(optimizer):
    """The optimizers whose learning rate follows `optimizer`'s.

    A discriminative optimizer (`recipes.optimizers.DiscriminativeOptimizer`)
    lists, as `group_optimizers`, copies of its head optimizer whose
    learning rate is a multiple of the head's: a learning-rate change
    reaches them through the head, a momentum schedule must be set on each.
    Returns the innermost optimizer of each, found anywhere in the chain of
    wrappers.
    """
    found = []
    while optimizer is not None:
        for group in getattr(optimizer, "group_optimizers", ()):
            found.append(innermost(group))
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return found


def innermost(optimizer):
    """The optimizer that really applies the learning rate.

    Wrappers (`keras.optimizers.LossScaleOptimizer`, our `Lookahead`, ...)
    expose the optimizer they wrap as `inner_optimizer` and delegate the
    learning rate to it.
    """
    while getattr(optimizer, "inner_optimizer", None) is not None:
        optimizer = optimizer.inner_optimizer
    return optimizer


class LRControl:
    """The controller installed on one optimizer (internal)."""

    def __init__(self, model, token=None):
        optimizer = innermost(model.optimizer)
        self.model = model
        # The `params` dict of the `fit` that installed this controller.
        self.token = token
        # (step counter at the last scale change, scale before it).
        self._scale_change = None
        self.optimizer = optimizer
        self.followers = followers(model.optimizer)
        self.original = keras_compat.learning_rate_object(optimizer)
        self.users = []
        self.schedule = None
        self.schedule_owner = None
        self.momentum_schedule = None
        # {(optimizer, attribute name): the float it held before}.
        self.momentum_originals = {}
        with variable_scope(model):
            self.scale = keras.Variable(1.0, dtype="float32", trainable=False,
                                        name="lr_scale")
            self.floor = keras.Variable(0.0, dtype="float32", trainable=False,
                                        name="lr_floor")
            self.offset = keras.Variable(0, dtype="int64", trainable=False,
                                         name="lr_step_offset")
        self.controlled = ControlledLearningRate(control=self)

    def install(self):
        # Not through the `learning_rate` setter: it would untrack the LR
        # variable and change the optimizer's variable list (and so the
        # layout of checkpoints written during this fit).
        keras_compat.set_learning_rate_object(self.optimizer, self.controlled)
        keras_compat.set_untracked(self.optimizer, _ATTR, self)
        _retrace(self.model)

    def uninstall(self):
        if (self.schedule is None
                and isinstance(self.original, keras.Variable)):
            # Like Keras's ReduceLROnPlateau, a reduction of a plain float
            # LR persists after fit.
            current = float(ops.convert_to_numpy(self.controlled(0)))
            self.original.assign(current)
        keras_compat.set_learning_rate_object(self.optimizer, self.original)
        for (optimizer, attribute), value in self.momentum_originals.items():
            keras_compat.set_untracked(optimizer, attribute, value)
        keras_compat.delete_untracked(self.optimizer, _ATTR)
        _retrace(self.model)

    def set_scale(self, value):
        """Set the scale from the next step on, remembering the old one."""
        step = int(ops.convert_to_numpy(self.optimizer.iterations))
        if self._scale_change is None or self._scale_change[0] != step:
            self._scale_change = (step, float(ops.convert_to_numpy(
                self.scale)))
        self._assign(self.scale, value)

    def set_floor(self, value):
        """Set the lowest learning rate a reduction may reach."""
        self._assign(self.floor, value)

    def set_offset(self, step):
        """Make `step` the schedule's step 0."""
        self._assign(self.offset, step)

    def restore(self, values):
        """Assign saved `[scale, floor, offset]` values (a checkpoint's)."""
        for variable, value in zip((self.scale, self.floor, self.offset),
                                   values, strict=True):
            self._assign(variable, value)

    def _assign(self, variable, value):
        old = ops.convert_to_numpy(variable)
        variable.assign(value)
        # The JAX trainer passes only the model's and the optimizer's
        # variables through its jitted step: these control variables are
        # read at trace time, as constants. A change must retrace the step
        # to reach it (one compilation, at most once per change).
        if (keras.backend.backend() == "jax"
                and old != ops.convert_to_numpy(variable)):
            _retrace(self.model)

    def scale_at(self, step):
        """The scale that step `step` used (or will use)."""
        step = int(ops.convert_to_numpy(step))
        if self._scale_change is not None and step < self._scale_change[0]:
            return self._scale_change[1]
        return float(ops.convert_to_numpy(self.scale))

    def set_schedule(self, owner, schedule):
        """Make `schedule` the base learning rate for this fit."""
        if self.schedule_owner is not None and self.schedule_owner is not owner:
            raise ValueError(
                "Only one learning-rate schedule callback can be used in a "
                f"fit. Received: {type(self.schedule_owner).__name__} and "
                f"{type(owner).__name__}"
            )
        self.schedule = schedule
        self.schedule_owner = owner

    def set_momentum_schedule(self, schedule):
        """Drive every non-zero float hyperparameter of
        `MOMENTUM_ATTRIBUTES` by `schedule`; returns their names (empty
        when the optimizer has none)."""
        self.momentum_schedule = schedule
        for optimizer in (self.optimizer, *self.followers):
            for attribute in MOMENTUM_ATTRIBUTES:
                value = getattr(optimizer, attribute, None)
                key = (optimizer, attribute)
                if (isinstance(value, float) and value > 0
                        and key not in self.momentum_originals):
                    self.momentum_originals[key] = value
                    keras_compat.set_untracked(
                        optimizer, attribute,
                        ScheduledHyperparameter(value, self))
        if self.momentum_originals:
            _retrace(self.model)
        return tuple(dict.fromkeys(
            attribute for optimizer, attribute in self.momentum_originals
            if optimizer is self.optimizer))

    def set_offset_to_current_step(self, steps_back=0):
        """Step 0 of the schedule = the current step minus `steps_back`."""
        step = int(ops.convert_to_numpy(self.optimizer.iterations))
        self.set_offset(step - steps_back)


def variable_scope(model):
    """Where callbacks create their variables for `model`."""
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is not None:
        return strategy.scope()
    return keras.name_scope("keras_recipes")


def _retrace(model):
    # Keras caches the traced train function across `fit` calls; a rebuilt
    # function is traced lazily on its first call (once per fit).
    keras_compat.rebuild_train_function(model)


def check_model(callback, model):
    if model is None or getattr(model, "optimizer", None) is None:
        raise ValueError(
            f"{type(callback).__name__} needs a compiled model with an "
            "optimizer. Call `model.compile(optimizer=...)` before `fit`."
        )
    if hasattr(model.optimizer, "optimizers"):
        raise ValueError(
            f"{type(callback).__name__} does not support "
            "`keras.optimizers.MultiOptimizer` (each of its optimizers has "
            "its own learning rate); for learning rates that are multiples "
            "of one, use `recipes.discriminative_optimizer`. "
            f"Received: optimizer={model.optimizer!r}"
        )


def attach(callback, model):
    """Attach `callback` to the model's LR controller, installing it first.

    Returns:
        The `LRControl`; its `scale` variable multiplies the learning rate
        from the next step on.
    """
    check_model(callback, model)
    token = getattr(callback, "params", None)
    control = get(model)
    if control is not None and control.token is not token:
        # Left over from a `fit` that raised (no `on_train_end`).
        control.uninstall()
        control = None
    if control is None:
        control = LRControl(model, token)
        control.install()
    if callback not in control.users:
        control.users.append(callback)
    return control


def detach(callback, model):
    """Detach `callback`; the last one restores the optimizer."""
    control = get(model)
    if control is None or callback not in control.users:
        return
    control.users.remove(callback)
    if not control.users:
        control.uninstall()


def release(model):
    """Remove the model's controller, if any, restoring the optimizer.

    Returns:
        Whether a controller was removed.
    """
    control = get(model)
    if control is None:
        return False
    control.uninstall()
    return True


def get(model):
    """The controller installed on the model's optimizer, or `None`."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    return getattr(innermost(optimizer), _ATTR, None)


def current_learning_rate(optimizer, step=None):
    """The learning rate `optimizer` uses at `step` (default: next step)."""
    optimizer = innermost(optimizer)
    lr = keras_compat.learning_rate_object(optimizer)
    if step is None:
        step = optimizer.iterations
    if isinstance(lr, ControlledLearningRate):
        # A scale changed after `step` ran does not apply to it.
        return float(ops.convert_to_numpy(
            lr.rate(step, lr.control.scale_at(step))))
    if isinstance(lr, LearningRateSchedule):
        return float(ops.convert_to_numpy(lr(step)))
    return float(ops.convert_to_numpy(_original_value(lr, step)))


def last_step(optimizer):
    """The index of the last step the optimizer took (0 before any)."""
    step = int(ops.convert_to_numpy(innermost(optimizer).iterations))
    return max(step - 1, 0)


def current_momentum(optimizer, step=None):
    """`{name: value}` of the optimizer's momentum hyperparameters at
    `step` (default: next step); empty when it has none."""
    optimizer = innermost(optimizer)
    values = {}
    for attribute in MOMENTUM_ATTRIBUTES:
        value = getattr(optimizer, attribute, None)
        if isinstance(value, ScheduledHyperparameter):
            values[attribute] = float(
                ops.convert_to_numpy(value.value_at(step)))
        elif isinstance(value, float):
            values[attribute] = value
    return values
