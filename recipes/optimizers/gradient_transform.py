"""Gradient centralization and adaptive gradient clipping for any optimizer."""

from keras import ops

from callbacks._internal import check_number, register
from recipes.optimizers._wrapper import WrapperOptimizer, innermost_optimizer


def _fan_in_axes(variable):
    # Keras kernels keep output units on the last axis (Dense: (in, out),
    # Conv2D: (kh, kw, in, out)); every other axis is the unit's fan-in.
    return tuple(range(len(variable.shape) - 1))


# Keras names embedding tables `embeddings` (`keras.layers.Embedding`, and
# keras-hub's token and position embeddings).
_EMBEDDINGS = "embeddings"


def _is_centralized(variable):
    # The paper centralizes the weights of convolution and fully connected
    # layers. An embedding table's rows are tokens, not the fan-in of an
    # output unit: its per-column mean would move every row, those of the
    # tokens absent from the batch included.
    return len(variable.shape) > 1 and variable.name != _EMBEDDINGS


def centralize_gradient(gradient, variable):
    """Subtract, per output unit, the mean of a kernel's gradient.

    Only kernels (convolution and dense weights, rank >= 2) are
    centralized, as in the paper. Variables of rank <= 1 (biases,
    normalization parameters) and embedding tables (variables named
    `"embeddings"`, as in `keras.layers.Embedding`) are returned unchanged:
    an embedding's rows are tokens, not filters, and centralizing would
    shift the rows of tokens absent from the batch.

    Args:
        gradient: The gradient tensor.
        variable: The variable it belongs to.

    Returns:
        The centralized gradient.

    References:
        - [Yong et al., 2020](https://arxiv.org/abs/2004.01461).
    """
    if not _is_centralized(variable):
        return gradient
    mean = ops.mean(gradient, axis=_fan_in_axes(variable), keepdims=True)
    return gradient - mean


def _unitwise_norm(x, variable):
    if len(variable.shape) <= 1:
        # A bias or gain vector is one unit, as in the paper's reference
        # implementation (and optax's and timm's).
        return ops.sqrt(ops.sum(ops.square(x), keepdims=True))
    return ops.sqrt(
        ops.sum(ops.square(x), axis=_fan_in_axes(variable), keepdims=True)
    )


def adaptive_clip_gradient(gradient, variable, clip_factor, eps=1e-3):
    """Clip each unit's gradient to `clip_factor` times its weight norm.

    For each output unit `i`, with `W_i` its weights and `G_i` their gradient,
    when `||G_i|| / max(||W_i||, eps) > clip_factor` the gradient becomes
    `clip_factor * max(||W_i||, eps) / ||G_i|| * G_i`. A kernel's units are
    its output channels (norms over all other axes); a vector (bias, gain)
    or scalar is one unit.

    Args:
        gradient: The gradient tensor.
        variable: The variable it belongs to.
        clip_factor: The paper's `lambda`, > 0.
        eps: Floor of the weight norm, so units initialised at zero can
            move. Defaults to `1e-3`.

    Returns:
        The clipped gradient.

    References:
        - [Brock et al., 2021](https://arxiv.org/abs/2102.06171),
          Section 4.1.
    """
    w_norm = ops.maximum(_unitwise_norm(variable, variable), eps)
    g_norm = _unitwise_norm(gradient, variable)
    max_norm = clip_factor * w_norm
    scale = max_norm / ops.maximum(g_norm, 1e-6)
    return ops.where(g_norm > max_norm, gradient * scale, gradient)


@register
class GradientTransform(WrapperOptimizer):
    """Apply gradient centralization and/or adaptive clipping, then step.

    Wraps any Keras optimizer: the gradients are transformed per variable
    (centralization first, then clipping) and handed to the wrapped
    optimizer's `apply`, which then applies its own clipping, weight decay
    and update. Under a `tf.distribute` strategy the transform runs on each
    replica's gradient before the all-reduce (as Keras's `clipnorm` does);
    centralization is linear so it is unaffected, adaptive clipping then
    acts on per-replica gradients. For the same reason adaptive clipping
    refuses a wrapped optimizer with `gradient_accumulation_steps`: it would
    clip each micro-batch gradient, not the accumulated one that is applied
    (use Keras's `clipnorm` there, which clips the accumulated gradient).
    Loss scaling is the wrapped optimizer's (its `loss_scale_factor`, or a
    `keras.optimizers.LossScaleOptimizer` around this wrapper): the
    clipping always compares the unscaled gradient with the weights.

    Args:
        optimizer: The `keras.optimizers.Optimizer` instance to wrap.
        agc_clip_factor: The adaptive clipping factor `lambda` (e.g. `0.01`
            to `0.16`), or `None` for no clipping. Defaults to `None`.
        agc_eps: Floor of the unit weight norm. Defaults to `1e-3`.
        gradient_centralization: Whether to centralize the gradients of
            kernels (rank >= 2; embedding tables are left alone, see
            `centralize_gradient`). Defaults to `False`.
        name: Name of the wrapper. Defaults to `"gradient_transform"`.

    Raises:
        TypeError: If `optimizer` is not a Keras optimizer.
        ValueError: If an argument is out of range, or `agc_clip_factor`
            is set and the wrapped optimizer accumulates gradients.

    Example:

    >>> import keras
    >>> opt = GradientTransform(keras.optimizers.SGD(0.1, momentum=0.9),
    ...                         agc_clip_factor=0.01,
    ...                         gradient_centralization=True)
    >>> w = keras.Variable([[1.0, 2.0], [3.0, 4.0]])
    >>> opt.apply([keras.ops.ones((2, 2))], [w])

    References:
        - [Yong et al., 2020](https://arxiv.org/abs/2004.01461),
          gradient centralization.
        - [Brock et al., 2021](https://arxiv.org/abs/2102.06171),
          adaptive gradient clipping.
    """

    def __init__(self, optimizer, agc_clip_factor=None, agc_eps=1e-3,
                 gradient_centralization=False, name="gradient_transform",
                 **kwargs):
        agc_clip_factor = check_number(
            "agc_clip_factor", agc_clip_factor, low=0.0, low_inclusive=False,
            allow_none=True,
        )
        agc_eps = float(
            check_number("agc_eps", agc_eps, low=0.0, low_inclusive=False)
        )
        accumulation = getattr(innermost_optimizer(optimizer),
                               "gradient_accumulation_steps", None)
        if agc_clip_factor is not None and accumulation:
            raise ValueError(
                "Argument `agc_clip_factor` cannot be combined with a wrapped "
                "optimizer that accumulates gradients: the clipping would act "
                "on each micro-batch gradient, not on the accumulated one. "
                f"Received: agc_clip_factor={agc_clip_factor!r} with "
                f"gradient_accumulation_steps={accumulation!r}"
            )
        super().__init__(optimizer, name=name, **kwargs)
        self.agc_clip_factor = agc_clip_factor
        self.agc_eps = agc_eps
        self.gradient_centralization = bool(gradient_centralization)

    def transform(self, gradient, variable):
        """The transformed gradient of one variable (`None` passes)."""
        if gradient is None:
            return None
        # Sparse (embedding) gradients become dense: both rules need the
        # whole unit.
        gradient = ops.convert_to_tensor(gradient)
        if self.gradient_centralization:
            gradient = centralize_gradient(gradient, variable)
        if self.agc_clip_factor is not None:
            gradient = adaptive_clip_gradient(
                gradient, variable, self.agc_clip_factor, self.agc_eps
            )
        return gradient

    def apply(self, grads, trainable_variables=None):
        variables = self._build_for(trainable_variables)
        scale = self.loss_scale_factor
        if scale is None or self.agc_clip_factor is None:
            grads = [
                self.transform(g, v)
                for g, v in zip(grads, variables, strict=True)
            ]
        else:
            # The wrapped optimizer unscales the gradients after us, but the
            # clipping threshold is on the true gradient: unscale, clip,
            # scale back. (Centralization is linear: the scale is harmless.)
            grads = [
                None if g is None
                else self.transform(ops.convert_to_tensor(g) / scale, v)
                * scale
                for g, v in zip(grads, variables, strict=True)
            ]
        self.inner_optimizer.apply(grads, trainable_variables)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "agc_clip_factor": self.agc_clip_factor,
                "agc_eps": self.agc_eps,
                "gradient_centralization": self.gradient_centralization,
            }
        )
        return config
