"""Lookahead: slow weights that follow any optimizer's fast weights."""

import keras
from keras import ops

from callbacks._internal import check_number, keras_compat, register
from recipes.optimizers._wrapper import WrapperOptimizer


@register
class Lookahead(WrapperOptimizer):
    """Lookahead: k fast steps forward, then one step back towards them.

    The wrapped ("fast") optimizer updates the weights as usual. Every
    `sync_period` of its steps, the slow weights `phi` move a fraction
    `slow_step_size` of the way towards the fast weights `theta` and the fast
    weights restart from there:

    ```
    phi = phi + slow_step_size * (theta - phi)
    theta = phi
    ```

    The slow weights are optimizer variables, initialised from the model's
    weights when the optimizer is built, and are saved and restored with the
    model together with the wrapped optimizer's slots. Learning rate, step
    counter, clipping, weight decay, EMA and gradient accumulation are the
    wrapped optimizer's (the sync counts its real updates and happens on the
    call that makes one). A variable's `constraint` (e.g.
    `keras.constraints.NonNeg()` or a pruning mask) is applied again to the
    synced weights, which the slow weights take too, so the weights satisfy
    it after every step as with any Keras optimizer; on a sync step the
    constraint thus runs twice (after the fast step and after the sync).
    Works inside `model.fit` under `tf.distribute` strategies, and on the
    JAX and torch backends (where the sync is a select, `ops.where`, instead
    of a conditional update of each device copy).

    Args:
        optimizer: The `keras.optimizers.Optimizer` instance to wrap.
        sync_period: Number of fast steps `k` between two syncs, >= 1.
            Defaults to `5`.
        slow_step_size: The slow step `alpha` in (0, 1]. Defaults to `0.5`.
        name: Name of the wrapper. Defaults to `"lookahead"`.

    Raises:
        TypeError: If `optimizer` is not a Keras optimizer.
        ValueError: If an argument is out of range.

    Example:

    >>> import keras
    >>> opt = Lookahead(keras.optimizers.Adam(1e-3), sync_period=5,
    ...                 slow_step_size=0.5)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=opt, loss="mse")

    References:
        - [Zhang et al., 2019](https://arxiv.org/abs/1907.08610),
          Algorithm 1.
    """

    def __init__(self, optimizer, sync_period=5, slow_step_size=0.5,
                 name="lookahead", **kwargs):
        sync_period = check_number(
            "sync_period", sync_period, low=1, integer=True
        )
        slow_step_size = float(
            check_number("slow_step_size", slow_step_size, low=0.0,
                         high=1.0, low_inclusive=False)
        )
        super().__init__(optimizer, name=name, **kwargs)
        self.sync_period = sync_period
        self.slow_step_size = slow_step_size

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Reading the model variable in the initializer starts phi at theta_0
        # even when the first build happens inside a traced function.
        self._slow_weights = [
            self.add_variable_from_reference(
                v, name="slow", initializer=_copy_of(v)
            )
            for v in var_list
        ]

    def apply(self, grads, trainable_variables=None):
        variables = self._build_for(trainable_variables)
        # Read before the update: with gradient accumulation the counter only
        # moves on the call that makes a real update, the one to sync after.
        before = ops.copy(self.inner_optimizer.iterations)
        self.inner_optimizer.apply(grads, trainable_variables)
        after = ops.copy(self.inner_optimizer.iterations)
        due = ops.logical_and(ops.not_equal(after, before),
                              ops.equal(ops.mod(after, self.sync_period), 0))
        if keras.backend.backend() != "tensorflow":
            self._sync_by_select(variables, due)
            return
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is None:
            self._sync(tf.distribute.get_strategy(), variables, due)
        else:
            context.merge_call(self._sync, args=(variables, due))

    def _sync_by_select(self, variables, due):
        # JAX traces the step statelessly: an assignment inside a `cond`
        # branch would leak a tracer, so both outcomes are computed and the
        # variables always assigned the selected one.
        slows = [self._slow_weights[keras_compat.variable_index(self, v)]
                 for v in variables]
        for variable, slow in zip(variables, slows, strict=True):
            fast = ops.convert_to_tensor(variable)
            old = ops.convert_to_tensor(slow)
            new = ops.where(due, old + self.slow_step_size * (fast - old),
                            old)
            self.assign(slow, new)
            self.assign(variable, ops.where(due, new, fast))
        for variable, slow in zip(variables, slows, strict=True):
            if variable.constraint is None:
                continue
            fast = ops.convert_to_tensor(variable)
            value = ops.cast(variable.constraint(fast), variable.dtype)
            value = ops.where(due, value, fast)
            self.assign(variable, value)
            self.assign(slow, ops.where(due, value,
                                        ops.convert_to_tensor(slow)))

    def _sync(self, distribution, variables, due):
        for variable in variables:
            slow = self._slow_weights[
                keras_compat.variable_index(self, variable)]
            distribution.extended.update(
                variable.value, self._sync_one, args=(slow.value, due),
                group=False,
            )
        # The sync overwrote the weights the wrapped optimizer had just
        # constrained: constrain them again, as Keras does after an update,
        # once every weight is synced (a constraint may read the others).
        for variable in variables:
            if variable.constraint is None:
                continue
            slow = self._slow_weights[
                keras_compat.variable_index(self, variable)]
            distribution.extended.update(
                variable.value, self._constrain_one,
                args=(slow.value, due, variable.constraint), group=False,
            )

    def _sync_one(self, fast, slow, due):
        # Runs once per device copy.
        def sync():
            new_slow = slow + self.slow_step_size * (fast - slow)
            slow.assign(new_slow)
            fast.assign(new_slow)
            return 0

        ops.cond(due, sync, lambda: 0)

    def _constrain_one(self, fast, slow, due, constraint):
        # Both copies take the constrained value, so the fast weights still
        # restart from the slow ones.
        def constrain():
            value = ops.cast(constraint(ops.convert_to_tensor(fast)),
                             fast.dtype)
            fast.assign(value)
            slow.assign(value)
            return 0

        ops.cond(due, constrain, lambda: 0)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sync_period": self.sync_period,
                "slow_step_size": self.slow_step_size,
            }
        )
        return config


def _copy_of(variable):
    def initializer(shape, dtype=None):
        # A copy: on JAX the cast is a no-op, and a slow weight sharing the
        # model weight's buffer makes the trainer donate it twice.
        return ops.copy(ops.cast(ops.convert_to_tensor(variable), dtype))

    return initializer
