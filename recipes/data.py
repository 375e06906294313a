"""Image data sources and the `tf.data` input pipeline of the image recipes.

`load_image_data` accepts every kind of image source the recipes take and
returns one `ImageData`: unbatched `(image, label)` datasets for training and
validation, the class names, and what the model needs to know about the raw
images (shape, value range). `make_pipeline` turns one of those datasets into
the batched, cached, augmented, prefetched pipeline `model.fit` consumes.

Sources:

* NumPy arrays `(x, y)`: `x` of shape `(n, height, width)` or
  `(n, height, width, channels)` with 1 or 3 channels, uint8 or float; `y`
  integer labels or strings (the class names are then the sorted strings).
* A directory with one sub-folder of images per class (read with
  `keras.utils.image_dataset_from_directory`).
* A TensorFlow Datasets name ("mnist", "tf_flowers", ...), with a `split`
  and an optional `data_dir`.
* A `tf.data.Dataset` of `(image, label)` pairs (batched or not).

Every malformed input raises one `ValueError` naming the problem before any
training starts.
"""

import dataclasses
import difflib
import math
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from callbacks._internal import check_choice, check_number
from recipes._splits import hold_out
from recipes.augmentations import augmentation_layers

_IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# In-memory caching is skipped above this many bytes of decoded images.
_CACHE_LIMIT_BYTES = 2 * 1024**3


@dataclasses.dataclass
class ImageData:
    """Images ready for the image recipes.

    Attributes:
        train: Unbatched `tf.data.Dataset` of `(image, label)` with int32
            labels.
        validation: Same for validation, or `None`.
        class_names: List of class names; label `i` is `class_names[i]`.
        image_shape: `(height, width, channels)` of the images the pipeline
            yields; height and width are `None` when sizes vary.
        value_range: 255.0 for images in [0, 255], 1.0 for images in [0, 1].
        num_train: Number of training examples.
        num_validation: Number of validation examples (0 without one).
        source: "numpy", "directory", "tfds" or "dataset".
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    class_names: list
    image_shape: tuple
    value_range: float
    num_train: int
    num_validation: int
    source: str

    @property
    def num_classes(self):
        return len(self.class_names)


@dataclasses.dataclass
class _Source:
    dataset: tf.data.Dataset
    labels: np.ndarray | None
    class_names: list | None
    image_shape: tuple
    value_range: float
    kind: str


def _fail(name, message, received):
    # Keras style: "Argument `x` must ... Received: x=<what was wrong>".
    raise ValueError(
        f"Argument `{name}` {message}. Received: {name}={received}")


def _from_arrays(data, name, class_names):
    if len(data) != 2:
        _fail(name, "must be a pair `(x, y)` of images and labels",
              f"a sequence of length {len(data)}")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.dtype.kind not in "uif":
        _fail(name, "must hold numeric images (uint8 or float)",
              f"x.dtype={x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        _fail(name, "must hold images of shape (n, height, width) or "
              "(n, height, width, channels) with 1 or 3 channels",
              f"x.shape={x.shape}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        _fail(name, "must hold one integer or string label per image",
              f"y.shape={y.shape}")
    if len(x) != len(y):
        _fail(name, "must hold as many labels as images",
              f"{len(x)} images and {len(y)} labels")
    if len(x) == 0:
        _fail(name, "must not be empty", "0 images")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        _fail(name, "must hold finite pixel values", "NaN or inf in x")
    if x.dtype.kind in "iu" and (x.min() < 0 or x.max() > 255):
        _fail(name, "must hold integer pixels in [0, 255]",
              f"values in [{x.min()}, {x.max()}]")
    names = class_names
    if y.dtype.kind in "USO":
        names = sorted({str(v) for v in y})
        if class_names is not None:
            unknown = sorted(set(names) - set(class_names))
            if unknown:
                _fail(name, "has labels that are not in `class_names`",
                      f"{unknown[:5]}")
            names = list(class_names)
        lookup = {n: i for i, n in enumerate(names)}
        y = np.array([lookup[str(v)] for v in y], dtype="int32")
    elif y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
        _fail(name, "must hold integer class labels",
              f"non-integer labels such as {y[np.mod(y, 1) != 0][0]}")
    elif y.dtype.kind not in "iuf":
        _fail(name, "must hold integer or string labels", f"y.dtype={y.dtype}")
    y = y.astype("int32")
    if x.dtype == np.uint8 or x.max() > 1.0:
        value_range = 255.0
    else:
        value_range = 1.0
    x = x.astype("uint8") if x.dtype.kind in "iu" else x.astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    return _Source(dataset, y, names, x.shape[1:], value_range, "numpy")


def _check_image_file(path):
    """Raise if `path` is not a complete image file (header and trailer)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(max(0, size - 12))
        tail = f.read()
    if head.startswith(b"\xff\xd8\xff"):
        # A JPEG ends with the EOI marker; truncated downloads lose it.
        ok = b"\xff\xd9" in tail
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        ok = b"IEND" in tail
    elif head.startswith((b"GIF87a", b"GIF89a")):
        ok = tail.endswith(b";")
    elif head.startswith(b"BM"):
        ok = size >= int.from_bytes(head[2:6], "little") > 0
    else:
        ok = False
    if not ok:
        raise ValueError(
            f"Corrupt or unsupported image file: {path} (expected a complete "
            f"JPEG, PNG, GIF or BMP file)."
        )


def _first_image_size(path):
    image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
    return tuple(int(d) for d in image.shape[:2])


# Folders with at least this many images show a progress bar while every
# image is decoded once before training.
_PROGRESS_FROM = 1000
BAD_IMAGE_ACTIONS = ("raise", "skip")


def decode_check(files, name, on_bad_image="raise", verbose=0):
    """Decode every image file once; return the paths that fail.

    A file whose header and trailer are intact can still hold corrupt data
    that only decoding finds; inside a training pipeline TensorFlow then
    stops with a graph error that does not name the file.

    Args:
        files: Image file paths.
        name: The argument the files came from (for messages).
        on_bad_image: `"raise"`: a `ValueError` naming the first bad file;
            `"skip"`: return the bad files, with a warning listing them.
            Defaults to `"raise"`.
        verbose: Show a progress bar for `_PROGRESS_FROM` files or more.
            Defaults to `0`.

    Returns:
        The list of bad files (empty with `"raise"`).

    Raises:
        ValueError: With `"raise"`, for the first file that is not a
            complete, decodable JPEG, PNG, GIF or BMP image.
    """
    bad = []
    for path in files:
        # A truncated file can still decode (JPEG fills the rest with
        # gray): its missing trailer is checked first.
        try:
            _check_image_file(path)
        except ValueError:
            if on_bad_image == "raise":
                raise
            bad.append(path)
    skipped = set(bad)
    files = [f for f in files if f not in skipped]
    progress = (keras.utils.Progbar(len(files), unit_name="image")
                if verbose and len(files) >= _PROGRESS_FROM else None)
    # Decoded in parallel by tf.data; the files whose decoding raises are
    # dropped by `ignore_errors`, so the missing indices are the bad files.
    decoded = tf.data.Dataset.from_tensor_slices(
        (np.arange(len(files)), list(files))).map(
        lambda i, path: (i, tf.shape(tf.io.decode_image(
            tf.io.read_file(path), expand_animations=False))),
        num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    good = np.zeros(len(files), bool)
    for count, (index, _) in enumerate(decoded.as_numpy_iterator(), 1):
        good[index] = True
        if progress is not None and (count % 100 == 0):
            progress.update(count)
    if progress is not None:
        progress.update(len(files))
    for index in np.flatnonzero(~good):
        path = files[index]
        if on_bad_image == "raise":
            # Decoded again, alone, for the decoder's own reason.
            try:
                tf.io.decode_image(tf.io.read_file(path),
                                   expand_animations=False)
                reason = "it failed to decode"
            except tf.errors.InvalidArgumentError as error:
                reason = error.message.strip()
            raise ValueError(
                f"Argument `{name}` holds an image file that does not "
                f"decode: {path} ({reason}). Replace or remove it, or pass "
                "`on_bad_image='skip'` to train without it. "
                f"Received: {name}={os.path.dirname(path)!r}"
            )
        bad.append(path)
    if bad:
        warnings.warn(
            f"Skipping {len(bad)} image file(s) of `{name}` that do not "
            f"decode (on_bad_image='skip'): {bad[:10]}"
            f"{' ...' if len(bad) > 10 else ''}", stacklevel=3)
    return bad


def _from_directory(directory, name, image_size, class_names,
                    on_bad_image="raise", verbose=0):
    if not os.path.isdir(directory):
        _fail(name, "must be an existing directory of class sub-folders or "
              "a TensorFlow Datasets name", repr(directory))
    folders = sorted(
        d for d in os.listdir(directory)
        if os.path.isdir(os.path.join(directory, d))
    )
    if class_names is not None and folders != sorted(class_names):
        _fail(name, "must hold one sub-folder per class of the training "
              f"data ({sorted(class_names)})",
              f"{directory!r} with class folders {folders}")
    # Keras reads a class folder's sub-folders too (the class is the
    # top-level folder), so every file is checked there as well.
    files = [
        os.path.join(root, f)
        for d in folders
        for root, _, names in sorted(os.walk(os.path.join(directory, d)))
        for f in sorted(names)
        if f.lower().endswith(_IMAGE_EXTENSIONS)
    ]
    if not files:
        _fail(name, "must hold class sub-folders with image files "
              f"({', '.join(_IMAGE_EXTENSIONS)})",
              f"{directory!r} with no image in its sub-folders")
    bad = set(decode_check(files, name, on_bad_image, verbose))
    if len(bad) == len(files):
        _fail(name, "must hold at least one image that decodes",
              f"{directory!r} where no image decodes")
    if image_size is None:
        image_size = _first_image_size(
            next(f for f in files if f not in bad))
    dataset = keras.utils.image_dataset_from_directory(
        directory, labels="inferred", label_mode="int",
        class_names=class_names, image_size=image_size, batch_size=None,
        shuffle=False, verbose=False,
    )
    names = list(dataset.class_names)
    lookup = {n: i for i, n in enumerate(names)}
    labels = np.array(
        [lookup[_class_folder(p, directory)] for p in dataset.file_paths
         if p not in bad],
        dtype="int32")
    if bad:
        # The bad files fail inside Keras's decoding map; exactly those
        # elements are dropped.
        dataset = dataset.ignore_errors()
    dataset = dataset.map(lambda x, y: (x, tf.cast(y, "int32")))
    return _Source(dataset, labels, names, (*image_size, 3), 255.0,
                   "directory")


def _class_folder(path, directory):
    """The top-level folder of `path` under `directory` (its class)."""
    relative = os.path.relpath(path, directory)
    return relative.split(os.sep)[0]


def _from_tfds(dataset_name, name, split, data_dir):
    import tensorflow_datasets as tfds

    builders = tfds.list_builders()
    if dataset_name not in builders:
        close = difflib.get_close_matches(dataset_name, builders, n=3)
        hint = f" Did you mean one of {close}?" if close else ""
        _fail(name, "must be an existing directory of class sub-folders or "
              f"a TensorFlow Datasets name.{hint}", repr(dataset_name))
    dataset, info = tfds.load(dataset_name, split=split, data_dir=data_dir,
                              as_supervised=True, with_info=True)
    image_key = next(
        (k for k, v in info.features.items()
         if isinstance(v, tfds.features.Image)), None)
    label = info.supervised_keys[1] if info.supervised_keys else None
    if image_key is None or label is None or not hasattr(
            info.features[label], "names"):
        _fail(name, "must name an image classification dataset (an image "
              "feature and a class label)", repr(dataset_name))
    shape = tuple(info.features[image_key].shape)
    dataset = dataset.map(lambda x, y: (x, tf.cast(y, "int32")))
    return _Source(dataset, None, list(info.features[label].names), shape,
                   255.0, "tfds")


def _from_dataset(dataset, name, class_names):
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        _fail(name, "must yield `(image, label)` pairs",
              f"element_spec={spec}")
    image_spec, label_spec = spec
    if image_spec.shape.rank == 4:
        dataset = dataset.unbatch()
        image_spec, label_spec = dataset.element_spec
    if image_spec.shape.rank == 2:
        dataset = dataset.map(lambda x, y: (x[..., None], y))
        image_spec = dataset.element_spec[0]
    if image_spec.shape.rank != 3 or image_spec.shape[-1] not in (1, 3):
        _fail(name, "must yield images of shape (height, width, channels) "
              "with 1 or 3 channels", f"image spec {image_spec}")
    if label_spec.shape.rank not in (0, None) or not (
            label_spec.dtype.is_integer):
        _fail(name, "must yield one integer label per image",
              f"label spec {label_spec}")
    # One pass reads the labels and, for float images, checks the pixels:
    # a NaN pixel would make the loss and then the weights NaN.
    floats = image_spec.dtype.is_floating
    pairs = np.array(list(dataset.map(lambda x, y: (
        tf.cast(y, "int64"),
        tf.reduce_all(tf.math.is_finite(x)) if floats else tf.constant(
            True))).as_numpy_iterator()), dtype="int64").reshape(-1, 2)
    labels, finite = pairs[:, 0].astype("int32"), pairs[:, 1].astype(bool)
    if len(labels) == 0:
        _fail(name, "must not be empty", "a dataset with no element")
    if not finite.all():
        _fail(name, "must hold finite pixels (a NaN or inf pixel makes the "
              "loss and then the weights NaN)",
              f"a dataset with {int((~finite).sum())} image(s) holding "
              f"NaN/inf, the first at element {int(np.argmin(finite))}")
    if image_spec.dtype == tf.uint8:
        value_range = 255.0
    else:
        peak = dataset.take(256).reduce(
            tf.constant(0.0), lambda m, e: tf.maximum(
                m, tf.reduce_max(tf.cast(e[0], "float32"))))
        value_range = 255.0 if float(peak) > 1.0 else 1.0
    dataset = dataset.map(lambda x, y: (x, tf.cast(y, "int32")))
    return _Source(dataset, labels, class_names,
                   tuple(image_spec.shape), value_range, "dataset")


def _load_source(data, name, *, split, data_dir, image_size, class_names,
                 on_bad_image="raise", verbose=0):
    if isinstance(data, tf.data.Dataset):
        return _from_dataset(data, name, class_names)
    if isinstance(data, os.PathLike) or (
            isinstance(data, str) and (os.sep in data or os.path.exists(data))):
        return _from_directory(os.fspath(data), name, image_size,
                               class_names, on_bad_image, verbose)
    if isinstance(data, str):
        return _from_tfds(data, name, split, data_dir)
    if isinstance(data, (tuple, list)):
        return _from_arrays(data, name, class_names)
    raise TypeError(
        f"Argument `{name}` must be NumPy arrays `(x, y)`, a directory, a "
        f"TensorFlow Datasets name or a `tf.data.Dataset`. "
        f"Received: {name} of type {type(data).__name__}"
    )


def _check_labels(source, name, num_classes):
    labels = source.labels
    if labels is None:
        return
    if labels.min() < 0 or (num_classes and labels.max() >= num_classes):
        bound = f"[0, {num_classes})" if num_classes else ">= 0"
        _fail(name, f"must hold labels in {bound}",
              f"labels in [{labels.min()}, {labels.max()}]")


def _count(source):
    if source.labels is not None:
        return len(source.labels)
    n = int(source.dataset.cardinality())
    if n < 0:
        n = int(source.dataset.reduce(0, lambda c, _: c + 1))
    return n


def load_image_data(data, *, validation_data=None, validation_split=0.2,
                    split="train", data_dir=None,
                    image_size=None, class_names=None, seed=0,
                    on_bad_image="raise", verbose=0):
    """Load any supported image source into train/validation datasets.

    When `validation_data` is not given, a fraction `validation_split` of the
    training examples is held out: a stratified split (same class
    proportions) for arrays, directories and datasets, the last part of the
    split (`"train[80%:]"`) for TensorFlow Datasets names.

    Args:
        data: NumPy arrays `(x, y)`, a directory of class sub-folders, a
            TensorFlow Datasets name, or a `tf.data.Dataset` of
            `(image, label)`.
        validation_data: Optional validation images, any kind accepted by
            `data` (a TFDS split name such as `"test"` when `data` is a TFDS
            name). Defaults to `None`.
        validation_split: Fraction held out from `data` when
            `validation_data` is `None`; 0 for no validation. Defaults to
            `0.2`.
        split: TFDS split of the training data. Defaults to `"train"`.
        data_dir: TFDS data directory. Defaults to `None` (TFDS default).
        image_size: `(height, width)` images are resized to when sizes vary
            (directories and TFDS datasets of mixed sizes). Defaults to
            `None` (the first image's size).
        class_names: Optional list of class names; labels must be in
            `[0, len(class_names))`. Defaults to `None` (inferred).
        seed: Seed of the validation split. Defaults to `0`.
        on_bad_image: What to do with an image file of a folder that does
            not decode (every image is decoded once before training):
            `"raise"` a `ValueError` naming it, or `"skip"` it with a
            warning. Defaults to `"raise"`.
        verbose: Show a progress bar while decoding large folders.
            Defaults to `0`.

    Returns:
        An `ImageData`.

    Raises:
        ValueError: For empty data, labels out of range or of different
            length than the images, a single class, non-image arrays, a
            missing directory or a corrupt image file (named).
        TypeError: If `data` is of an unsupported type.

    Example:

    >>> from recipes.datasets import load_digits_8x8
    >>> (x, y), _ = load_digits_8x8()
    >>> data = load_image_data((x, y), validation_split=0.25)
    >>> data.num_classes, data.num_train, data.num_validation
    (10, 1125, 375)
    """
    check_number("validation_split", validation_split, low=0.0, high=1.0,
                 high_inclusive=False)
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(class_names) < 2:
            _fail("class_names", "must name at least 2 classes",
                  f"class_names={class_names}")
    if image_size is not None:
        image_size = check_image_size(image_size)
    check_choice("on_bad_image", on_bad_image, BAD_IMAGE_ACTIONS)
    kwargs = dict(split=split, data_dir=data_dir, image_size=image_size,
                  on_bad_image=on_bad_image, verbose=verbose)
    train = _load_source(data, "data", class_names=class_names, **kwargs)
    names = class_names or train.class_names
    if train.labels is not None:
        if names is None:
            _check_labels(train, "data", None)
            names = [str(i) for i in range(int(train.labels.max()) + 1)]
        _check_labels(train, "data", len(names))
        if len(np.unique(train.labels)) < 2:
            _fail("data", "must hold at least 2 classes",
                  f"only class {names[int(train.labels[0])]!r}")
    image_shape = train.image_shape
    if validation_data is not None:
        if isinstance(data, str) and isinstance(validation_data, str) and (
                train.kind == "tfds"):
            val = _from_tfds(data, "validation_data", validation_data,
                             data_dir)
        else:
            val = _load_source(validation_data, "validation_data",
                               class_names=names, **kwargs)
        _check_labels(val, "validation_data", len(names))
        if tuple(val.image_shape) != tuple(image_shape):
            _fail("validation_data", "must hold images of the training "
                  f"shape {tuple(image_shape)}",
                  f"shape {tuple(val.image_shape)}")
        _check_value_range(val, "validation_data", train.value_range)
        train_ds, val_ds = train.dataset, val.dataset
        n_train, n_val = _count(train), _count(val)
    elif validation_split == 0:
        train_ds, val_ds, n_train, n_val = train.dataset, None, _count(train), 0
    elif train.kind == "tfds":
        if "[" in split or "+" in split:
            # "train[:10%]" + "[:80%]" does not parse, and "train+test"
            # would become "train + test[:80%]": all of train in both sets.
            _fail("split", "must be a plain split name when the validation "
                  "set is cut from it (or give `validation_data`)",
                  f"{split!r} with validation_split={validation_split}")
        cut = 100 - int(round(validation_split * 100))
        if not 0 < cut < 100:
            _fail("validation_split", "must leave at least 1% of a TFDS "
                  "split on each side (it is cut in whole percents)",
                  f"{validation_split}")
        head = _from_tfds(data, "data", f"{split}[:{cut}%]", data_dir)
        tail = _from_tfds(data, "data", f"{split}[{cut}%:]", data_dir)
        train_ds, val_ds = head.dataset, tail.dataset
        n_train, n_val = _count(head), _count(tail)
    else:
        train_ds, val_ds, n_train, n_val, kept = hold_out(
            train, validation_split, seed)
        if len(np.unique(kept)) < 2:
            _fail("data", "must hold at least 2 classes after the validation "
                  "split", f"{n_train} training examples")
    # Known sizes let Keras size its epochs and progress bars up front.
    train_ds = _with_cardinality(train_ds, n_train)
    val_ds = _with_cardinality(val_ds, n_val)
    return ImageData(train_ds, val_ds, list(names), tuple(image_shape),
                     train.value_range, n_train, n_val, train.kind)


def _check_value_range(source, name, value_range):
    # The model rescales every input by the training images' range, so
    # [0, 1] validation images against [0, 255] training ones would be
    # scored as nearly black images, silently.
    if source.value_range != value_range:
        _fail(name, "must hold pixels in the training images' range "
              f"[0, {value_range:g}]",
              f"pixels in [0, {source.value_range:g}]")


def _with_cardinality(dataset, n):
    if dataset is None or int(dataset.cardinality()) >= 0:
        return dataset
    return dataset.apply(tf.data.experimental.assert_cardinality(n))


def check_image_size(image_size):
    """`image_size` as a `(height, width)` tuple of positive ints.

    Raises:
        ValueError: If it is neither a positive int nor such a pair.
    """
    if isinstance(image_size, int | np.integer):
        image_size = (int(image_size), int(image_size))
    if not (isinstance(image_size, tuple | list) and len(image_size) == 2
            and all(isinstance(s, int | np.integer) and s > 0
                    for s in image_size)):
        raise ValueError(
            "Argument `image_size` must be a positive int or a pair "
            f"(height, width) of positive ints. Received: "
            f"image_size={image_size!r}"
        )
    return tuple(int(s) for s in image_size)


def _mixing(mixup, cutmix, seed):
    """A batch function applying MixUp and/or CutMix (one per batch)."""
    layers = []
    if mixup:
        layers.append(keras.layers.MixUp(alpha=mixup, seed=seed))
    if cutmix:
        layers.append(keras.layers.CutMix(factor=cutmix, seed=seed))
    if not layers:
        return None

    def apply(layer, images, labels):
        out = layer({"images": images, "labels": labels}, training=True)
        return out["images"], out["labels"]

    if len(layers) == 1:
        return lambda x, y: apply(layers[0], x, y)

    def either(x, y):
        # As in timm: each batch gets MixUp or CutMix with equal odds.
        def first():
            return apply(layers[0], x, y)

        def second():
            return apply(layers[1], x, y)

        return tf.cond(tf.random.uniform((), seed=seed) < 0.5, first, second)

    return either


def make_pipeline(dataset, *, num_classes, batch_size, training,
                  num_examples=None, image_size=None, augment=None,
                  value_range=255.0, mixup=0.0, cutmix=0.0, cache=True,
                  seed=None):
    """Build the batched `tf.data` pipeline of one split.

    Order: resize (only for images of varying size) -> cache (in memory,
    when it fits) -> shuffle (training only) -> batch -> augmentation
    layers (training only) -> MixUp/CutMix (training only) -> prefetch.
    Labels become one-hot float32 (what MixUp, CutMix and label smoothing
    need). Images stay raw (float32 in their original range): rescaling and
    backbone preprocessing live in the model.

    Args:
        dataset: Unbatched `(image, int label)` dataset.
        num_classes: Number of classes.
        batch_size: Global batch size.
        training: Whether this is the training split.
        num_examples: Number of examples (sizes the shuffle buffer and the
            cache decision). Defaults to `None` (buffer of 10,000, cache).
        image_size: `(height, width)` for images of varying size. Defaults
            to `None`.
        augment: Policy name or layers (see
            `recipes.augmentations.augmentation_layers`).
            Defaults to `None`.
        value_range: Maximum pixel value. Defaults to `255.0`.
        mixup: MixUp alpha; 0 disables it. Defaults to `0.0`.
        cutmix: CutMix factor; 0 disables it. Defaults to `0.0`.
        cache: Whether to cache decoded images in memory when they fit in
            2 GiB. Defaults to `True`.
        seed: Seed of the shuffle and augmentation. Defaults to `None`.

    Returns:
        A batched, prefetched `tf.data.Dataset`.

    Example:

    >>> import numpy as np
    >>> ds = tf.data.Dataset.from_tensor_slices(
    ...     (np.zeros((10, 8, 8, 1), "uint8"), np.arange(10) % 2))
    >>> batches = make_pipeline(ds, num_classes=2, batch_size=4,
    ...                         training=True)
    >>> [tuple(b[1].shape) for b in batches]
    [(4, 2), (4, 2), (2, 2)]
    """
    image_spec = dataset.element_spec[0]
    if image_spec.shape[0] is None or image_spec.shape[1] is None:
        if image_size is None:
            raise ValueError(
                "Argument `image_size` is required for images of varying "
                "sizes. Received: image_size=None"
            )
        size = list(image_size)
        dataset = dataset.map(
            lambda x, y: (tf.image.resize(x, size), y),
            num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        shape = dataset.element_spec[0].shape
        itemsize = dataset.element_spec[0].dtype.size
        nbytes = (num_examples or 0) * math.prod(shape) * itemsize
        if nbytes <= _CACHE_LIMIT_BYTES:
            dataset = dataset.cache()
    if training:
        buffer = min(num_examples or 10_000, 10_000)
        dataset = dataset.shuffle(buffer, seed=seed,
                                  reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(
        lambda x, y: (tf.cast(x, "float32"),
                      tf.one_hot(y, num_classes, dtype="float32")),
        num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        # Keras's random layers draw from a seed state they update per call;
        # parallel calls race on it, so with a seed they run one batch at a
        # time (each call is still multi-threaded) and runs are repeatable.
        parallel = tf.data.AUTOTUNE if seed is None else None
        layers = augmentation_layers(augment, value_range, seed)
        if layers:
            def augment_batch(x, y):
                for layer in layers:
                    x = layer(x, training=True)
                return x, y

            dataset = dataset.map(augment_batch, num_parallel_calls=parallel)
        mix = _mixing(mixup, cutmix, seed)
        if mix is not None:
            dataset = dataset.map(mix, num_parallel_calls=parallel)
    return dataset.prefetch(tf.data.AUTOTUNE)
