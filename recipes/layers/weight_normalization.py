"""Weight normalization wrapper (Salimans & Kingma, 2016)."""

import keras
from keras import ops

from callbacks._internal import check_backend, register

_SUPPORTED = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
)


@register
class WeightNormalization(keras.layers.Wrapper):
    """Reparameterizes the kernel of a `Dense` or `Conv` layer as `g * v/|v|`.

    The wrapped layer's kernel becomes the direction `v`, and a new
    per-output-unit vector `g` holds its length, so the effective kernel is
    `w = g * v / ||v||` (the norm is taken over every axis but the last).
    Decoupling length and direction speeds up and conditions gradient
    descent, without any dependence on the batch.

    `g` starts at `||v||`, so before training the wrapped layer computes
    exactly what the unwrapped layer would. With `data_init=True`, the first
    call in training mode (the first batch of `fit`) instead runs the
    paper's data-dependent initialization: with `t = x * v / ||v||` (the
    pre-activation without bias) and per-unit mean `mu` and standard
    deviation `sigma` of `t` over that batch, it sets `g = 1 / sigma` and the
    bias to `-mu / sigma`, so the pre-activations of the first batch have
    zero mean and unit variance. This happens once: a flag saved with the
    weights records it.

    Supported layers: `Dense`, `Conv1D`, `Conv2D`, `Conv3D`.

    Args:
        layer: The `Dense` or `Conv` layer to wrap (built or not).
        data_init: Whether to run the data-dependent initialization on the
            first training batch. Defaults to `True`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`...).

    Raises:
        TypeError: If `layer` is not one of the supported layers.
        NotImplementedError: With `data_init=True` on the JAX backend
            (the initialization assigns trainable weights in the forward
            pass, which JAX's stateless step cannot keep).

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([
    ...     keras.Input((4,)),
    ...     WeightNormalization(keras.layers.Dense(8, activation="relu")),
    ...     keras.layers.Dense(1)])
    >>> model.compile("adam", "mse")
    >>> x = np.random.rand(16, 4).astype("float32")
    >>> history = model.fit(x, x[:, :1], epochs=1, verbose=0)

    References:
        - [Salimans & Kingma, 2016](https://arxiv.org/abs/1602.07868):
          Weight Normalization: A Simple Reparameterization to Accelerate
          Training of Deep Neural Networks.
    """

    def __init__(self, layer, data_init=True, **kwargs):
        if not isinstance(layer, _SUPPORTED):
            raise TypeError(
                "Argument `layer` must be a keras.layers.Dense, Conv1D, "
                f"Conv2D or Conv3D layer. Received: layer={layer!r}"
            )
        if not isinstance(data_init, bool):
            raise TypeError(
                "Argument `data_init` must be a bool. Received: "
                f"data_init={data_init!r}"
            )
        if data_init:
            check_backend(
                "WeightNormalization(data_init=True)", ("jax",),
                "the initialization assigns trainable weights inside the "
                "traced forward pass, which JAX's stateless step cannot "
                "keep; pass `data_init=False`",
            )
        super().__init__(layer, **kwargs)
        self.data_init = data_init

    def build(self, input_shape):
        super().build(input_shape)
        kernel = self.layer.kernel
        self._norm_axes = list(range(len(kernel.shape) - 1))
        norm = ops.sqrt(ops.sum(ops.square(kernel), axis=self._norm_axes))
        self.g = self.add_weight(
            shape=(kernel.shape[-1],), name="g",
            initializer=keras.initializers.Constant(
                ops.convert_to_numpy(norm)),
        )
        self.initialized = self.add_weight(
            shape=(), name="initialized", dtype="int32", trainable=False,
            initializer="zeros",
        )

    def _linear(self, inputs, kernel):
        if isinstance(self.layer, keras.layers.Dense):
            return ops.matmul(inputs, kernel)
        return self.layer.convolution_op(inputs, kernel)

    def _channel_shape(self, rank):
        if isinstance(self.layer, keras.layers.Dense) or (
                self.layer.data_format == "channels_last"):
            return (1,) * (rank - 1) + (-1,)
        return (1, -1) + (1,) * (rank - 2)

    def _data_init(self, t):
        """Sets `g` and the bias from the batch of unit-norm responses `t`."""
        t = ops.cast(t, "float32")
        channel_axis = len(t.shape) - 1
        if not isinstance(self.layer, keras.layers.Dense) and (
                self.layer.data_format == "channels_first"):
            channel_axis = 1
        axes = [i for i in range(len(t.shape)) if i != channel_axis]
        mean, variance = ops.moments(t, axes)
        inv_std = ops.rsqrt(variance + 1e-6)
        self.g.assign(inv_std)
        if self.layer.use_bias:
            self.layer.bias.assign(-mean * inv_std)
        self.initialized.assign(1)
        return 0

    def call(self, inputs, training=False):
        v = ops.cast(self.layer.kernel, "float32")
        v_norm = ops.sqrt(ops.sum(ops.square(v), axis=self._norm_axes))
        direction = ops.cast(v / v_norm, self.compute_dtype)
        t = self._linear(inputs, direction)
        if training and self.data_init:
            # The moments must come from the first batch itself, so the
            # initialization runs in the graph, once, guarded by a flag.
            ops.cond(
                ops.equal(self.initialized, 0),
                lambda: self._data_init(t),
                lambda: 0,
            )
        shape = self._channel_shape(len(t.shape))
        outputs = t * ops.reshape(ops.cast(self.g, t.dtype), shape)
        if self.layer.use_bias:
            outputs = outputs + ops.reshape(
                ops.cast(self.layer.bias, t.dtype), shape)
        if self.layer.activation is not None:
            outputs = self.layer.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "data_init": self.data_init}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # The base class pops "layer" from the dict it is given.
        return super().from_config(dict(config), custom_objects)
