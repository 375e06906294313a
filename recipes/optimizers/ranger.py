"""Ranger: Lookahead over RAdam, with gradient centralization."""

import keras

from callbacks._internal import register
from recipes.optimizers._common import BASE_KWARGS
from recipes.optimizers.gradient_transform import GradientTransform
from recipes.optimizers.lookahead import Lookahead
from recipes.optimizers.radam import RAdam


@register
class Ranger(Lookahead):
    """Ranger: `Lookahead(RAdam)`, optionally with gradient centralization.

    RAdam removes the need for a warmup, Lookahead stabilises the late phase
    and gradient centralization (on by default, as in Ranger 2020) constrains
    kernel gradients to zero mean per unit. The defaults follow the original
    Ranger: `beta_1=0.95`, `epsilon=1e-5`, `sync_period=6`,
    `slow_step_size=0.5`, RAdam threshold 5.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable.
            Defaults to `0.001`.
        beta_1: RAdam's first-moment decay. Defaults to `0.95`.
        beta_2: RAdam's second-moment decay. Defaults to `0.999`.
        epsilon: RAdam's epsilon. Defaults to `1e-5`.
        sma_threshold: RAdam's threshold on `rho_t`. Defaults to `5.0`.
        sync_period: Lookahead's `k`. Defaults to `6`.
        slow_step_size: Lookahead's `alpha`. Defaults to `0.5`.
        gradient_centralization: Whether to centralize kernel gradients
            (not embedding tables, see `centralize_gradient`).
            Defaults to `True`.
        name: Name of the optimizer. Defaults to `"ranger"`.
        **kwargs: Base optimizer arguments (`weight_decay`, `clipnorm`,
            `global_clipnorm`, `use_ema`, `gradient_accumulation_steps`, ...),
            applied by the inner RAdam.

    Raises:
        ValueError: If an argument is out of range.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=Ranger(learning_rate=1e-3), loss="mse")

    References:
        - [Liu et al., 2019](https://arxiv.org/abs/1908.03265) (RAdam).
        - [Zhang et al., 2019](https://arxiv.org/abs/1907.08610)
          (Lookahead).
        - [Yong et al., 2020](https://arxiv.org/abs/2004.01461)
          (gradient centralization).
    """

    def __init__(self, learning_rate=0.001, beta_1=0.95, beta_2=0.999,
                 epsilon=1e-5, sma_threshold=5.0, sync_period=6,
                 slow_step_size=0.5, gradient_centralization=True,
                 name="ranger", **kwargs):
        radam = RAdam(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            sma_threshold=sma_threshold,
            name=f"{name}_radam",
            **{k: kwargs.pop(k) for k in BASE_KWARGS if k in kwargs},
        )
        inner = radam
        if gradient_centralization:
            inner = GradientTransform(
                radam, gradient_centralization=True, name=f"{name}_gc"
            )
        super().__init__(inner, sync_period=sync_period,
                         slow_step_size=slow_step_size, name=name, **kwargs)
        self.radam = radam
        self.gradient_centralization = bool(gradient_centralization)

    def get_config(self):
        config = self.radam.get_config()
        config.update(
            {
                "name": self.name,
                "sync_period": self.sync_period,
                "slow_step_size": self.slow_step_size,
                "gradient_centralization": self.gradient_centralization,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        learning_rate = config.get("learning_rate")
        if isinstance(learning_rate, dict):
            config["learning_rate"] = keras.saving.deserialize_keras_object(
                learning_rate, custom_objects=custom_objects
            )
        return cls(**config)
