"""BlurPool: anti-aliased downsampling (Zhang, 2019)."""

import math

import keras
import numpy as np
from keras import ops

from callbacks._internal import check_choice, check_number, register


def binomial_filter(size):
    """The normalized 2D binomial (blur) filter of side `size`."""
    row = np.array([math.comb(size - 1, k) for k in range(size)], "float64")
    kernel = np.outer(row, row)
    return kernel / kernel.sum()


@register
class BlurPool2D(keras.layers.Layer):
    """Blurs with a binomial filter, then subsamples: anti-aliased pooling.

    Strided convolutions and pooling subsample without low-pass filtering,
    so a one-pixel shift of the input can change the output a lot
    (aliasing). BlurPool applies a fixed binomial blur to each channel
    before subsampling by `strides`, which makes the network much more
    shift-invariant. Replace `MaxPooling2D(2)` by `MaxPooling2D(2,
    strides=1)` followed by `BlurPool2D()`, or a strided convolution by the
    same convolution with stride 1 (and its activation) followed by
    `BlurPool2D()`.

    Args:
        filter_size: Side of the binomial filter (1 to 7; 1 is plain
            subsampling, 3 is `[1, 2, 1]`, 5 is `[1, 4, 6, 4, 1]`).
            Defaults to `3`.
        strides: Subsampling factor, an integer >= 1. Defaults to `2`.
        padding: `"reflect"` (as in the paper) or `"zeros"`. Output size
            is `ceil(size / strides)`. Defaults to `"reflect"`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `"channels_last"`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`...).

    Raises:
        ValueError: If an argument is out of range, or (when built) the
            input is not 4D or its channels are undefined.

    Example:

    >>> import numpy as np
    >>> y = BlurPool2D()(np.random.rand(1, 8, 8, 3).astype("float32"))
    >>> tuple(y.shape)
    (1, 4, 4, 3)

    References:
        - [Zhang, 2019](https://arxiv.org/abs/1904.11486): Making
          Convolutional Networks Shift-Invariant Again.
    """

    def __init__(self, filter_size=3, strides=2, padding="reflect",
                 data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        self.filter_size = check_number("filter_size", filter_size, low=1,
                                        high=7, integer=True)
        self.strides = check_number("strides", strides, low=1, integer=True)
        self.padding = check_choice("padding", padding, {"reflect", "zeros"})
        self.data_format = check_choice(
            "data_format", data_format, {"channels_last", "channels_first"})

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "BlurPool2D expects 4D inputs. Received: input_shape="
                f"{tuple(input_shape)}"
            )
        channel_axis = -1 if self.data_format == "channels_last" else 1
        channels = input_shape[channel_axis]
        if channels is None:
            raise ValueError(
                "BlurPool2D needs a defined number of channels. Received: "
                f"input_shape={tuple(input_shape)}"
            )
        spatial = (input_shape[1:3] if self.data_format == "channels_last"
                   else input_shape[2:4])
        largest_pad = self.filter_size // 2
        if self.padding == "reflect" and any(
                size is not None and size <= largest_pad for size in spatial):
            raise ValueError(
                f"BlurPool2D with padding='reflect' and filter_size="
                f"{self.filter_size} needs spatial sizes of at least "
                f"{largest_pad + 1} (reflection pads {largest_pad} pixels); "
                "use padding='zeros' or a smaller filter_size. Received: "
                f"input_shape={tuple(input_shape)}"
            )
        blur = binomial_filter(self.filter_size)
        self._kernel = np.tile(blur[:, :, None, None],
                               (1, 1, channels, 1)).astype("float32")

    def _pad(self, inputs):
        total = self.filter_size - 1
        if total == 0:
            # Nothing to pad; torch's reflect pad refuses an all-zero width.
            return inputs
        before, after = total // 2, total - total // 2
        spatial = [(before, after)] * 2
        pad = ([(0, 0)] + spatial + [(0, 0)]
               if self.data_format == "channels_last"
               else [(0, 0), (0, 0)] + spatial)
        mode = "reflect" if self.padding == "reflect" else "constant"
        return ops.pad(inputs, pad, mode=mode)

    def call(self, inputs):
        padded = self._pad(inputs)
        if self.data_format == "channels_first":
            # Channels-last for the convolution: TensorFlow's CPU depthwise
            # convolution refuses channels-first input under Keras 3.13
            # (3.15 transposes it itself); same values either way.
            padded = ops.transpose(padded, (0, 2, 3, 1))
        outputs = ops.depthwise_conv(
            padded, ops.cast(self._kernel, inputs.dtype),
            strides=self.strides, padding="valid",
            data_format="channels_last")
        if self.data_format == "channels_first":
            outputs = ops.transpose(outputs, (0, 3, 1, 2))
        return outputs

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        for axis in axes:
            if shape[axis] is not None:
                shape[axis] = -(-shape[axis] // self.strides)
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "filter_size": self.filter_size,
                "strides": self.strides, "padding": self.padding,
                "data_format": self.data_format}
