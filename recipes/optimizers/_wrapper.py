"""Base class of optimizers that wrap another Keras optimizer.

A wrapper owns an inner optimizer and delegates the learning rate, the step
counter, weight decay (and its exclusions), EMA and the update to it; its own
variables and the inner optimizer's are saved together, so a model compiled
with a wrapper reloads from `.keras` with the wrapper's state and the inner
slots.
"""

import keras

from callbacks._internal import keras_compat
from recipes.optimizers._common import BASE_KWARGS


# `keras.callbacks.SwapEMAWeights` reads the averages from the optimizer it
# is given (the wrapper); they are the wrapped optimizer's. Raises
# AttributeError without EMA, as Keras.
@keras_compat.delegate_ema_averages
class WrapperOptimizer(keras.optimizers.Optimizer):
    """Delegating base: subclasses transform the inner optimizer's `apply`.

    The wrapped optimizer applies weight decay, clipping, EMA, gradient
    accumulation and loss scaling, so the wrapper reports the wrapped
    optimizer's `weight_decay` and `use_ema` (read-only) and
    `loss_scale_factor`, and forwards `exclude_from_weight_decay` and
    `loss_scale_factor` to it, through any number of nested wrappers. Like
    Keras's optimizers, the exclusions are not part of the saved
    configuration: call `exclude_from_weight_decay` again on the optimizer
    of a reloaded model.

    Args:
        optimizer: The `keras.optimizers.Optimizer` instance to wrap.
        name: Name of the wrapper.
        **kwargs: Base optimizer arguments are refused: set them on the
            wrapped optimizer, which applies them.
    """

    def __init__(self, optimizer, name=None, **kwargs):
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(
                "Argument `optimizer` must be a `keras.optimizers.Optimizer` "
                f"instance. Received: optimizer={optimizer!r}"
            )
        # `ema_momentum` alone has a non-None default; it only matters
        # with `use_ema`, which is refused.
        kwargs.pop("ema_momentum", None)
        for key in BASE_KWARGS:
            if kwargs.get(key) not in (None, False):
                raise ValueError(
                    f"{type(self).__name__} does not take `{key}`: set it on "
                    f"the wrapped optimizer. Received: {key}={kwargs[key]!r}"
                )
            kwargs.pop(key, None)
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.inner_optimizer = optimizer

    # While the base class builds the wrapper, `use_ema` must read False:
    # the EMA lives in the wrapped optimizer, not in a second copy here.
    _building_wrapper = False

    def build(self, var_list):
        if self.built:
            return
        self.inner_optimizer.build(var_list)
        self._building_wrapper = True
        try:
            super().build(var_list)
        finally:
            self._building_wrapper = False

    @property
    def weight_decay(self):
        """The wrapped optimizer's weight decay (read-only)."""
        return self.inner_optimizer.weight_decay

    @weight_decay.setter
    def weight_decay(self, weight_decay):
        # The base constructor stores `None` here; anything else belongs
        # to the wrapped optimizer.
        if weight_decay is not None:
            raise ValueError(
                f"{type(self).__name__}.weight_decay is the wrapped "
                "optimizer's: set it there. "
                f"Received: weight_decay={weight_decay!r}"
            )

    @property
    def use_ema(self):
        """Whether the wrapped optimizer keeps an EMA (read-only)."""
        if self._building_wrapper:
            return False
        return self.inner_optimizer.use_ema

    @use_ema.setter
    def use_ema(self, use_ema):
        if use_ema:
            raise ValueError(
                f"{type(self).__name__}.use_ema is the wrapped optimizer's: "
                f"set it there. Received: use_ema={use_ema!r}"
            )

    @property
    def loss_scale_factor(self):
        """The wrapped optimizer's loss scale factor.

        The wrapped optimizer scales the loss (`scale_loss`) and unscales
        the gradients in its `apply`, so the factor is its own, read and
        set through the wrapper. `keras.optimizers.LossScaleOptimizer`
        (which `compile` adds under the `"mixed_float16"` policy) clears
        it here so that only its dynamic scale applies: without the
        forwarding the wrapped optimizer would unscale the gradients a
        second time.
        """
        inner = getattr(self, "inner_optimizer", None)
        return None if inner is None else inner.loss_scale_factor

    @loss_scale_factor.setter
    def loss_scale_factor(self, loss_scale_factor):
        # The base constructor stores `None` (`__init__` refuses a
        # factor) before the wrapped optimizer exists.
        inner = getattr(self, "inner_optimizer", None)
        if inner is not None:
            inner.loss_scale_factor = loss_scale_factor

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Excludes variables from the wrapped optimizer's weight decay.

        Forwarded to the innermost optimizer, which applies the decay.

        Args:
            var_list: A list of variables to exclude. Defaults to `None`.
            var_names: A list of strings; a variable whose name contains
                one of them is excluded (e.g. `["bias"]`).
                Defaults to `None`.
        """
        self.inner_optimizer.exclude_from_weight_decay(
            var_list=var_list, var_names=var_names
        )

    @property
    def variables(self):
        return (list(keras_compat.optimizer_own_variables(self))
                + list(self.inner_optimizer.variables))

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    def scale_loss(self, loss):
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    def _build_for(self, trainable_variables):
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "Argument `trainable_variables` is required on the first "
                    "`apply`, to build the optimizer. "
                    "Received: trainable_variables=None"
                )
            return list(keras_compat.optimizer_built_variables(self))
        trainable_variables = list(trainable_variables)
        if not self.built:
            self.build(trainable_variables)
        return trainable_variables

    def get_config(self):
        return {
            "name": self.name,
            "optimizer": keras.optimizers.serialize(self.inner_optimizer),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["optimizer"] = keras.optimizers.deserialize(
            config["optimizer"], custom_objects=custom_objects
        )
        return cls(**config)


def innermost_optimizer(optimizer):
    """The optimizer at the bottom of a chain of `WrapperOptimizer`s."""
    while isinstance(optimizer, WrapperOptimizer):
        optimizer = optimizer.inner_optimizer
    return optimizer
