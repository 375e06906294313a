"""Instance normalization (Ulyanov et al., 2016)."""

from keras import ops

from callbacks._internal import register
from recipes.layers._channel_norm import ChannelNormalization, masked_mean


@register
class InstanceNormalization(ChannelNormalization):
    """Instance normalization layer.

    Normalizes each channel of each sample over its spatial (or time) axes,
    then applies a learned per-channel scale `gamma` and offset `beta`:

    `y = gamma * (x - mean(x)) / sqrt(var(x) + epsilon) + beta`,

    where the mean and variance are taken over every axis except the batch
    axis and the channel `axis`. Unlike `BatchNormalization` the statistics
    never depend on the other samples of the batch, so training and
    inference behave the same and no moving averages are kept.

    Relation to `keras.layers.GroupNormalization(groups=-1)`: on inputs of
    rank >= 3 both compute the same function (one group per channel). This
    layer computes the moments directly (no reshape into groups), and it
    refuses inputs without a spatial axis: on a `(batch, features)` input
    each "instance" would be a single value, so `GroupNormalization(
    groups=-1)` silently outputs `beta` for every sample, whereas this layer
    raises an error.

    With a mask (e.g. after `Masking` or `Embedding(mask_zero=True)`), the
    mean and variance are taken over the unmasked steps only, so padding
    does not change the outputs of the real steps; the mask is passed on.

    Statistics are computed in float32, so the layer is safe under the
    `mixed_bfloat16` and `mixed_float16` policies.

    Args:
        axis: The channel axis. Defaults to `-1`.
        epsilon: Small float added to the variance. Defaults to `1e-3`.
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
        ValueError: If `epsilon <= 0`, or (when built) the input has rank
            < 3, `axis` is the batch axis or out of range, or the channel
            size is undefined.

    Example:

    >>> import numpy as np
    >>> layer = InstanceNormalization()
    >>> y = layer(np.random.rand(2, 8, 8, 3).astype("float32"))
    >>> tuple(y.shape)
    (2, 8, 8, 3)

    References:
        - [Ulyanov et al., 2016](https://arxiv.org/abs/1607.08022):
          Instance Normalization: The Missing Ingredient for Fast
          Stylization.
    """

    min_rank = 3
    rank_hint = " (batch, spatial..., channels): it needs a spatial axis"

    def normalize(self, inputs, reduction_axes, weights=None):
        mean = masked_mean(inputs, reduction_axes, weights)
        variance = masked_mean(ops.square(inputs - mean), reduction_axes,
                               weights)
        return (inputs - mean) * ops.rsqrt(variance + self.epsilon)
