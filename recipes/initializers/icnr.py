"""ICNR initializer for sub-pixel convolution (Aitken et al., 2017)."""

import keras
from keras import ops

from callbacks._internal import check_number, register


@register
class ICNR(keras.initializers.Initializer):
    """Initializes a sub-pixel convolution so it starts as nearest upsampling.

    A sub-pixel (pixel-shuffle) upsampling layer is a convolution with
    `channels * scale**2` filters followed by
    `keras.ops.depth_to_space(x, scale)`. Initialized at random, the
    `scale**2` sub-pixel filters of each output channel differ and the
    upsampled image shows checkerboard artifacts. ICNR draws one kernel of
    `channels` filters from `initializer` and copies it to every sub-pixel
    position, so at initialization the convolution followed by
    `depth_to_space` equals the `channels`-filter convolution followed by
    nearest-neighbour upsampling: each `scale x scale` output block is
    constant.

    The copies follow the channel order of `keras.ops.depth_to_space` and
    `tf.nn.depth_to_space` in `channels_last` layout (output channel
    `k * channels + c` holds sub-pixel `k` of channel `c`).

    Args:
        initializer: The initializer of the base kernel (name, config or
            instance). Defaults to `"glorot_uniform"`.
        scale: The upsampling factor (`block_size` of `depth_to_space`), an
            integer >= 1. Defaults to `2`.

    Raises:
        ValueError: If `scale < 1`, or (when called) the last dimension of
            the requested shape is not a multiple of `scale**2`.

    Example:

    >>> import numpy as np
    >>> conv = keras.layers.Conv2D(
    ...     3 * 2**2, 3, padding="same", kernel_initializer=ICNR(scale=2))
    >>> conv.build((None, 4, 4, 1))
    >>> w = keras.ops.convert_to_numpy(conv.kernel)
    >>> w.shape
    (3, 3, 1, 12)
    >>> # The 4 sub-pixel positions start from one 3-channel kernel, so a
    >>> # pixel shuffle of the output (`depth_to_space`, block 2) starts as
    >>> # a nearest-neighbour upsampling: no checkerboard.
    >>> all(np.allclose(w[..., 3 * i:3 * i + 3], w[..., :3])
    ...     for i in range(4))
    True

    References:
        - [Aitken et al., 2017](https://arxiv.org/abs/1707.02937):
          Checkerboard artifact free sub-pixel convolution.
        - [Shi et al., 2016](https://arxiv.org/abs/1609.05158): Real-Time
          Single Image and Video Super-Resolution Using an Efficient
          Sub-Pixel Convolutional Neural Network.
    """

    def __init__(self, initializer="glorot_uniform", scale=2):
        self.initializer = keras.initializers.get(initializer)
        self.scale = check_number("scale", scale, low=1, integer=True)

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        copies = self.scale ** 2
        if not shape or shape[-1] % copies:
            raise ValueError(
                f"ICNR(scale={self.scale}) needs a kernel whose last "
                f"dimension is a multiple of scale**2 = {copies}. "
                f"Received: shape={shape}"
            )
        base = self.initializer(shape[:-1] + (shape[-1] // copies,),
                                dtype=dtype)
        return ops.tile(base, (1,) * (len(shape) - 1) + (copies,))

    def get_config(self):
        return {
            "initializer": keras.initializers.serialize(self.initializer),
            "scale": self.scale,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["initializer"] = keras.initializers.deserialize(
            config["initializer"])
        return cls(**config)
