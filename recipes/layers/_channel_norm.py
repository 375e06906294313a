"""Shared base of the per-channel normalization layers of `recipes.layers`."""

import keras
from keras import ops

from callbacks._internal import check_number


def check_axis(axis):
    """Validate a channel `axis` argument (a Python int)."""
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(
            f"Argument `axis` must be an integer. Received: axis={axis!r}"
        )
    return axis


def channel_layout(axis, input_shape):
    """Resolve a channel axis against `input_shape`.

    Returns:
        `(channel_axis, channels, param_shape)`: the non-negative axis, its
        size and the shape that broadcasts a per-channel vector.

    Raises:
        ValueError: If `axis` is the batch axis or out of range, or the
            channel size is undefined.
    """
    rank = len(input_shape)
    if not -rank <= axis < rank or axis % rank == 0:
        raise ValueError(
            f"Argument `axis` must index a non-batch dimension of the "
            f"input (rank {rank}). Received: axis={axis}"
        )
    channel_axis = axis % rank
    channels = input_shape[channel_axis]
    if channels is None:
        raise ValueError(
            f"The channel axis {axis} of the input must have a defined "
            f"size. Received: input_shape={tuple(input_shape)}"
        )
    param_shape = [1] * rank
    param_shape[channel_axis] = channels
    return channel_axis, channels, param_shape


class ChannelNormalization(keras.layers.Layer):
    """Base class: per-channel `gamma`/`beta` around a `normalize` step.

    Subclasses implement `normalize(inputs, reduction_axes, weights)` on
    float32 inputs; the base class validates the channel axis, creates the
    affine parameters, computes in float32 (mixed-precision safe) and
    serializes. A Keras mask (e.g. from `Masking` or `Embedding(mask_zero=
    True)`) becomes `weights`, 1 on real and 0 on masked entries, so the
    statistics are taken over the real steps only (`masked_mean`).
    """

    min_rank = 2
    rank_hint = ""

    def __init__(
        self,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.axis = check_axis(axis)
        self.epsilon = check_number("epsilon", epsilon, low=0.0,
                                    low_inclusive=False)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.beta_constraint = keras.constraints.get(beta_constraint)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        if rank < self.min_rank:
            raise ValueError(
                f"{type(self).__name__} expects inputs of rank >= "
                f"{self.min_rank}{self.rank_hint}. Received: input_shape="
                f"{tuple(input_shape)}"
            )
        self._channel_axis, channels, self._param_shape = channel_layout(
            self.axis, input_shape)
        self._reduction_axes = [
            i for i in range(1, rank) if i != self._channel_axis
        ]
        self.input_spec = keras.layers.InputSpec(
            ndim=rank, axes={self._channel_axis: channels}
        )
        self.gamma = None
        self.beta = None
        if self.scale:
            self.gamma = self.add_weight(
                shape=(channels,), name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
            )
        if self.center:
            self.beta = self.add_weight(
                shape=(channels,), name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
            )
        self.build_extra(channels)

    def build_extra(self, channels):
        """Hook for subclasses that own more variables."""

    def _broadcast(self, variable):
        return ops.reshape(ops.cast(variable, "float32"), self._param_shape)

    def call(self, inputs, mask=None):
        x = ops.cast(inputs, "float32")
        weights = None
        if mask is not None and self._reduction_axes:
            # As in BatchNormalization: the mask covers every axis but the
            # last one.
            if len(mask.shape) != len(x.shape) - 1:
                raise ValueError(
                    f"{type(self).__name__} expects a mask of rank "
                    f"{len(x.shape) - 1} for inputs of rank {len(x.shape)}. "
                    f"Received: mask.shape={tuple(mask.shape)}"
                )
            weights = ops.broadcast_to(
                ops.expand_dims(ops.cast(mask, "float32"), -1), ops.shape(x))
        outputs = self.normalize(x, self._reduction_axes, weights)
        if self.gamma is not None:
            outputs = outputs * self._broadcast(self.gamma)
        if self.beta is not None:
            outputs = outputs + self._broadcast(self.beta)
        return ops.cast(outputs, self.compute_dtype)

    def normalize(self, inputs, reduction_axes, weights=None):
        raise NotImplementedError("Subclasses implement `normalize`.")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": keras.initializers.serialize(
                self.beta_initializer),
            "gamma_initializer": keras.initializers.serialize(
                self.gamma_initializer),
            "beta_regularizer": keras.regularizers.serialize(
                self.beta_regularizer),
            "gamma_regularizer": keras.regularizers.serialize(
                self.gamma_regularizer),
            "beta_constraint": keras.constraints.serialize(
                self.beta_constraint),
            "gamma_constraint": keras.constraints.serialize(
                self.gamma_constraint),
        }
        return {**super().get_config(), **config}


def masked_mean(x, axes, weights):
    """Mean of `x` over `axes`, counting only entries of weight 1.

    `weights=None` is the plain mean. A sample whose entries are all masked
    gets a zero mean (no division by zero).
    """
    if weights is None:
        return ops.mean(x, axis=axes, keepdims=True)
    count = ops.sum(weights, axis=axes, keepdims=True)
    total = ops.sum(x * weights, axis=axes, keepdims=True)
    return total / ops.maximum(count, 1.0)
