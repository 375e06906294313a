"""Yogi: Adam with an additive, sign-controlled second-moment update."""

import keras
from keras import ops

from callbacks._internal import check_number, register
from recipes.optimizers._common import MomentOptimizer, as_dense


@register
class Yogi(MomentOptimizer):
    """Yogi: an adaptive method whose effective step cannot explode.

    Adam's second moment `v` forgets past gradients multiplicatively, so after
    a stretch of small gradients `v` collapses and the next step is huge. Yogi
    moves `v` towards `g**2` additively,
    `v = v - (1 - beta_2) * sign(v - g**2) * g**2`, so `v` changes by at most
    `(1 - beta_2) * g**2` per step. As in the paper's Algorithm 2 the moments
    are not bias-corrected, `v` starts at `initial_accumulator_value` and
    `epsilon` is much larger than Adam's.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable.
            Defaults to `0.01`.
        beta_1: Decay rate of the first moment. Defaults to `0.9`.
        beta_2: Controls the speed of the second moment. Defaults to `0.999`.
        epsilon: Added to the root of the second moment. Defaults to `1e-3`.
        initial_accumulator_value: Starting value of `v`. Defaults to `1e-6`.
        name: Name of the optimizer. Defaults to `"yogi"`.
        **kwargs: Base optimizer arguments (`weight_decay`, `clipnorm`,
            `global_clipnorm`, `use_ema`, `gradient_accumulation_steps`, ...).

    Raises:
        ValueError: If an argument is out of range.

    Example:

    >>> opt = Yogi(learning_rate=1e-2)
    >>> w = keras.Variable([1.0, 2.0])
    >>> opt.apply([keras.ops.array([0.5, -0.5])], [w])

    References:
        - [Zaheer et al., 2018](https://papers.nips.cc/paper/8186),
          "Adaptive Methods for Nonconvex Optimization", Algorithm 2.
    """

    def __init__(self, learning_rate=0.01, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-3, initial_accumulator_value=1e-6, name="yogi",
                 **kwargs):
        initial_accumulator_value = float(
            check_number("initial_accumulator_value",
                         initial_accumulator_value, low=0.0)
        )
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name,
                         **kwargs)
        self.initial_accumulator_value = initial_accumulator_value

    def second_moment_initializer(self):
        return keras.initializers.Constant(self.initial_accumulator_value)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = as_dense(gradient, dtype)
        m, v = self.moments(variable)

        self.assign_add(m, ops.multiply(ops.subtract(g, m), 1 - self.beta_1))
        g2 = ops.square(g)
        self.assign_sub(
            v, (1 - self.beta_2) * ops.sign(ops.subtract(v, g2)) * g2
        )
        self.assign_sub(variable, lr * m / (ops.sqrt(v) + self.epsilon))

    def get_config(self):
        config = super().get_config()
        config["initial_accumulator_value"] = self.initial_accumulator_value
        return config
