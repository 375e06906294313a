"""Sharpness-Aware Minimization as a model wrapper (a train-step concern)."""

import keras
from keras import ops

from callbacks._internal import (
    check_backend,
    check_number,
    keras_compat,
    register,
)


@register
class SAM(keras.Model):
    """Sharpness-Aware Minimization around any model, inside `model.fit`.

    SAM looks for weights whose whole neighbourhood has low loss. Each train
    step takes two forward/backward passes, so **a step costs about twice a
    plain step**:

    1. the gradient `g` of the loss at the weights `w`;
    2. the gradient of the loss at the perturbed weights `w + e`, with
       `e = rho * g / ||g||` (or, with `adaptive=True` (ASAM),
       `e = rho * w**2 * g / ||w * g||`);

    and the compiled optimizer applies the second gradient to `w`. The second
    pass runs the model statelessly on `w + e`, so the weights are never
    modified in place: this is what makes SAM work under `tf.distribute`
    strategies and with `steps_per_execution > 1`. Under a strategy each
    replica computes `e` from its own share of the batch (the paper's
    m-sharpness, with `m` the per-replica batch); normalization statistics
    and metrics are updated by the first pass only. (In Keras 3.15 /
    TF 2.21, `steps_per_execution > 1` together with `MirroredStrategy` fails
    for any model, SAM or not; each works on its own.) On the JAX backend the
    same two passes run in the JAX trainer's stateless step; the torch
    backend is refused (not implemented: its trainer differentiates with
    `loss.backward()`, which needs a third train step).

    `SAM(model)` is itself a Keras model: compile and fit it. When `model` is
    already compiled with a serializable configuration, the wrapper is
    compiled the same way. Save either the wrapper or `sam.model`.

    Args:
        model: The `keras.Model` to train.
        rho: Radius of the neighbourhood, > 0. Defaults to `0.05`.
        adaptive: Whether to use adaptive SAM (ASAM), whose neighbourhood
            scales with `|w|`; use a larger `rho` (e.g. `0.5`) then.
            Defaults to `False`.
        epsilon: Guards the division by the gradient norm.
            Defaults to `1e-12`.
        **kwargs: Keyword arguments of `keras.Model` (e.g. `name`).

    Raises:
        TypeError: If `model` is not a Keras model.
        ValueError: If `rho` is not > 0 or `adaptive` is not a bool.
        NotImplementedError: On the torch backend.

    Example:

    >>> import keras
    >>> inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> sam = SAM(inner, rho=0.05)
    >>> sam.compile(optimizer="sgd", loss="mse")
    >>> history = sam.fit(keras.ops.ones((8, 4)), keras.ops.ones((8, 1)),
    ...                   epochs=1, verbose=0)

    References:
        - [Foret et al., 2021](https://arxiv.org/abs/2010.01412),
          Algorithm 1.
        - [Kwon et al., 2021](https://arxiv.org/abs/2102.11600) (ASAM).
    """

    def __init__(self, model, rho=0.05, adaptive=False, epsilon=1e-12,
                 **kwargs):
        check_backend("SAM", ("torch",), "its two-pass train step is "
                      "written for the TensorFlow and JAX trainers")
        if not isinstance(model, keras.Model):
            raise TypeError(
                "Argument `model` must be a `keras.Model`. "
                f"Received: model={model!r}"
            )
        if not isinstance(adaptive, bool):
            raise ValueError(
                "Argument `adaptive` must be a bool. "
                f"Received: adaptive={adaptive!r}"
            )
        rho = float(check_number("rho", rho, low=0.0, low_inclusive=False))
        epsilon = float(check_number("epsilon", epsilon, low=0.0))
        super().__init__(**kwargs)
        self.model = model
        self.rho = rho
        self.adaptive = adaptive
        self.epsilon = epsilon
        compile_config = model.get_compile_config() if model.compiled else None
        if compile_config:
            self.compile_from_config(compile_config)

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def _perturbation(self, gradients, variables):
        if self.adaptive:
            scaled = [
                g * ops.abs(w)
                for g, w in zip(gradients, variables, strict=True)
            ]
        else:
            scaled = gradients
        norm = ops.sqrt(sum(ops.sum(ops.square(s)) for s in scaled))
        factor = self.rho / (norm + self.epsilon)
        if self.adaptive:
            return [
                factor * ops.square(w) * g
                for g, w in zip(gradients, variables, strict=True)
            ]
        return [factor * g for g in gradients]

    def train_step(self, *args):
        # Each backend's trainer calls its own `train_step` signature:
        # TensorFlow `(data)`, JAX `(state, data)` (stateless).
        if keras.backend.backend() == "jax":
            return self._jax_train_step(*args)
        return self._tf_train_step(*args)

    def _tf_train_step(self, data):
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                training=True,
            )
            scaled_loss = self.optimizer.scale_loss(loss)
        self._track_loss(loss, x)
        gradients = tape.gradient(scaled_loss, variables)
        present = [i for i, g in enumerate(gradients) if g is not None]
        values = [ops.convert_to_tensor(v) for v in variables]
        steps = self._perturbation(
            [ops.convert_to_tensor(gradients[i]) for i in present],
            [values[i] for i in present],
        )
        perturbed = list(values)
        for i, e in zip(present, steps, strict=True):
            perturbed[i] = values[i] + e
        mapping = list(zip(variables, perturbed, strict=True))
        with tf.GradientTape() as tape:
            tape.watch(perturbed)
            # Reads of the weights see w + e; writes (BN statistics, metric
            # or seed state) stay in the scope and are dropped.
            with keras.StatelessScope(state_mapping=mapping):
                y_adv = self(x, training=True)
                adv_loss = self.compute_loss(
                    x=x, y=y, y_pred=y_adv, sample_weight=sample_weight,
                    training=True,
                )
            adv_loss = self.optimizer.scale_loss(adv_loss)
        adv_gradients = tape.gradient(adv_loss, perturbed)
        self.optimizer.apply(adv_gradients, variables)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _jax_train_step(self, state, data):
        import jax

        trainable, non_trainable, optimizer_vars, metrics_vars = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        # `compute_loss_and_updates` is the JAX trainer's stateless loss
        # (its own `train_step` differentiates it the same way).
        grad_fn = jax.value_and_grad(keras_compat.jax_loss_and_updates(self),
                                     has_aux=True)
        (_, aux), gradients = grad_fn(
            trainable, non_trainable, metrics_vars, x, y, sample_weight,
            training=True, optimizer_variables=optimizer_vars,
        )
        loss, y_pred, non_trainable, metrics_vars = aux
        steps = self._perturbation(list(gradients), list(trainable))
        perturbed = [w + e for w, e in zip(trainable, steps, strict=True)]
        # The second pass sees the first one's state (as on TensorFlow,
        # where it reads the updated variables); its own updates of
        # normalization statistics and metrics are dropped.
        _, adv_gradients = grad_fn(
            perturbed, non_trainable, metrics_vars, x, y, sample_weight,
            training=True, optimizer_variables=optimizer_vars,
        )
        trainable, optimizer_vars = self.optimizer.stateless_apply(
            optimizer_vars, adv_gradients, trainable
        )
        mapping = list(zip(self.metrics_variables, metrics_vars, strict=True))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            self._track_loss(loss, x, replicas=1)
            logs = self.compute_metrics(x, y, y_pred,
                                        sample_weight=sample_weight)
        # (During `fit` the JAX trainer empties the variables themselves:
        # an unchanged metric keeps the value it came in with.)
        metrics_vars = [
            _or(scope.get_current_value(v), old)
            for v, old in mapping
        ]
        return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)

    def _track_loss(self, loss, x, replicas=None):
        # `compute_loss` divides by the replica count so that summed
        # gradients are right; the reported loss is the per-example mean.
        if replicas is None:
            import tensorflow as tf

            replicas = tf.distribute.get_strategy().num_replicas_in_sync
        batch_size = ops.shape(keras.tree.flatten(x)[0])[0]
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss * replicas, sample_weight=batch_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "model": keras.saving.serialize_keras_object(self.model),
                "rho": self.rho,
                "adaptive": self.adaptive,
                "epsilon": self.epsilon,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(
            config["model"], custom_objects=custom_objects
        )
        return cls(**config)


def _or(value, default):
    return default if value is None else value
