"""Rectified Adam (RAdam)."""

import keras
from keras import ops

from callbacks._api import register
from callbacks._validation import check_number
from recipes.optimizers._common import as_dense, check_beta, check_learning_rate


@register
class RAdam(keras.optimizers.Optimizer):
    """Rectified Adam: Adam whose adaptive step is switched on gradually.

    Early in training the second-moment estimate is built from few samples and
    its variance is large, which makes Adam's adaptive step erratic (the reason
    Adam usually needs a warmup). RAdam computes the length of the
    approximated simple moving average, `rho_t`, and only uses the adaptive
    step once `rho_t > sma_threshold`, multiplied by the rectification term
    `r_t`; before that it takes an un-adapted momentum step. With
    `sma_threshold=4` (the paper's condition, where `r_t` becomes defined)
    and `beta_2=0.999` the adaptive step starts at step 5.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable.
            Defaults to `0.001`.
        beta_1: Decay rate of the first moment. Defaults to `0.9`.
        beta_2: Decay rate of the second moment. Defaults to `0.999`.
        epsilon: Added to the root of the second moment. Defaults to `1e-7`.
        sma_threshold: The adaptive step is used when `rho_t` exceeds this.
            Must be >= 4 (below 4, `r_t` is undefined). Defaults to `4.0`.
        name: Name of the optimizer. Defaults to `"radam"`.
        **kwargs: Base optimizer arguments (`weight_decay`, `clipnorm`,
            `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`,
            `ema_overwrite_frequency`, `loss_scale_factor`,
            `gradient_accumulation_steps`).

    Raises:
        ValueError: If an argument is out of range.

    Example:

    >>> opt = RAdam(learning_rate=1e-3)
    >>> w = keras.Variable([1.0, 2.0])
    >>> opt.apply([keras.ops.array([0.5, -0.5])], [w])

    References:
        - [Liu et al., 2019](https://arxiv.org/abs/1908.03265),
          Algorithm 2.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, sma_threshold=4.0, name="radam", **kwargs):
        learning_rate = check_learning_rate(learning_rate)
        beta_1 = check_beta("beta_1", beta_1)
        beta_2 = check_beta("beta_2", beta_2)
        epsilon = float(check_number("epsilon", epsilon, low=0.0))
        sma_threshold = float(
            check_number("sma_threshold", sma_threshold, low=4.0)
        )
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.sma_threshold = sma_threshold

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = as_dense(gradient, dtype)
        t = ops.cast(self.iterations + 1, dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        b1, b2 = self.beta_1, self.beta_2

        self.assign_add(m, ops.multiply(ops.subtract(g, m), 1 - b1))
        self.assign_add(
            v, ops.multiply(ops.subtract(ops.square(g), v), 1 - b2)
        )
        b1_t = ops.power(ops.cast(b1, dtype), t)
        b2_t = ops.power(ops.cast(b2, dtype), t)
        m_hat = ops.divide(m, 1 - b1_t)

        rho_inf = 2.0 / (1.0 - b2) - 1.0
        rho_t = rho_inf - 2.0 * t * b2_t / (1.0 - b2_t)
        # Clamped so the unused branch of `where` stays finite.
        r_sq = ops.divide(
            ops.maximum(rho_t - 4.0, 0.0) * (rho_t - 2.0) * rho_inf,
            (rho_inf - 4.0) * (rho_inf - 2.0) * rho_t,
        )
        adaptive = ops.sqrt(r_sq) * m_hat * ops.divide(
            ops.sqrt(1.0 - b2_t), ops.add(ops.sqrt(v), self.epsilon)
        )
        step = ops.where(rho_t > self.sma_threshold, adaptive, m_hat)
        self.assign_sub(variable, ops.multiply(lr, step))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "sma_threshold": self.sma_threshold,
            }
        )
        return config
