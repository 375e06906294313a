"""Test-only optimizers that record, in-graph, the learning rate and the
momentum Keras hands to `update_step` at each optimizer step."""

import keras
from keras import ops

MAX_STEPS = 4096


def _record(optimizer, log, value):
    index = ops.reshape(ops.cast(optimizer.iterations, "int32"), (1, 1))
    update = ops.reshape(ops.cast(value, "float32"), (1,))
    log.assign(ops.scatter_update(log, index, update))


class _Recording:
    """Mixin: logs the LR and the momentum hyperparameter of each step."""

    MOMENTUM = "momentum"

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.lr_log = self.add_variable((MAX_STEPS,), initializer="zeros",
                                        name="lr_log")
        self.momentum_log = self.add_variable(
            (MAX_STEPS,), initializer="zeros", name="momentum_log")

    def update_step(self, gradient, variable, learning_rate):
        _record(self, self.lr_log, learning_rate)
        _record(self, self.momentum_log,
                ops.cast(getattr(self, self.MOMENTUM), "float32"))
        super().update_step(gradient, variable, learning_rate)


class RecordingSGD(_Recording, keras.optimizers.SGD):
    """SGD that writes the LR (momentum) of step k into `lr_log[k]`."""


class RecordingAdam(_Recording, keras.optimizers.Adam):
    """Adam that writes the LR (beta_1) of step k into `lr_log[k]`."""

    MOMENTUM = "beta_1"
