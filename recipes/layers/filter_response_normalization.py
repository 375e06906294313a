"""Filter Response Normalization and the Thresholded Linear Unit.

Singh & Krishnan, 2020: a batch-independent replacement for batch
normalization followed by ReLU.
"""

import keras
from keras import ops

from callbacks._internal import register
from recipes.layers._channel_norm import (
    ChannelNormalization,
    channel_layout,
    check_axis,
    masked_mean,
)


@register
class FilterResponseNormalization(ChannelNormalization):
    """Filter Response Normalization (FRN) layer.

    Divides each channel of each sample by the root mean square of its
    responses over the spatial axes (no mean subtraction), then applies a
    learned per-channel scale and offset:

    `nu2 = mean(x ** 2)` over the spatial axes,
    `y = gamma * x / sqrt(nu2 + epsilon) + beta`.

    On a `(batch, features)` input there is no spatial axis, so `nu2 = x**2`
    (as in the paper for fully connected layers); there the paper makes
    `epsilon` learnable (`learned_epsilon=True`): the effective value is
    `epsilon + |epsilon_learned|`, with `epsilon_learned` starting at
    `1e-4`.

    With a mask (e.g. after `Masking`), `nu2` is the mean over the unmasked
    steps only, so padding does not change the outputs of the real steps;
    the mask is passed on.

    FRN is meant to be followed by `TLU` (`max(y, tau)`), which replaces
    ReLU: without the mean subtraction a plain ReLU can output zeros for a
    whole channel.

    Args:
        axis: The channel axis. Defaults to `-1`.
        epsilon: Positive constant (or lower bound of the learned epsilon)
            added to `nu2`. Defaults to `1e-6`.
        learned_epsilon: Whether to learn an extra positive epsilon.
            Defaults to `False`.
        center: Whether to add the learned offset `beta`. Defaults to `True`.
        scale: Whether to multiply by the learned scale `gamma`. Defaults to
            `True`.
        beta_initializer: Initializer for `beta`. Defaults to `"zeros"`.
        gamma_initializer: Initializer for `gamma`. Defaults to `"ones"`.
        beta_regularizer: Optional regularizer for `beta`. Defaults to
            `None`.
        gamma_regularizer: Optional regularizer for `gamma`. Defaults to
            `None`.
        beta_constraint: Optional constraint for `beta`. Defaults to `None`.
        gamma_constraint: Optional constraint for `gamma`. Defaults to
            `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`...).

    Raises:
        ValueError: If `epsilon <= 0`, or (when built) `axis` is the batch
            axis or out of range, or the channel size is undefined.

    Example:

    >>> import numpy as np
    >>> x = np.random.rand(2, 8, 8, 3).astype("float32")
    >>> y = TLU()(FilterResponseNormalization()(x))
    >>> tuple(y.shape)
    (2, 8, 8, 3)

    References:
        - [Singh & Krishnan, 2020](https://arxiv.org/abs/1911.09737):
          Filter Response Normalization Layer: Eliminating Batch Dependence
          in the Training of Deep Neural Networks.
    """

    def __init__(self, axis=-1, epsilon=1e-6, learned_epsilon=False,
                 **kwargs):
        super().__init__(axis=axis, epsilon=epsilon, **kwargs)
        self.learned_epsilon = bool(learned_epsilon)

    def build_extra(self, channels):
        self.epsilon_learned = None
        if self.learned_epsilon:
            self.epsilon_learned = self.add_weight(
                shape=(), name="epsilon_learned",
                initializer=keras.initializers.Constant(1e-4),
            )

    def normalize(self, inputs, reduction_axes, weights=None):
        if reduction_axes:
            nu2 = masked_mean(ops.square(inputs), reduction_axes, weights)
        else:
            nu2 = ops.square(inputs)
        epsilon = self.epsilon
        if self.epsilon_learned is not None:
            epsilon = epsilon + ops.abs(
                ops.cast(self.epsilon_learned, "float32"))
        return inputs * ops.rsqrt(nu2 + epsilon)

    def get_config(self):
        return {**super().get_config(),
                "learned_epsilon": self.learned_epsilon}


@register
class TLU(keras.layers.Layer):
    """Thresholded Linear Unit: `max(x, tau)` with a learned `tau` per channel.

    The activation that accompanies `FilterResponseNormalization`; with
    `tau = 0` it is ReLU.

    Args:
        axis: The channel axis. Defaults to `-1`.
        tau_initializer: Initializer for `tau`. Defaults to `"zeros"`.
        tau_regularizer: Optional regularizer for `tau`. Defaults to `None`.
        tau_constraint: Optional constraint for `tau`. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`...).

    Raises:
        ValueError: (when built) If `axis` is the batch axis or out of
            range, or the channel size is undefined.

    Example:

    >>> import numpy as np
    >>> y = TLU()(np.array([[-1.0, 2.0]], dtype="float32"))
    >>> y.numpy().tolist()
    [[0.0, 2.0]]

    References:
        - [Singh & Krishnan, 2020](https://arxiv.org/abs/1911.09737):
          Filter Response Normalization Layer: Eliminating Batch Dependence
          in the Training of Deep Neural Networks.
    """

    def __init__(self, axis=-1, tau_initializer="zeros", tau_regularizer=None,
                 tau_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.axis = check_axis(axis)
        self.tau_initializer = keras.initializers.get(tau_initializer)
        self.tau_regularizer = keras.regularizers.get(tau_regularizer)
        self.tau_constraint = keras.constraints.get(tau_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        _, channels, self._param_shape = channel_layout(self.axis,
                                                        input_shape)
        self.tau = self.add_weight(
            shape=(channels,), name="tau", initializer=self.tau_initializer,
            regularizer=self.tau_regularizer, constraint=self.tau_constraint,
        )

    def call(self, inputs):
        tau = ops.reshape(ops.cast(self.tau, inputs.dtype), self._param_shape)
        return ops.maximum(inputs, tau)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {
            "axis": self.axis,
            "tau_initializer": keras.initializers.serialize(
                self.tau_initializer),
            "tau_regularizer": keras.regularizers.serialize(
                self.tau_regularizer),
            "tau_constraint": keras.constraints.serialize(self.tau_constraint),
        }
        return {**super().get_config(), **config}
