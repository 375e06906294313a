"""Rectified Adam (RAdam)."""

import math

from keras import ops

from callbacks._internal import check_number, register
from recipes.optimizers._common import MomentOptimizer, as_dense


@register
class RAdam(MomentOptimizer):
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
        sma_threshold = float(
            check_number("sma_threshold", sma_threshold, low=4.0)
        )
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name,
                         **kwargs)
        self.sma_threshold = sma_threshold

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = as_dense(gradient, dtype)
        m, v = self.moments(variable)
        b1, b2 = self.beta_1, self.beta_2

        self.assign_add(m, ops.multiply(ops.subtract(g, m), 1 - b1))
        self.assign_add(
            v, ops.multiply(ops.subtract(ops.square(g), v), 1 - b2)
        )
        # rho_t = rho_inf - 2 t b2^t / (1 - b2^t) subtracts two numbers close
        # to rho_inf (~2000) early on, which loses ~4 digits in float32 (and
        # JAX computes "float64" in float32 unless x64 is enabled). Written
        # as 2 N / ((1 - b2) (1 - b2^t)) - 1 with N = 1 - b2^t (1 + t (1-b2))
        # and N, 1 - b2^t from `expm1` of sums without cancellation, it
        # keeps float32 precision.
        t = ops.cast(self.iterations + 1, "float64")
        q = 1.0 - b2
        log_b2 = math.log(b2) if b2 > 0 else -math.inf
        b1_t = ops.power(ops.convert_to_tensor(b1, "float64"), t)
        one_minus_b2_t = -ops.expm1(t * log_b2)
        n = -ops.expm1(t * (log_b2 + q) + _log1p_minus_x(t * q))
        rho_inf = 2.0 / q - 1.0
        rho_t = 2.0 * n / (q * one_minus_b2_t) - 1.0
        # Clamped so the unused branch stays finite.
        r_t = ops.sqrt(
            ops.maximum(rho_t - 4.0, 0.0) * (rho_t - 2.0) * rho_inf
            / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
        )
        adaptive = rho_t > self.sma_threshold
        m_scale = ops.cast(1.0 / (1.0 - b1_t), dtype)
        r_scale = ops.cast(
            ops.where(adaptive, r_t * ops.sqrt(one_minus_b2_t), 1.0), dtype
        )
        # `ones_like(g)`, not of the variable `v`: JAX has no `ones_like`
        # of a Keras variable.
        denominator = ops.where(
            adaptive, ops.add(ops.sqrt(v), self.epsilon), ops.ones_like(g)
        )
        self.assign_sub(
            variable, lr * r_scale * m_scale * ops.divide(m, denominator)
        )

    def get_config(self):
        config = super().get_config()
        config["sma_threshold"] = self.sma_threshold
        return config


def _log1p_minus_x(x):
    """`log1p(x) - x` for x >= 0 without cancellation near 0."""
    # Below 0.1 the alternating series (error < x**10 / 10) replaces the
    # difference; above, the difference loses at most ~2 bits.
    small = ops.minimum(x, 0.1)
    series = ops.zeros_like(x)
    for k in range(9, 1, -1):
        series = small * (((-1.0) ** (k + 1)) / k + series)
    series = small * series
    return ops.where(x < 0.1, series, ops.log1p(x) - x)
