"""DropBlock: structured dropout for convolutional feature maps."""

import keras
from keras import ops

from callbacks._internal import check_choice, check_number, register


@register
class DropBlock(keras.layers.Layer):
    """Drops contiguous square blocks of a 2D feature map while training.

    Neighbouring activations of a feature map are strongly correlated, so
    ordinary dropout barely removes information from convolutional layers.
    DropBlock zeroes whole `block_size x block_size` squares (independently
    for each channel and sample), then rescales the remaining activations
    so that the sum of the map is preserved. At inference it is the
    identity.

    Block centres are drawn, among the positions where a whole block fits,
    with the paper's probability
    `gamma = rate / block_size**2 * H * W / ((H - block_size + 1) *
    (W - block_size + 1))`, so that about a fraction `rate` of the units is
    dropped (slightly less where blocks overlap).

    Args:
        rate: Target fraction of dropped units (`1 - keep_prob` in the
            paper), in `[0, 1)`. Defaults to `0.1`.
        block_size: Side of the dropped squares, an integer >= 1 (1 is
            plain dropout). Defaults to `7`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `"channels_last"`.
        seed: Optional integer seed. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`...).

    Raises:
        ValueError: If an argument is out of range, or (when built) the
            input is not 4D or smaller than `block_size`.

    Example:

    >>> import numpy as np
    >>> x = np.ones((2, 16, 16, 3), dtype="float32")
    >>> y = DropBlock(rate=0.2, block_size=3, seed=0)(x, training=True)
    >>> tuple(y.shape)
    (2, 16, 16, 3)

    References:
        - [Ghiasi et al., 2018](https://arxiv.org/abs/1810.12890):
          DropBlock: A regularization method for convolutional networks.
    """

    def __init__(self, rate=0.1, block_size=7, data_format="channels_last",
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_number("rate", rate, low=0.0, high=1.0,
                                 high_inclusive=False)
        self.block_size = check_number("block_size", block_size, low=1,
                                       integer=True)
        self.data_format = check_choice(
            "data_format", data_format, {"channels_last", "channels_first"})
        self.seed = check_number("seed", seed, integer=True, allow_none=True)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def _spatial_axes(self):
        return (1, 2) if self.data_format == "channels_last" else (2, 3)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "DropBlock expects 4D inputs (batch, height, width, channels)"
                f". Received: input_shape={tuple(input_shape)}"
            )
        for axis in self._spatial_axes():
            size = input_shape[axis]
            if size is not None and size < self.block_size:
                raise ValueError(
                    f"DropBlock(block_size={self.block_size}) needs spatial "
                    f"sizes >= block_size. Received: input_shape="
                    f"{tuple(input_shape)}"
                )

    def call(self, inputs, training=False):
        if not training or self.rate == 0.0:
            return inputs
        h_axis, w_axis = self._spatial_axes()
        shape = ops.shape(inputs)
        height, width = shape[h_axis], shape[w_axis]
        size = self.block_size
        valid = ops.cast((height - size + 1) * (width - size + 1), "float32")
        gamma = (self.rate / size ** 2
                 * ops.cast(height * width, "float32") / valid)
        # Block centres only where the whole block fits inside the map.
        rows = ops.arange(height)
        cols = ops.arange(width)
        half = size // 2
        fits_h = (rows >= half) & (rows < height - (size - 1 - half))
        fits_w = (cols >= half) & (cols < width - (size - 1 - half))
        fits = ops.cast(fits_h[:, None] & fits_w[None, :], "float32")
        fits = ops.reshape(fits, (1, height, width, 1) if h_axis == 1
                           else (1, 1, height, width))
        noise = keras.random.uniform(shape, seed=self.seed_generator)
        centres = ops.cast(noise < gamma, "float32") * fits
        dropped = ops.max_pool(centres, pool_size=size, strides=1,
                               padding="same", data_format=self.data_format)
        keep = 1.0 - dropped
        total = ops.cast(ops.size(keep), "float32")
        scale = total / ops.maximum(ops.sum(keep), 1.0)
        return inputs * ops.cast(keep * scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate,
                "block_size": self.block_size,
                "data_format": self.data_format, "seed": self.seed}
