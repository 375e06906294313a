"""Base class of optimizers that wrap another Keras optimizer.

A wrapper owns an inner optimizer and delegates the learning rate, the step
counter and the update to it; its own variables and the inner optimizer's
are saved together, so a model compiled with a wrapper reloads from `.keras`
with the wrapper's state and the inner slots.
"""

import keras

from recipes.optimizers._common import BASE_KWARGS


class WrapperOptimizer(keras.optimizers.Optimizer):
    """Delegating base: subclasses transform the inner optimizer's `apply`.

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
        for key in BASE_KWARGS:
            if kwargs.get(key) not in (None, False):
                raise ValueError(
                    f"{type(self).__name__} does not take `{key}`: set it on "
                    f"the wrapped optimizer. Received: {key}={kwargs[key]!r}"
                )
            kwargs.pop(key, None)
        kwargs.pop("ema_momentum", None)
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.inner_optimizer = optimizer

    def build(self, var_list):
        if self.built:
            return
        self.inner_optimizer.build(var_list)
        super().build(var_list)

    @property
    def variables(self):
        return self._variables + list(self.inner_optimizer.variables)

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
            return list(self._trainable_variables)
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
