"""Batch-size finder: the largest batch that fits, or the fastest one.

`find_batch_size` trains a compiled model for a few steps at growing batch
sizes and reports what it measured, like Lightning's `scale_batch_size`:

* `mode="memory"` (the default on a GPU or TPU): the largest batch whose
  training step fits in accelerator memory. Batch sizes double from
  `start` until a step runs out of memory (or `max_batch_size` is
  reached), then a binary search between the last size that fitted and the
  first that did not narrows it to within 1/32.
* `mode="throughput"` (the default on CPU, where memory rarely binds): the
  batch size that trains the most examples per second. Sizes double from
  `start` until throughput has fallen twice in a row or `max_batch_size`
  is reached.

The model's weights, optimizer state and metrics are restored afterwards.
Examples per second is not the whole story: a bigger batch takes fewer
optimizer steps per epoch and usually wants a larger learning rate (the
recipes scale theirs with the square root of the batch), so on small data
a small batch can still reach a given accuracy sooner.

`find_image_classifier_batch_size` runs the finder on the model
`fit_image_classifier` would build for some data (the CLI's
`--find-batch-size`).
"""

import time

import keras
import numpy as np

from callbacks._internal import check_choice, check_number

MODES = ("auto", "memory", "throughput")
# Binary search stops when the gap between a size that fits and one that
# does not is at most this fraction of the former.
_RESOLUTION = 1 / 32


class BatchSizeResult:
    """What `find_batch_size` measured.

    Attributes:
        batch_size: The chosen batch size (largest that fits, or fastest).
        mode: `"memory"` or `"throughput"`.
        trials: One dict per batch size tried, in order:
            `{"batch_size", "fits", "seconds_per_step",
            "examples_per_second"}` (the timings `None` when it did not
            fit).
        limit_reached: Whether `max_batch_size` fitted (the true limit may
            be higher).
    """

    def __init__(self, batch_size, mode, trials, limit_reached):
        self.batch_size = batch_size
        self.mode = mode
        self.trials = trials
        self.limit_reached = limit_reached

    def table(self):
        """The trials as an aligned text table, the chosen size marked."""
        lines = [f"{'batch size':>10}  {'fits':>4}  {'s/step':>8}  "
                 f"{'examples/s':>10}"]
        for trial in sorted(self.trials, key=lambda t: t["batch_size"]):
            if trial["fits"]:
                timing = (f"{trial['seconds_per_step']:8.4f}  "
                          f"{trial['examples_per_second']:10.1f}")
            else:
                timing = f"{'-':>8}  {'-':>10}"
            mark = "  <- chosen" if trial["batch_size"] == self.batch_size \
                else ""
            lines.append(f"{trial['batch_size']:>10}  "
                         f"{'yes' if trial['fits'] else 'no':>4}  "
                         f"{timing}{mark}")
        return "\n".join(lines)

    def plot(self, ax=None):
        """Examples per second against batch size (matplotlib).

        Sizes that ran out of memory are marked with a red cross at the
        bottom, the chosen size with a vertical line.

        Args:
            ax: Axes to draw on. Defaults to `None` (a new figure).

        Returns:
            The matplotlib `Axes`.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        fits = sorted((t["batch_size"], t["examples_per_second"])
                      for t in self.trials if t["fits"])
        if fits:
            ax.plot(*zip(*fits, strict=True), "o-", label="fits")
        failed = [t["batch_size"] for t in self.trials if not t["fits"]]
        if failed:
            ax.plot(failed, [0] * len(failed), "rx", markersize=10,
                    label="out of memory")
        ax.axvline(self.batch_size, color="gray", linestyle="--",
                   label=f"chosen: {self.batch_size}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel("examples / s")
        ax.set_title(f"batch-size finder ({self.mode})")
        ax.legend()
        return ax

    def __repr__(self):
        return (f"BatchSizeResult(batch_size={self.batch_size}, "
                f"mode={self.mode!r}, trials={len(self.trials)})")


def is_out_of_memory(error):
    """Whether an exception raised by a training step means out of memory.

    TensorFlow raises `ResourceExhaustedError`; JAX and PyTorch raise
    errors whose message says `RESOURCE_EXHAUSTED` or `out of memory`.
    """
    text = f"{type(error).__name__}: {error}"
    return ("ResourceExhausted" in text or "RESOURCE_EXHAUSTED" in text
            or "out of memory" in text.lower())


def _has_accelerator():
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU")
                    or tf.config.list_logical_devices("TPU"))
    if keras.config.backend() == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if keras.config.backend() == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def largest_fitting(fits, start, limit, resolution=_RESOLUTION):
    """The largest batch size `b <= limit` for which `fits(b)` is true.

    Doubles from `start` until `fits` is false or `limit` is reached, then
    binary-searches between the last size that fitted and the first that
    did not, until their gap is at most `resolution` of the smaller.

    Args:
        fits: Function of a batch size returning whether it fits.
        start: First size tried.
        limit: Largest size tried.
        resolution: Relative precision of the binary search. Defaults to
            `1/32`.

    Returns:
        `(size, limit_reached)`; `size` is 0 if not even `start` fits.

    Example:

    >>> largest_fitting(lambda b: b <= 1000, start=16, limit=4096)
    (992, False)
    """
    low, high = 0, None
    size = start
    while True:
        if fits(size):
            low = size
            if size >= limit:
                return low, True
            size = min(2 * size, limit)
        else:
            high = size
            break
    while low and high - low > max(1, int(low * resolution)):
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return low, False


def _snapshot(model):
    variables = list(model.variables)
    if model.optimizer is not None:
        variables += list(model.optimizer.variables)
    return [(v, keras.ops.convert_to_numpy(v)) for v in variables]


def _check_data(data):
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise ValueError(
            "Argument `data` must be a pair `(x, y)` of NumPy arrays. "
            f"Received: data of type {type(data).__name__}"
        )
    x, y = (np.asarray(a) for a in data)
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(
            "Argument `data` must hold as many targets as examples, at "
            f"least one. Received: {len(x)} examples and {len(y)} targets"
        )
    return x, y


def find_batch_size(model, data, mode="auto", start=16, max_batch_size=None,
                    steps=3, verbose=0):
    """Find the largest batch that fits, or the one that trains fastest.

    Each batch size tried runs `steps` training steps (one `model.fit`
    epoch) to trace and warm up, then `steps` more that are timed. Batches
    are drawn from `data`, repeated when a batch is larger than it. See
    the module docstring for the two modes.

    Args:
        model: A compiled `keras.Model`.
        data: A pair `(x, y)` of NumPy arrays the model trains on (a
            few hundred examples are enough; they are repeated).
        mode: `"memory"`, `"throughput"` or `"auto"` (`"memory"` when a GPU
            or TPU is visible, else `"throughput"`). Defaults to `"auto"`.
        start: First batch size tried. Defaults to `16`.
        max_batch_size: Largest batch size tried. Defaults to `None` (8192
            for `"memory"`, 1024 for `"throughput"`).
        steps: Timed training steps per batch size. Defaults to `3`.
        verbose: 1 prints each trial. Defaults to `0`.

    Returns:
        A `BatchSizeResult` (`batch_size`, `trials`, `table()`, `plot()`).

    Raises:
        ValueError: For a model that is not compiled, bad data or
            arguments out of range, or when not even `start` fits.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.compile("sgd", "mse")
    >>> found = find_batch_size(model, (np.ones((8, 4)), np.ones((8, 2))),
    ...                         mode="throughput", start=4,
    ...                         max_batch_size=8, steps=1)
    >>> [t["batch_size"] for t in found.trials]
    [4, 8]

    References:
        - [Lightning `Tuner.scale_batch_size`](
          https://lightning.ai/docs/pytorch/stable/advanced/training_tricks.html)
        - [Goyal et al., 2017](https://arxiv.org/abs/1706.02677)
    """
    check_choice("mode", mode, MODES)
    check_number("start", start, low=1, integer=True)
    check_number("max_batch_size", max_batch_size, low=start, integer=True,
                 allow_none=True)
    check_number("steps", steps, low=1, integer=True)
    check_choice("verbose", verbose, (0, 1))
    if not isinstance(model, keras.Model) or getattr(
            model, "optimizer", None) is None:
        raise ValueError(
            "Argument `model` must be a compiled keras.Model. Received: "
            f"model={model!r}"
        )
    x, y = _check_data(data)
    if mode == "auto":
        mode = "memory" if _has_accelerator() else "throughput"
    if max_batch_size is None:
        max_batch_size = max(start, 8192 if mode == "memory" else 1024)
    if not model.optimizer.built:
        # Built now so its variables exist before the snapshot.
        model.optimizer.build(model.trainable_variables)
    saved = _snapshot(model)
    trials = []

    def trial(size):
        import tensorflow as tf

        order = np.arange(size) % len(x)
        # One batch, fed `steps` times: no host copies of the data.
        batches = tf.data.Dataset.from_tensors(
            (x[order], y[order])).repeat(steps)
        try:
            for _ in ("warm-up and trace", "timed"):
                begin = time.perf_counter()
                model.fit(batches, epochs=1, shuffle=False, verbose=0)
                seconds = (time.perf_counter() - begin) / steps
        except Exception as error:  # noqa: BLE001 (re-raised unless OOM)
            if not is_out_of_memory(error):
                raise
            trials.append({"batch_size": size, "fits": False,
                           "seconds_per_step": None,
                           "examples_per_second": None})
            if verbose:
                print(f"batch size {size}: out of memory")
            return False
        trials.append({"batch_size": size, "fits": True,
                       "seconds_per_step": seconds,
                       "examples_per_second": size / seconds})
        if verbose:
            print(f"batch size {size}: {seconds:.4f} s/step, "
                  f"{size / seconds:.1f} examples/s")
        return True

    try:
        if mode == "memory":
            chosen, limit_reached = largest_fitting(trial, start,
                                                    max_batch_size)
        else:
            chosen, limit_reached = _fastest(trial, trials, start,
                                             max_batch_size)
    finally:
        for variable, value in saved:
            variable.assign(value)
        model.reset_metrics()
    if not chosen:
        raise ValueError(
            "Argument `start`: not even a batch of this size fits in "
            f"memory. Received: start={start}"
        )
    return BatchSizeResult(chosen, mode, trials, limit_reached)


def _fastest(trial, trials, start, limit):
    """Double from `start` while throughput keeps up; the fastest size."""
    size, falls = start, 0
    while trial(size):
        speeds = [t["examples_per_second"] for t in trials if t["fits"]]
        falls = falls + 1 if len(speeds) > 1 and speeds[-1] < speeds[-2] \
            else 0
        if falls == 2 or size >= limit:
            break
        size = min(2 * size, limit)
    fitting = [t for t in trials if t["fits"]]
    if not fitting:
        return 0, False
    best = max(fitting, key=lambda t: t["examples_per_second"])
    return best["batch_size"], best["batch_size"] >= limit


def find_image_classifier_batch_size(data, backbone="auto", weights="auto",
                                     image_size=None, optimizer="adamw",
                                     num_examples=256, **kwargs):
    """`find_batch_size` on the model `fit_image_classifier` would build.

    The data are loaded as the recipe loads them; the model is built with
    every layer trainable (the most memory any training phase needs) and
    compiled with the recipe's optimizer and loss.

    Args:
        data: Training images, any source `fit_image_classifier` takes.
        backbone: As in `fit_image_classifier`. Defaults to `"auto"`.
        weights: As in `fit_image_classifier`. Defaults to `"auto"`.
        image_size: As in `fit_image_classifier`. Defaults to `None`.
        optimizer: Optimizer name. Defaults to `"adamw"`.
        num_examples: Training examples drawn from `data` for the trials.
            Defaults to `256`.
        **kwargs: Passed to `find_batch_size` (`mode`, `start`,
            `max_batch_size`, `steps`, `verbose`).

    Returns:
        A `BatchSizeResult`.
    """
    from recipes import _optimization
    from recipes.backbones import build_backbone, get_backbone_info
    from recipes.data import check_image_size, load_image_data
    from recipes.image_classifier import (
        build_image_classifier,
        resolve_backbone,
    )

    check_number("num_examples", num_examples, low=1, integer=True)
    size = check_image_size(image_size) if image_size is not None else None
    images = load_image_data(data, validation_split=0.0, image_size=size)
    backbone = resolve_backbone(backbone, images.image_shape)
    input_shape = images.image_shape
    if None in input_shape[:2]:
        input_shape = (*(size or get_backbone_info(backbone).native_size),
                       input_shape[2])
    target = None
    if isinstance(backbone, str) and not backbone.endswith(".keras"):
        info = get_backbone_info(backbone)
        target = (*(size or info.native_size or input_shape[:2]),
                  info.channels or input_shape[2])
    backbone_model, info, _ = build_backbone(backbone, weights,
                                             input_shape=target)
    model = build_image_classifier(
        backbone_model, info.preprocessing, input_shape=input_shape,
        value_range=images.value_range, num_classes=images.num_classes)
    model.compile(_optimization.make_optimizer(optimizer, 1e-3, None),
                  loss="categorical_crossentropy")
    train = images.train
    if size is not None:
        import tensorflow as tf

        train = train.map(lambda x, y: (tf.image.resize(x, size), y))
    x, y = [], []
    for image, label in train.take(num_examples).as_numpy_iterator():
        x.append(image.astype("float32"))
        y.append(label)
    y = np.eye(images.num_classes, dtype="float32")[np.asarray(y)]
    return find_batch_size(model, (np.stack(x), y), **kwargs)
