"""AdaBelief: Adam with the variance of the gradient around its prediction."""

from keras import ops

from callbacks._internal import register
from recipes.optimizers._common import MomentOptimizer, as_dense


@register
class AdaBelief(MomentOptimizer):
    """AdaBelief: step size adapted to the "belief" in the gradient.

    Adam divides the momentum by the root of the running mean of `g**2`.
    AdaBelief divides by the root of the running mean of `(g - m)**2`, the
    squared deviation of the gradient from its exponential moving average:
    when the observed gradient agrees with the prediction the step is large,
    when it deviates the step is small. Both moments are bias-corrected, and
    `epsilon` is added inside the second moment as in the paper's Algorithm 2.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable.
            Defaults to `0.001`.
        beta_1: Decay rate of the first moment. Defaults to `0.9`.
        beta_2: Decay rate of the second moment. Defaults to `0.999`.
        epsilon: Added to the second moment and to its root.
            Defaults to `1e-16`.
        name: Name of the optimizer. Defaults to `"adabelief"`.
        **kwargs: Base optimizer arguments (`weight_decay`, `clipnorm`,
            `global_clipnorm`, `use_ema`, `gradient_accumulation_steps`, ...).

    Raises:
        ValueError: If an argument is out of range.

    Example:

    >>> opt = AdaBelief(learning_rate=1e-3)
    >>> w = keras.Variable([1.0, 2.0])
    >>> opt.apply([keras.ops.array([0.5, -0.5])], [w])

    References:
        - [Zhuang et al., 2020](https://arxiv.org/abs/2010.07468),
          Algorithm 2.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-16, name="adabelief", **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name,
                         **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = as_dense(gradient, dtype)
        t = ops.cast(self.iterations + 1, dtype)
        m, s = self.moments(variable)
        b1, b2 = self.beta_1, self.beta_2

        self.assign_add(m, ops.multiply(ops.subtract(g, m), 1 - b1))
        deviation = ops.square(ops.subtract(g, m))
        self.assign(
            s, s * b2 + deviation * (1 - b2) + self.epsilon
        )
        m_hat = m / (1 - ops.power(ops.cast(b1, dtype), t))
        s_hat = s / (1 - ops.power(ops.cast(b2, dtype), t))
        self.assign_sub(
            variable, lr * m_hat / (ops.sqrt(s_hat) + self.epsilon)
        )
