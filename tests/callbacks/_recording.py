"""Test-only optimizers that record, in-graph, the learning rate and the
momentum Keras hands to `update_step` at each optimizer step."""

import keras
from keras import ops

MAX_STEPS = 4096


def _record(optimizer, log, value):
    index = ops.reshape(ops.cast(optimizer.iterations, "int32"), (1, 1))
    update = ops.reshape(ops.cast(value, "float32"), (1,))
    log.assign(ops.scatter_update(log, index, update))


class RecordingSGD(keras.optimizers.SGD):
    """SGD that writes the LR of step k into `lr_log[k]`."""

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
                ops.cast(self.momentum, "float32"))
        super().update_step(gradient, variable, learning_rate)


class RecordingAdam(keras.optimizers.Adam):
    """Adam that writes the LR and beta_1 of step k into logs."""

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
        _record(self, self.momentum_log, ops.cast(self.beta_1, "float32"))
        super().update_step(gradient, variable, learning_rate)
