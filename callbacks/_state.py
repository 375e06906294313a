"""Training state as NumPy arrays: read, check and write back (internal).

Shared by `Checkpointing` (state on disk) and `DivergenceGuard` (state in
memory). "State" is everything a step changes: the model's variables
(weights, normalization statistics, dropout seed states), the optimizer's
(step counter, learning rate, slots) and, when an LR controller is
installed, its scale/floor/offset (`callbacks._lr_control`).
"""

import numpy as np

from callbacks import _lr_control

GROUPS = ("model", "optimizer", "lr_control")


def ensure_optimizer_built(model):
    """Build the optimizer's slots now, so its variable list is final.

    Keras builds the optimizer at the first traced step; state captured or
    restored before that would miss the slots.
    """
    optimizer = model.optimizer
    if optimizer.built:
        return
    # Slots must be created where the model's variables live.
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None:
        optimizer.build(model.trainable_variables)
        return
    with strategy.scope():
        optimizer.build(model.trainable_variables)


def variables(model):
    """The state variables of `model`, by group."""
    control = _lr_control.get(model)
    return {
        "model": list(model.variables),
        "optimizer": list(model.optimizer.variables),
        "lr_control": (
            [control.scale, control.floor, control.offset] if control else []
        ),
    }


def read(model):
    """The state of `model` as NumPy arrays, by group."""
    return {group: [np.array(v.numpy()) for v in vs]
            for group, vs in variables(model).items()}


def non_finite(model, arrays):
    """Paths of model/optimizer variables holding NaN or infinity."""
    current = variables(model)
    return [
        v.path
        for group in ("model", "optimizer")
        for v, a in zip(current[group], arrays[group], strict=True)
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a))
    ]


def mismatch(model, arrays):
    """Name of the first group whose shapes differ from `model`'s, or None.

    The LR-control group is optional: it exists only while some callback
    controls the learning rate, so its absence on either side is fine.
    """
    current = variables(model)
    for group in GROUPS:
        want = [tuple(v.shape) for v in current[group]]
        have = [tuple(a.shape) for a in arrays.get(group, [])]
        if group == "lr_control" and not (want and have):
            continue
        if want != have:
            return group
    return None


def write(model, arrays, groups=GROUPS):
    """Assign `arrays` (as returned by `read`) back to `model`'s state."""
    current = variables(model)
    for group in groups:
        values = arrays.get(group, [])
        if group == "lr_control":
            if values and current[group]:
                # Through the controller: on JAX a change must rebuild the
                # train step, which holds these values as constants.
                _lr_control.get(model).restore(values)
            continue
        for variable, value in zip(current[group], values, strict=True):
            variable.assign(value)
