"""LARS: layer-wise adaptive rate scaling for large-batch training."""

import keras
from keras import ops

from callbacks._internal import check_number, keras_compat, register
from recipes.optimizers._common import as_dense, check_learning_rate


@register
class LARS(keras.optimizers.Optimizer):
    """LARS: momentum SGD with a per-layer trust ratio.

    With very large batches one global learning rate is too large for some
    layers and too small for others: the ratio `||w|| / ||g||` differs by
    orders of magnitude between layers. LARS scales each layer's step by the
    local learning rate (trust ratio)

    ```
    trust = eta * ||w|| / (||g|| + weight_decay * ||w|| + epsilon)
    ```

    (`eta` is `trust_coefficient`) and applies momentum SGD to
    `(g + weight_decay * w)`:

    ```
    v = momentum * v + learning_rate * trust * (g + weight_decay * w)
    w = w - v
    ```

    `weight_decay` is LARS's own (coupled) decay, part of the trust ratio, not
    Keras's decoupled decay. By default (`exclude_bias_and_norm=True`)
    variables of rank <= 1 (biases, normalization scales and offsets) take a
    plain momentum step (trust 1) without decay, as is standard practice for
    LARS. Variables excluded through Keras's `exclude_from_weight_decay`
    (also `recipes.regularization.decay_kernels_only`) keep the trust ratio
    and lose the decay: their `weight_decay` is 0 in both formulas. A layer
    whose weight or gradient norm is 0 also uses trust 1.

    Args:
        learning_rate: Global learning rate: a float, a `LearningRateSchedule`
            or a callable. Defaults to `1.0`.
        momentum: Momentum coefficient in [0, 1). Defaults to `0.9`.
        weight_decay: Coupled L2 weight decay (the paper's `beta`), >= 0.
            Defaults to `0.0`.
        trust_coefficient: The paper's `eta`. Defaults to `0.001`.
        epsilon: Added to the trust ratio's denominator. Defaults to `0.0`.
        nesterov: Whether to use Nesterov momentum. Defaults to `False`.
        exclude_bias_and_norm: Whether rank <= 1 variables skip the trust
            ratio and the weight decay. Defaults to `True`.
        name: Name of the optimizer. Defaults to `"lars"`.
        **kwargs: Base optimizer arguments other than `weight_decay`
            (`clipnorm`, `global_clipnorm`, `use_ema`,
            `gradient_accumulation_steps`, ...).

    Raises:
        ValueError: If an argument is out of range.

    Example:

    >>> opt = LARS(learning_rate=1.0, weight_decay=1e-4)
    >>> w = keras.Variable([[1.0, 2.0], [3.0, 4.0]])
    >>> opt.apply([keras.ops.ones((2, 2))], [w])

    References:
        - [You et al., 2017](https://arxiv.org/abs/1708.03888),
          Algorithm 1.
    """

    def __init__(self, learning_rate=1.0, momentum=0.9, weight_decay=0.0,
                 trust_coefficient=0.001, epsilon=0.0, nesterov=False,
                 exclude_bias_and_norm=True, name="lars", **kwargs):
        learning_rate = check_learning_rate(learning_rate)
        momentum = float(
            check_number("momentum", momentum, low=0.0, high=1.0,
                         high_inclusive=False)
        )
        weight_decay = float(
            check_number("weight_decay", 0.0 if weight_decay is None
                         else weight_decay, low=0.0)
        )
        trust_coefficient = float(
            check_number("trust_coefficient", trust_coefficient, low=0.0,
                         low_inclusive=False)
        )
        epsilon = float(check_number("epsilon", epsilon, low=0.0))
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = momentum
        # Kept apart from `self.weight_decay`: Keras would otherwise also
        # apply it as decoupled decay before `update_step`.
        self.lars_weight_decay = weight_decay
        self.trust_coefficient = trust_coefficient
        self.epsilon = epsilon
        self.nesterov = bool(nesterov)
        self.exclude_bias_and_norm = bool(exclude_bias_and_norm)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")

    def _adapts(self, variable):
        return not (self.exclude_bias_and_norm and len(variable.shape) <= 1)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = as_dense(gradient, dtype)
        v = self._momentums[keras_compat.variable_index(self, variable)]
        if self._adapts(variable):
            # Keras's exclusion list (`exclude_from_weight_decay`).
            wd = (self.lars_weight_decay
                  if keras_compat.uses_weight_decay(self, variable) else 0.0)
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            g_norm = ops.sqrt(ops.sum(ops.square(g)))
            trust = ops.where(
                ops.logical_and(w_norm > 0, g_norm > 0),
                self.trust_coefficient * w_norm
                / (g_norm + wd * w_norm + self.epsilon),
                ops.ones_like(w_norm),
            )
            g = g + wd * variable
            scaled_lr = lr * trust
        else:
            scaled_lr = lr
        step = scaled_lr * g
        self.assign(v, self.momentum * v + step)
        if self.nesterov:
            self.assign_sub(variable, self.momentum * v + step)
        else:
            self.assign_sub(variable, v)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "weight_decay": self.lars_weight_decay,
                "trust_coefficient": self.trust_coefficient,
                "epsilon": self.epsilon,
                "nesterov": self.nesterov,
                "exclude_bias_and_norm": self.exclude_bias_and_norm,
            }
        )
        return config
