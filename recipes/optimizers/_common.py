"""Shared helpers of the optimizers package (argument checks, slot math)."""

import keras

from callbacks._internal import check_number, keras_compat

BASE_KWARGS = (
    "weight_decay",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
)


def check_learning_rate(learning_rate):
    """Accept a positive float, a `LearningRateSchedule` or a callable.

    Raises:
        ValueError: If a number is not > 0.
        TypeError: If it is neither a number nor callable.
    """
    if callable(learning_rate):
        return learning_rate
    return float(
        check_number("learning_rate", learning_rate, low=0.0,
                     low_inclusive=False)
    )


def check_beta(name, value):
    """A moment decay rate must lie in [0, 1)."""
    return float(check_number(name, value, low=0.0, high=1.0,
                              high_inclusive=False))


def as_dense(gradient, dtype):
    """Embedding gradients arrive as sparse slices; the rules are dense."""
    return keras.ops.cast(keras.ops.convert_to_tensor(gradient), dtype)


class MomentOptimizer(keras.optimizers.Optimizer):
    """Base of the Adam-family optimizers here (RAdam, AdaBelief, Yogi).

    Validates and stores `beta_1`, `beta_2` and `epsilon`, creates one
    first-moment and one second-moment slot per variable (named by
    `SLOTS`, so checkpoints keep their layout) and serializes the three.
    Subclasses write `update_step` and add their own arguments.
    """

    SLOTS = ("momentum", "velocity")

    def __init__(self, learning_rate, beta_1, beta_2, epsilon, name,
                 **kwargs):
        learning_rate = check_learning_rate(learning_rate)
        beta_1 = check_beta("beta_1", beta_1)
        beta_2 = check_beta("beta_2", beta_2)
        epsilon = float(check_number("epsilon", epsilon, low=0.0))
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def second_moment_initializer(self):
        """Initial value of the second-moment slots. Defaults to zeros."""
        return "zeros"

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        first, second = self.SLOTS
        self._first_moments = self.add_optimizer_variables(var_list, first)
        self._second_moments = self.add_optimizer_variables(
            var_list, second, initializer=self.second_moment_initializer())

    def moments(self, variable):
        """The `(first, second)` moment slots of `variable`."""
        index = keras_compat.variable_index(self, variable)
        return self._first_moments[index], self._second_moments[index]

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2,
                       "epsilon": self.epsilon})
        return config
