"""Regularize every kernel of an existing model, leaving biases and norms.

Three ways, all applied in place to a built model, all restricted to the
kernels (`kernel`, `depthwise_kernel`, `pointwise_kernel`,
`recurrent_kernel`) of every layer, nested ones included; biases,
normalization parameters and embeddings are never touched. The first two
set the kernels' regularizer or constraint on their layers, so a saved model
keeps it; they refuse (with the list) kernels that a layer creates from its
own arguments, such as `MultiHeadAttention`'s projections or the `Dense` of
a custom layer, which would lose it on reload: give those layers
`kernel_regularizer` or `kernel_constraint` directly.

* `add_weight_decay(model, rate)`: decoupled weight decay (Loshchilov &
  Hutter, 2019) with any optimizer, as a registered kernel constraint, so a
  saved model keeps it.
* `regularize_kernels(model, regularizer)`: a classic L1/L2 penalty added to
  the loss (coupled to the gradient, so weaker with adaptive optimizers).
* `decay_kernels_only(optimizer, model)`: for optimizers with a built-in
  `weight_decay` (AdamW, SGD(weight_decay=...)...), excludes every
  non-kernel variable from it.
"""

import keras

from callbacks._internal import check_number, keras_compat, register
from recipes.optimizers._wrapper import innermost_optimizer
from recipes.optimizers.lars import LARS

# Variable attribute -> (regularizer attribute, constraint attribute) of the
# Keras layers that own it; the attributes are what `get_config` saves.
_KERNELS = {
    "kernel": ("kernel_regularizer", "kernel_constraint"),
    "depthwise_kernel": ("depthwise_regularizer", "depthwise_constraint"),
    "pointwise_kernel": ("pointwise_regularizer", "pointwise_constraint"),
    "recurrent_kernel": ("recurrent_regularizer", "recurrent_constraint"),
}
# Attributes through which layers hold sub-layers (models, wrappers, RNNs).
_CHILDREN = ("layers", "layer", "forward_layer", "backward_layer", "cell",
             "cells")


def _walk(layer, seen):
    if id(layer) in seen:
        return
    seen.add(id(layer))
    yield layer
    for attr in _CHILDREN:
        child = getattr(layer, attr, None)
        children = child if isinstance(child, (list, tuple)) else [child]
        for sub in children:
            if isinstance(sub, keras.layers.Layer):
                yield from _walk(sub, seen)


def _check_model(model):
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            f"Argument `model` must be a keras.Model. Received: model={model!r}"
        )
    if not model.built:
        raise ValueError(
            "Argument `model` must be built (call it on data or give it an "
            f"Input) so its kernels exist. Received: model={model.name!r}"
        )


def _kernel_variables(model):
    """Every kernel variable of `model`, however deeply its layer is nested."""
    found, seen = [], set()
    for variable in model.weights:
        if variable.name in _KERNELS and id(variable) not in seen:
            seen.add(id(variable))
            found.append(variable)
    return found


def _kernels(model):
    """Yields `(layer, variable, regularizer_attr, constraint_attr)`.

    Only kernels whose layer is saved with its own configuration (layers of
    models, wrappers and RNN cells) can be given a regularizer or
    constraint that `model.save` keeps; a kernel a layer creates from its
    own arguments (`MultiHeadAttention`'s projections, the `Dense` inside a
    custom layer) would lose it on reload, so it is refused.

    Raises:
        ValueError: If the model has such a kernel (all are listed).
    """
    _check_model(model)
    found = []
    for layer in _walk(model, set()):
        for name, (reg_attr, con_attr) in _KERNELS.items():
            variable = getattr(layer, name, None)
            if isinstance(variable, keras.Variable) and hasattr(
                    layer, reg_attr):
                found.append((layer, variable, reg_attr, con_attr))
    covered = {id(variable) for _, variable, _, _ in found}
    missed = [v.path for v in _kernel_variables(model)
              if id(v) not in covered]
    if missed:
        raise ValueError(
            f"Model {model.name!r} has kernels created inside other layers "
            "(e.g. MultiHeadAttention or a custom layer), which would lose a "
            "regularizer or constraint set here when the model is saved: "
            f"{missed}. Pass `kernel_regularizer`/`kernel_constraint` to "
            "the layers that create them instead. Nothing was changed."
        )
    return found


def _set_on_kernels(model, kernels, kind, value):
    """Sets `kind` ("regularizer" or "constraint") on variables and layers."""
    for layer, variable, reg_attr, con_attr in kernels:
        setattr(variable, kind, value)
        setattr(layer, reg_attr if kind == "regularizer" else con_attr, value)
    # A traced train function captured the old losses and constraints.
    if keras_compat.train_function(model) is not None:
        keras_compat.rebuild_train_function(model)
    return [variable.path for _, variable, _, _ in kernels]


@register
class WeightDecay(keras.constraints.Constraint):
    """Decoupled weight decay as a constraint: `w <- w * (1 - rate)`.

    Keras applies a variable's constraint right after each optimizer
    `apply` call, so this shrinks the weight by a fixed factor per call,
    independently of the gradient and of the optimizer's adaptive scaling:
    decoupled weight decay (Loshchilov & Hutter, 2019) for any optimizer.
    The decay per step does not follow the learning rate schedule; to match
    `AdamW(learning_rate=lr, weight_decay=wd)` at a constant rate use
    `rate = lr * wd`. Under gradient accumulation Keras applies constraints
    on every micro-batch call too, not only on the real update: with
    `gradient_accumulation_steps=n` a real update decays the weight by
    `(1 - rate) ** n`, so use `rate = lr * wd / n` there. `Lookahead`
    applies constraints once more on its sync steps.

    Args:
        rate: The fraction of the weight removed per optimizer `apply` call
            (per micro-batch under gradient accumulation), in `[0, 1)`.

    Raises:
        ValueError: If `rate` is not in `[0, 1)`.

    Example:

    >>> layer = keras.layers.Dense(4, kernel_constraint=WeightDecay(1e-4))

    References:
        - [Loshchilov & Hutter, 2019](https://arxiv.org/abs/1711.05101):
          Decoupled Weight Decay Regularization.
    """

    def __init__(self, rate):
        self.rate = check_number("rate", rate, low=0.0, high=1.0,
                                 high_inclusive=False)

    def __call__(self, w):
        # As Keras's constraints do: a NumPy array times a torch tensor fails.
        w = keras.ops.convert_to_tensor(w)
        return w * keras.ops.cast(1.0 - self.rate, w.dtype)

    def get_config(self):
        return {"rate": self.rate}


def add_weight_decay(model, rate):
    """Adds decoupled weight decay to every kernel of a built model.

    Sets a `WeightDecay(rate)` constraint on every kernel (and records it
    in the owning layer's `*_constraint` attribute, so `model.save` keeps
    it and a reloaded model goes on decaying). Works with every optimizer.
    Biases, normalization parameters and embeddings are not decayed.

    Args:
        model: A built `keras.Model` (or layer), modified in place.
        rate: Fraction of each kernel removed per optimizer `apply` call,
            in `[0, 1)` (e.g. `learning_rate * weight_decay`; divide it by
            `gradient_accumulation_steps` when accumulating, since Keras
            applies constraints on every micro-batch).

    Returns:
        The paths of the decayed variables.

    Raises:
        TypeError: If `model` is not a Keras model or layer.
        ValueError: If `rate` is not in `[0, 1)`, the model is not built,
            has no kernel, has a kernel created inside another layer (see
            the module docstring), or a kernel already has another
            constraint (nothing is changed then).

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(2, name="fc")], name="net")
    >>> add_weight_decay(model, 1e-4)
    ['net/fc/kernel']

    References:
        - [Loshchilov & Hutter, 2019](https://arxiv.org/abs/1711.05101):
          Decoupled Weight Decay Regularization.
    """
    constraint = WeightDecay(rate)
    kernels = _require_kernels(model)
    for layer, variable, _, _ in kernels:
        current = variable.constraint
        if current is not None and not isinstance(current, WeightDecay):
            raise ValueError(
                f"Kernel {variable.path!r} of layer {layer.name!r} already "
                f"has the constraint {current!r}; add_weight_decay would "
                "replace it. Remove it first."
            )
    return _set_on_kernels(model, kernels, "constraint", constraint)


def regularize_kernels(model, regularizer):
    """Adds a regularization penalty on every kernel of a built model.

    Replaces the kernel regularizers of every layer (nested ones included)
    by `regularizer`; the penalty joins `model.losses` and is saved with the
    model. Biases, normalization parameters and embeddings are not
    regularized. With adaptive optimizers (Adam...) prefer
    `add_weight_decay`: an L2 penalty's gradient is rescaled by the
    optimizer, which weakens it for weights with large gradients.

    Args:
        model: A built `keras.Model` (or layer), modified in place.
        regularizer: A Keras regularizer, its name or config (e.g.
            `keras.regularizers.L2(1e-4)`, `keras.regularizers.L1L2(l1, l2)`),
            or `None` to remove the kernel regularizers.

    Returns:
        The paths of the regularized variables.

    Raises:
        TypeError: If `model` is not a Keras model or layer.
        ValueError: If the model is not built, has no kernel, has a kernel
            created inside another layer (see the module docstring), or
            `regularizer` cannot be resolved.

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(2, name="fc")], name="net")
    >>> regularize_kernels(model, keras.regularizers.L2(1e-4))
    ['net/fc/kernel']
    """
    regularizer = keras.regularizers.get(regularizer)
    kernels = _require_kernels(model)
    return _set_on_kernels(model, kernels, "regularizer", regularizer)


def decay_kernels_only(optimizer, model):
    """Restricts an optimizer's built-in weight decay to the model's kernels.

    Calls `optimizer.exclude_from_weight_decay` with every trainable
    variable of `model` that is not a kernel (biases, normalization
    parameters, embeddings...); kernels inside any layer, `MultiHeadAttention`
    and custom layers included, keep their decay. Wrapper optimizers
    (`Lookahead`, `Ranger`, `GradientTransform`) forward the exclusion to the
    optimizer they wrap. Keras does not save this exclusion with the
    optimizer: after reloading a model, prefer `add_weight_decay`, which is
    saved.

    Args:
        optimizer: A `keras.optimizers.Optimizer` created with
            `weight_decay`, not yet built (before the first `fit`).
        model: A built `keras.Model`.

    Returns:
        The paths of the excluded variables.

    Raises:
        TypeError: If `optimizer` is not a Keras optimizer, or `model` not a
            Keras model or layer.
        ValueError: If the optimizer has no weight decay (for `LARS`: its
            own coupled `weight_decay`) or is already built, or the model
            is not built or has no kernel.

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(2, name="fc")], name="net")
    >>> optimizer = keras.optimizers.AdamW(weight_decay=1e-2)
    >>> decay_kernels_only(optimizer, model)
    ['net/fc/bias']
    """
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(
            "Argument `optimizer` must be a keras.optimizers.Optimizer. "
            f"Received: optimizer={optimizer!r}"
        )
    inner = innermost_optimizer(optimizer)
    # LARS keeps its (coupled) decay apart from Keras's `weight_decay` and
    # honours the same exclusion list.
    decay = (inner.lars_weight_decay if isinstance(inner, LARS)
             else optimizer.weight_decay)
    if not decay:
        raise ValueError(
            "Argument `optimizer` has no weight decay to restrict. Received: "
            f"optimizer.weight_decay={decay!r}"
        )
    if optimizer.built:
        raise ValueError(
            "Argument `optimizer` is already built; call decay_kernels_only "
            "before the first training step."
        )
    _check_model(model)
    kernels = _kernel_variables(model)
    if not kernels:
        raise ValueError(
            f"Model {model.name!r} has no kernel to regularize."
        )
    kernel_ids = {id(v) for v in kernels}
    excluded = [
        v for v in model.trainable_variables if id(v) not in kernel_ids
    ]
    optimizer.exclude_from_weight_decay(var_list=excluded)
    return [v.path for v in excluded]


def _require_kernels(model):
    kernels = _kernels(model)
    if not kernels:
        raise ValueError(
            f"Model {model.name!r} has no kernel to regularize."
        )
    return kernels
