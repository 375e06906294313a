"""Test-time augmentation (TTA): predictions averaged over views of images.

A classifier's prediction for an image is averaged with its predictions for
a few label-preserving views of it (Krizhevsky et al., 2012; fastai's
`Learner.tta`). The views are fixed, not random, so predictions are
repeatable:

* `"shift"`: the image and its four translations (up, down, left, right)
  by `shift` of its side (at least one pixel), the borders filled by
  repeating the edge pixels. Safe for any image whose label does not depend
  on a few pixels' position: digits, text, photos.
* `"flip"`: the `"shift"` views and the horizontal mirror of each (ten
  views), for natural photos. A mirrored digit or letter is another symbol
  (or none), so flips are only chosen for models trained with them.
* `"auto"`: `"flip"` for a model trained with horizontal flips (the image
  recipe's `augment="flip"` or `"mirror"`, or a `RandomFlip` layer among
  the user's augmentation layers), else `"shift"`.

Views are made on the raw images (before the model's own rescaling and
resizing) and predicted one view at a time, so memory stays that of one
prediction pass; the cost is one pass per view.

References:
    - [Krizhevsky et al., 2012](https://papers.nips.cc/paper/4824)
    - [Simonyan & Zisserman, 2015](https://arxiv.org/abs/1409.1556)
"""

import keras
import numpy as np

from callbacks._internal import check_choice, check_number

TTA_POLICIES = ("auto", "shift", "flip")
# A fixed translation of 5% of the side: the mean size of the image
# recipe's random translations (uniform up to 10%), so views stay within
# what an augmented model has seen, and one pixel for small images.
_SHIFT = 0.05


def trained_with_flips(augment):
    """Whether an image recipe's `augment` setting flips images
    horizontally.

    Args:
        augment: The `augment` of a resolved image-recipe config: a policy
            name or a list of Keras layers.

    Returns:
        `True` for `"flip"`, `"mirror"` or layers holding a horizontal
        `RandomFlip`.
    """
    if isinstance(augment, str):
        return augment in ("flip", "mirror")
    layers = augment if isinstance(augment, list | tuple) else [augment]
    return any(isinstance(layer, keras.layers.RandomFlip)
               and "horizontal" in layer.mode for layer in layers)


def resolve_tta(tta, augment=None):
    """The TTA policy for a `tta` argument, or `None` for no TTA.

    Args:
        tta: `False`/`None` (no TTA), `True` or `"auto"`, `"shift"` or
            `"flip"`.
        augment: The augmentation the model was trained with (see
            `trained_with_flips`), which `"auto"` follows. Defaults to
            `None` (no flips).

    Returns:
        `None`, `"shift"` or `"flip"`.

    Raises:
        ValueError: For another value of `tta`.

    Example:

    >>> resolve_tta(True, augment="default")
    'shift'
    >>> resolve_tta("auto", augment="flip")
    'flip'
    >>> resolve_tta(False) is None
    True
    """
    if tta is None or tta is False:
        return None
    if tta is True:
        tta = "auto"
    if not isinstance(tta, str):
        raise ValueError(
            "Argument `tta` must be True, False or one of "
            f"{list(TTA_POLICIES)}. Received: tta={tta!r}"
        )
    check_choice("tta", tta, TTA_POLICIES)
    if tta == "auto":
        return "flip" if trained_with_flips(augment) else "shift"
    return tta


def _translate(images, dy, dx):
    """Images moved by `(dy, dx)` pixels, edges repeated into the gap."""
    n, h, w = images.shape[:3]
    pad = ((0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)),
           (0, 0))
    padded = np.pad(images, pad, mode="edge")
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[:, top:top + h, left:left + w]


def tta_views(images, policy="shift", shift=_SHIFT):
    """The views of a batch of images that a TTA policy averages over.

    Args:
        images: Array of shape `(n, height, width, channels)`.
        policy: `"shift"` or `"flip"` (see the module docstring). Defaults
            to `"shift"`.
        shift: Translation as a fraction of each side (at least one pixel).
            Defaults to `0.05`.

    Yields:
        Arrays shaped like `images`, the unchanged images first.

    Raises:
        ValueError: For an unknown policy, a `shift` out of (0, 0.5) or
            images not of rank 4.

    Example:

    >>> images = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> views = list(tta_views(images, "shift"))
    >>> len(views), views[1][0, :, :, 0].tolist()[0]
    (5, [0.0, 1.0, 2.0, 3.0])
    """
    check_choice("policy", policy, ("shift", "flip"))
    check_number("shift", shift, low=0.0, high=0.5, low_inclusive=False,
                 high_inclusive=False)
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            "Argument `images` must have shape (n, height, width, "
            f"channels). Received: images.shape={images.shape}"
        )
    dy = max(1, round(shift * images.shape[1]))
    dx = max(1, round(shift * images.shape[2]))
    moves = [(0, 0), (dy, 0), (-dy, 0), (0, dx), (0, -dx)]
    for flip in (False, True) if policy == "flip" else (False,):
        source = images[:, :, ::-1] if flip else images
        for move in moves:
            yield _translate(source, *move) if move != (0, 0) else source


def predict_with_tta(predict, images, policy="shift", shift=_SHIFT):
    """Class probabilities averaged over the TTA views of `images`.

    Args:
        predict: Function from a batch of images to class probabilities
            (such as `model.predict`).
        images: Array of shape `(n, height, width, channels)`.
        policy: `"shift"` or `"flip"`. Defaults to `"shift"`.
        shift: Translation as a fraction of each side. Defaults to `0.05`.

    Returns:
        Float array `(n, num_classes)`: the mean of the views'
        probabilities.

    Example:

    >>> images = np.random.default_rng(0).random((3, 8, 8, 1))
    >>> mean = lambda x: np.stack([x.mean((1, 2, 3)), 1 - x.mean((1, 2, 3))], 1)
    >>> predict_with_tta(mean, images).shape
    (3, 2)
    """
    total, count = None, 0
    for view in tta_views(images, policy, shift):
        probabilities = np.asarray(predict(view), dtype="float64")
        total = probabilities if total is None else total + probabilities
        count += 1
    return total / count
