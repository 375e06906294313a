"""Stochastic depth: drop whole residual branches per sample while training.

Huang et al., 2016 drop the residual branch of a block at random during
training. `DropPath` is the per-sample form used by modern networks
(EfficientNet, ConvNeXt, ViT): each sample of the batch keeps the branch
with probability `1 - rate`, and kept branches are scaled by `1 / (1 -
rate)` so that at inference the layer is the identity.
"""

import keras
from keras import ops

from callbacks._internal import check_number, register


def _drop_path(inputs, rate, seed_generator):
    if rate == 0.0:
        return inputs
    keep = 1.0 - rate
    mask_shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
    noise = keras.random.uniform(mask_shape, seed=seed_generator)
    mask = ops.cast(noise < keep, inputs.dtype)
    return inputs * mask / ops.cast(keep, inputs.dtype)


@register
class DropPath(keras.layers.Layer):
    """Drops a residual branch for random samples of the batch.

    In training mode each sample is zeroed with probability `rate` and the
    kept samples are scaled by `1 / (1 - rate)`; at inference the layer is
    the identity. Put it at the end of a residual branch, before the
    addition: `x + DropPath(rate)(branch(x))`.

    Args:
        rate: Probability of dropping the branch of a sample, in `[0, 1)`.
            Defaults to `0.1`.
        seed: Optional integer seed of the random mask. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`...).

    Raises:
        ValueError: If `rate` is not in `[0, 1)`.

    Example:

    >>> import numpy as np
    >>> x = np.ones((4, 3), dtype="float32")
    >>> y = DropPath(0.5, seed=1)(x, training=False)
    >>> bool(np.all(y.numpy() == x))
    True

    References:
        - [Huang et al., 2016](https://arxiv.org/abs/1603.09382): Deep
          Networks with Stochastic Depth.
        - [Larsson et al., 2017](https://arxiv.org/abs/1605.07648):
          FractalNet (drop-path).
    """

    def __init__(self, rate=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_number("rate", rate, low=0.0, high=1.0,
                                 high_inclusive=False)
        self.seed = check_number("seed", seed, integer=True, allow_none=True)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.supports_masking = True

    def call(self, inputs, training=False):
        if not training:
            return inputs
        return _drop_path(inputs, self.rate, self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@register
class StochasticDepth(keras.layers.Layer):
    """Residual merge with stochastic depth: `shortcut + DropPath(residual)`.

    Called on `[shortcut, residual]`. In training mode the residual branch of
    each sample survives with probability `survival_probability` (scaled by
    its inverse when kept); at inference the output is `shortcut +
    residual`, so the trained network needs no rescaling.

    Args:
        survival_probability: Probability of keeping the residual branch of
            a sample, in `(0, 1]`. Defaults to `0.8`.
        seed: Optional integer seed of the random mask. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`...).

    Raises:
        ValueError: If `survival_probability` is not in `(0, 1]`, or (when
            built) the inputs are not two tensors of the same shape.

    Example:

    >>> import numpy as np
    >>> shortcut = np.ones((2, 3), dtype="float32")
    >>> residual = np.full((2, 3), 2.0, dtype="float32")
    >>> StochasticDepth(0.5)([shortcut, residual]).numpy().tolist()
    [[3.0, 3.0, 3.0], [3.0, 3.0, 3.0]]

    References:
        - [Huang et al., 2016](https://arxiv.org/abs/1603.09382): Deep
          Networks with Stochastic Depth.
    """

    def __init__(self, survival_probability=0.8, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.survival_probability = check_number(
            "survival_probability", survival_probability, low=0.0, high=1.0,
            low_inclusive=False)
        self.seed = check_number("seed", seed, integer=True, allow_none=True)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def build(self, input_shape):
        shapes_ok = (
            isinstance(input_shape, (list, tuple))
            and len(input_shape) == 2
            and all(isinstance(s, (list, tuple)) for s in input_shape)
        )
        if not shapes_ok or tuple(input_shape[0]) != tuple(input_shape[1]):
            raise ValueError(
                "StochasticDepth expects a list of two inputs of the same "
                f"shape, [shortcut, residual]. Received: input_shape="
                f"{input_shape}"
            )

    def call(self, inputs, training=False):
        shortcut, residual = inputs
        if training:
            residual = _drop_path(residual, 1.0 - self.survival_probability,
                                  self.seed_generator)
        return shortcut + residual

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(),
                "survival_probability": self.survival_probability,
                "seed": self.seed}
