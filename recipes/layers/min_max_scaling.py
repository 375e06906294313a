"""Min-max scaling preprocessing layer, adapted to data like `Normalization`."""

import keras
import numpy as np
from keras import ops

from callbacks._internal import check_number, register


def _check_feature_range(feature_range):
    ok = isinstance(feature_range, (list, tuple)) and len(feature_range) == 2
    if ok:
        low = check_number("feature_range[0]", feature_range[0])
        high = check_number("feature_range[1]", feature_range[1])
        ok = low < high
    if not ok:
        raise ValueError(
            "Argument `feature_range` must be a pair (min, max) with "
            f"min < max. Received: feature_range={feature_range!r}"
        )
    return float(low), float(high)


def _check_keep_axes(axis):
    if axis is None:
        return ()
    axes = (axis,) if isinstance(axis, int) else axis
    ok = isinstance(axes, (list, tuple)) and all(
        isinstance(a, int) and not isinstance(a, bool) and a != 0
        for a in axes)
    if not ok:
        raise ValueError(
            "Argument `axis` must be None, a non-zero integer or a tuple of "
            f"non-zero integers (axis 0 is the batch axis). Received: "
            f"axis={axis!r}"
        )
    return tuple(axes)


@register
class MinMaxScaling(keras.layers.Layer):
    """Scales features linearly so the adapted data spans `feature_range`.

    `y = (x - data_min) / (data_max - data_min) * (high - low) + low`

    where `(low, high) = feature_range`. Like `keras.layers.Normalization`
    (which standardizes to zero mean and unit variance), the statistics
    come either from `adapt(data)` or from the `data_min`/`data_max`
    arguments, and are computed separately for each index of the kept
    `axis`. A feature that is constant in the adapted data (zero range) is
    shifted to `low` instead of divided by zero. Values outside the adapted
    range map outside `feature_range` unless `clip=True`.

    The statistics are stored as (non-trainable) weights, so a saved model
    keeps them. Computation is done in float32.

    Args:
        feature_range: Pair `(low, high)` of the output range. Defaults to
            `(0.0, 1.0)`.
        axis: Axis or axes that keep separate statistics (the feature
            axes); every other axis is reduced. `None` means one scalar
            minimum and maximum. Defaults to `-1`.
        data_min: Optional minimum to use instead of `adapt`; a scalar or
            an array broadcastable to the kept axes. Defaults to `None`.
        data_max: Optional maximum to use instead of `adapt`. Given
            together with `data_min`. Defaults to `None`.
        clip: Whether to clip outputs to `feature_range`. Defaults to
            `False`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`...).

    Raises:
        ValueError: If `feature_range` is not an increasing pair, `axis`
            includes the batch axis, only one of `data_min`/`data_max` is
            given, or `data_min > data_max` somewhere. Calling the layer
            before `adapt` (without `data_min`/`data_max`) raises too.

    Example:

    >>> import numpy as np
    >>> layer = MinMaxScaling(feature_range=(-1.0, 1.0))
    >>> layer.adapt(np.array([[0.0, 10.0], [4.0, 30.0]]))
    >>> layer(np.array([[2.0, 20.0]])).numpy().tolist()
    [[0.0, 0.0]]

    References:
        - scikit-learn's `MinMaxScaler`, the same transform outside Keras.
    """

    def __init__(self, feature_range=(0.0, 1.0), axis=-1, data_min=None,
                 data_max=None, clip=False, **kwargs):
        super().__init__(**kwargs)
        self.feature_range = _check_feature_range(feature_range)
        self.axis = _check_keep_axes(axis)
        if (data_min is None) != (data_max is None):
            raise ValueError(
                "Arguments `data_min` and `data_max` must be given together. "
                f"Received: data_min={data_min!r}, data_max={data_max!r}"
            )
        self.input_data_min = data_min
        self.input_data_max = data_max
        if data_min is not None:
            low, high = np.asarray(data_min), np.asarray(data_max)
            if np.any(low > high) or not np.all(np.isfinite(low - high)):
                raise ValueError(
                    "Argument `data_min` must be finite and <= `data_max` "
                    f"everywhere. Received: data_min={data_min!r}, "
                    f"data_max={data_max!r}"
                )
        self.clip = bool(clip)
        self._adapted = data_min is not None
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        keep = []
        for a in self.axis:
            if not -rank <= a < rank or a % rank == 0:
                raise ValueError(
                    f"Argument `axis` must index non-batch dimensions of the "
                    f"input (rank {rank}). Received: axis={self.axis}"
                )
            keep.append(a % rank)
        if any(input_shape[a] is None for a in keep):
            raise ValueError(
                f"The kept axes {self.axis} must have defined sizes. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self._keep = sorted(keep)
        self._reduce = tuple(i for i in range(rank) if i not in self._keep)
        self._broadcast_shape = [
            input_shape[i] if i in self._keep else 1 for i in range(rank)
        ]
        stat_shape = tuple(input_shape[i] for i in self._keep)
        initial_min = initial_max = "zeros"
        if self.input_data_min is not None:
            initial_min = _constant(self.input_data_min, stat_shape)
            initial_max = _constant(self.input_data_max, stat_shape)
        self.data_min = self.add_weight(
            shape=stat_shape, name="data_min", initializer=initial_min,
            trainable=False, autocast=False)
        self.data_max = self.add_weight(
            shape=stat_shape, name="data_max", initializer=initial_max,
            trainable=False, autocast=False)

    def adapt(self, data, steps=None):
        """Computes the minimum and maximum of `data` along reduced axes.

        Args:
            data: A NumPy array, a tensor, or a `tf.data.Dataset` (or any
                iterable) yielding batches of features.
            steps: Optional number of batches to read from a dataset.
                Defaults to `None` (all of it).

        Raises:
            ValueError: If `data` is empty, holds non-finite values, or
                yields `(x, y)` pairs instead of features.
        """
        steps = check_number("steps", steps, low=1, integer=True,
                             allow_none=True)
        if hasattr(data, "shape"):
            batches = [data]
        else:
            batches = data.take(steps) if steps and hasattr(
                data, "take") else data
        low = high = None
        for count, batch in enumerate(batches):
            if steps is not None and count >= steps:
                break
            if isinstance(batch, (tuple, list, dict)):
                raise ValueError(
                    "Argument `data` must yield batches of features only; "
                    "for a dataset of (x, y) pairs adapt on "
                    "`dataset.map(lambda x, y: x)`. Received: data yielding "
                    f"a {type(batch).__name__} of {len(batch)}"
                )
            batch = np.asarray(ops.convert_to_numpy(batch), dtype="float64")
            if not self.built:
                self.build(batch.shape)
            if batch.size == 0:
                continue
            if not np.all(np.isfinite(batch)):
                raise ValueError(
                    "MinMaxScaling.adapt received non-finite values (NaN or "
                    "inf) in `data`."
                )
            b_low = np.min(batch, axis=self._reduce)
            b_high = np.max(batch, axis=self._reduce)
            low = b_low if low is None else np.minimum(low, b_low)
            high = b_high if high is None else np.maximum(high, b_high)
        if low is None:
            raise ValueError("MinMaxScaling.adapt received empty `data`.")
        self.data_min.assign(low.astype("float32"))
        self.data_max.assign(high.astype("float32"))
        self._adapted = True

    def load_own_variables(self, store):
        super().load_own_variables(store)
        self._adapted = True

    def call(self, inputs):
        if not self._adapted:
            raise ValueError(
                "MinMaxScaling must be adapted before it is used: call "
                "`layer.adapt(data)` or pass `data_min` and `data_max`."
            )
        x = ops.cast(inputs, "float32")
        data_min = ops.reshape(self.data_min, self._broadcast_shape)
        data_range = ops.reshape(self.data_max, self._broadcast_shape)
        data_range = data_range - data_min
        data_range = ops.where(data_range > 0, data_range, 1.0)
        low, high = self.feature_range
        outputs = (x - data_min) / data_range * (high - low) + low
        if self.clip:
            outputs = ops.clip(outputs, low, high)
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "feature_range": self.feature_range,
            "axis": self.axis[0] if len(self.axis) == 1 else (
                list(self.axis) or None),
            "data_min": _to_list(self.input_data_min),
            "data_max": _to_list(self.input_data_max),
            "clip": self.clip,
        }


def _constant(value, shape):
    return keras.initializers.Constant(
        np.broadcast_to(np.asarray(value, "float32"), shape))


def _to_list(value):
    if value is None:
        return None
    return np.asarray(value).tolist()
