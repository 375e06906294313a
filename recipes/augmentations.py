"""Image augmentation policies by name: one registry for recipes, CLI and
tuner.

A recipe's `augment="..."` argument, the command line's `--augment`
choices and the tuner's `augment` knob all read this registry. Each policy
is a list of Keras's own augmentation layers, applied to training batches
by `recipes.data.make_pipeline`; adding a policy is one
`register_augmentation` call. (`augment="auto"` is settled by the image
recipe, `recipes.image_classifier.resolve_augment`, before it gets here.)
"""

import dataclasses
from collections.abc import Callable

import keras

from recipes._registry import Registry

__all__ = [
    "AugmentationInfo",
    "augmentation_layers",
    "get_augmentation_info",
    "list_augmentations",
    "register_augmentation",
]


@dataclasses.dataclass(frozen=True)
class AugmentationInfo:
    """An augmentation registry entry.

    Attributes:
        name: The registered name.
        factory: Callable `(value_range, seed) -> list of keras.layers.Layer`.
        description: One line for listings and help texts.
        built_from: Names of the Keras layers the policy stacks, in order.
    """

    name: str
    factory: Callable
    description: str
    built_from: tuple


_REGISTRY = Registry("augmentation")


def register_augmentation(name, factory, *, description, built_from):
    """Add an augmentation policy to the registry.

    Args:
        name: Lower-case name, unique (what users type).
        factory: Callable `(value_range, seed)` returning a list of Keras
            layers (new ones at each call); `value_range` is the images'
            maximum pixel value (255 or 1).
        description: One-line description.
        built_from: Names of the layers the factory stacks.

    Returns:
        The new `AugmentationInfo`.

    Raises:
        ValueError: If `name` is already registered.

    Example:

    >>> info = register_augmentation(
    ...     "vertical_flip",
    ...     lambda value_range, seed: [
    ...         keras.layers.RandomFlip("vertical", seed=seed)],
    ...     description="Vertical flips.", built_from=("RandomFlip",))
    >>> [type(l).__name__ for l in augmentation_layers("vertical_flip")]
    ['RandomFlip']
    >>> _REGISTRY.remove("vertical_flip")
    """
    return _REGISTRY.add(AugmentationInfo(name, factory, description,
                                          tuple(built_from)))


def list_augmentations():
    """Names of the registered augmentation policies, in registration order.

    Returns:
        A list of strings.

    Example:

    >>> list_augmentations()
    ['default', 'flip', 'mirror', 'randaugment', 'none']
    """
    return _REGISTRY.names()


def get_augmentation_info(name):
    """The `AugmentationInfo` registered under `name`.

    Args:
        name: A name from `list_augmentations()`.

    Returns:
        The `AugmentationInfo`.

    Raises:
        ValueError: If no policy has this name.

    Example:

    >>> get_augmentation_info("flip").built_from
    ('RandomTranslation', 'RandomRotation', 'RandomZoom', 'RandomFlip')
    """
    return _REGISTRY.get("name", name)


def augmentation_layers(augment, value_range=255.0, seed=None):
    """Keras augmentation layers for a named policy.

    Policies (all of them Keras's own layers):

    * `"default"`: small random translations (10%), rotations (±18°) and
      zooms (10%): label-preserving for photos and for digits or text,
      which a horizontal flip would corrupt.
    * `"flip"`: `"default"` plus horizontal flips, for natural photos.
    * `"mirror"`: horizontal flips only. A mirror image resamples no
      pixel, so it keeps the fine texture that interpolating shifts,
      rotations and zooms blur on small images; for photographs (not
      digits or text).
    * `"randaugment"`: `keras.layers.RandAugment` (Cubuk et al., 2020).
    * `"none"` or `None`: no augmentation.

    A `keras.layers.Layer` or a list of layers is used as given.

    Args:
        augment: Policy name (from `list_augmentations()`), layer, or list
            of layers.
        value_range: Maximum pixel value of the images (255 or 1).
            Defaults to `255.0`.
        seed: Seed of the random transformations. Defaults to `None`.

    Returns:
        A list of Keras layers (empty for no augmentation).

    Raises:
        ValueError: If `augment` is an unknown name.
        TypeError: If a list holds something other than Keras layers.

    Example:

    >>> [type(l).__name__ for l in augmentation_layers("flip")]
    ['RandomTranslation', 'RandomRotation', 'RandomZoom', 'RandomFlip']

    References:
        - [Cubuk et al., 2020](https://arxiv.org/abs/1909.13719)
    """
    if augment is None or augment is False:
        return []
    if isinstance(augment, keras.layers.Layer):
        return [augment]
    if isinstance(augment, list | tuple):
        for layer in augment:
            if not isinstance(layer, keras.layers.Layer):
                raise TypeError(
                    "Argument `augment` must be a policy name or Keras "
                    f"layers. Received: an element {layer!r}"
                )
        return list(augment)
    return _REGISTRY.get("augment", augment).factory(value_range, seed)


def _geometric(value_range, seed):
    return [
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant",
                                       seed=seed),
        keras.layers.RandomRotation(0.05, fill_mode="constant", seed=seed),
        keras.layers.RandomZoom(0.1, fill_mode="constant", seed=seed),
    ]


def _flip(value_range, seed):
    return [*_geometric(value_range, seed),
            keras.layers.RandomFlip("horizontal", seed=seed)]


_GEOMETRIC = ("RandomTranslation", "RandomRotation", "RandomZoom")
register_augmentation(
    "default", _geometric, built_from=_GEOMETRIC,
    description="Small shifts (10%), rotations (18 degrees) and zooms "
    "(10%); safe for digits and text.")
register_augmentation(
    "flip", _flip, built_from=(*_GEOMETRIC, "RandomFlip"),
    description="The default policy plus horizontal flips, for photos.")
register_augmentation(
    "mirror",
    lambda value_range, seed: [keras.layers.RandomFlip("horizontal",
                                                       seed=seed)],
    built_from=("RandomFlip",),
    description="Horizontal flips only, for photos (no resampling).")
register_augmentation(
    "randaugment",
    lambda value_range, seed: [keras.layers.RandAugment(
        value_range=(0, value_range), seed=seed)],
    built_from=("RandAugment",),
    description="RandAugment (Cubuk et al., 2020).")
register_augmentation(
    "none", lambda value_range, seed: [], built_from=(),
    description="No augmentation.")
