"""The image recipe's settings: keywords -> config -> plan.

`fit_image_classifier` binds its flat keywords to an
`ImageClassifierConfig` (frozen, checked when made), then `resolve` settles
every `"auto"` for the loaded data and runtime into an
`ImageClassifierPlan`: what the run trains, what `run.json` records and
what `recipes.tuning.ImageClassifierHyperModel` reads. Each rule lives
here once (`resolve_backbone`, `resolve_epochs`, `resolve_augment`,
`learning_rate_scale`, ...).
"""

import dataclasses
import math
import os

import keras

from callbacks._internal import check_choice, check_number
from recipes import _checks, _phases, _runtime
from recipes.backbones import get_backbone_info, is_pretrained
from recipes.data import (
    BAD_IMAGE_ACTIONS,
    augmentation_layers,
    check_image_size,
    load_image_data,
)

# Images at most this large default to the small CNN trained from scratch.
_SMALL_IMAGE = 64
_DEFAULT_PRETRAINED = "efficientnetv2_b0"
# Default peak LR of a backbone trained from scratch, relative to the
# registry's batch-scaled rate: with BatchNormalization, the warmup and the
# weight average it trains faster at twice the rate. On the four data sets
# of `benchmarks/suite.py` (2 seeds each), half of it (1e-3 for AdamW at
# batch 32) reached the keras.io convnet's final accuracy 1-3 epochs later
# on the two digit sets, between 3 sooner and 2 later on the two others
# (four seeds), and ended lower in 7 of 8 runs (by 0.3-0.6 points; see
# benchmarks/RESULTS.md).
SCRATCH_LR_SCALE = 2.0
UNFREEZE = ("at_once", "gradual")
# `epochs="auto"`: a budget of optimizer steps, with a floor and a ceiling
# on the epochs (see `resolve_epochs`).
AUTO_EPOCHS_STEPS = 1000
AUTO_EPOCHS_MIN = 10
AUTO_EPOCHS_MAX = 60
# `augment="auto"` from scratch: images with at least this fraction of
# their pixels at an end of the value range are read as drawn (digits,
# text), others as photographs (see `looks_like_photographs`); measured on
# the first `PHOTO_SAMPLE` training images.
DRAWN_FRACTION = 0.3
PHOTO_SAMPLE = 256


@dataclasses.dataclass(frozen=True, eq=False)
class ImageClassifierConfig:
    """The keywords of `fit_image_classifier`, checked.

    One field per keyword of `fit_image_classifier` (all but `data`), with
    the same defaults (see its docstring for each). Making one runs the
    recipe's argument checks, before any data is read.

    Raises:
        ValueError: For a value out of range or an unknown name.
        TypeError: For a value of the wrong type.

    Example:

    >>> config = ImageClassifierConfig(epochs=3, dropout=0.3)
    >>> config.epochs, config.backbone
    (3, 'auto')
    >>> ImageClassifierConfig(dropout=2.0)
    Traceback (most recent call last):
    ValueError: Argument `dropout` must be < 1.0. Received: dropout=2.0
    """

    validation_data: object = None
    validation_split: float = 0.2
    test_data: object = None
    split: str = "train"
    data_dir: str | None = None
    class_names: list | None = None
    backbone: object = "auto"
    weights: object = "auto"
    image_size: object = None
    epochs: int | str = "auto"
    fine_tune_epochs: int | None = None
    fine_tune_layers: int | str = "auto"
    unfreeze: str = "at_once"
    backbone_lr_ratio: float = 0.1
    optimizer: str = "adamw"
    learning_rate: float | str | None = None
    schedule: str = "warmup_cosine"
    warmup_fraction: float = 0.05
    label_smoothing: float = 0.1
    dropout: float = 0.2
    weight_decay: float | None = 0.05
    ema_momentum: float | None = 0.93
    augment: object = "auto"
    mixup: float = 0.0
    cutmix: float = 0.0
    batch_size: int = 32
    early_stopping: bool = True
    patience: int | None = None
    callbacks: list | None = None
    strategy: object = "auto"
    mixed_precision: str = "auto"
    steps_per_execution: int | str = "auto"
    output_dir: object = None
    overwrite: bool = False
    seed: int | None = None
    verbose: int = 1
    on_bad_image: str = "raise"

    def __post_init__(self):
        _check_args(self)


@dataclasses.dataclass(frozen=True)
class ImageClassifierPlan:
    """What one `fit_image_classifier` run trains: every `"auto"` settled.

    Attributes:
        backbone: The backbone (`"auto"` resolved, see `resolve_backbone`).
        pretrained: Whether it starts from pretrained weights (two phases).
        image_size: `(height, width)` the data is read and resized at, or
            `None` (the data's own size).
        input_shape: Shape of one raw image the model takes.
        backbone_input_shape: Shape the backbone is built for, or `None`
            (a user model's own).
        epochs: Epochs of phase 1 (see `resolve_epochs`).
        fine_tune_epochs: Epochs of phase 2 (0: no phase 2).
        patience: Early-stopping patience in epochs.
        augment: The augmentation (see `resolve_augment`).
        learning_rate_scale: What the registry's batch-scaled learning
            rate is multiplied by when `learning_rate=None` (see
            `learning_rate_scale`).
        steps_per_epoch: Optimizer steps per epoch.
        steps_per_execution: Steps per compiled call.
    """

    backbone: object
    pretrained: bool
    image_size: tuple | None
    input_shape: tuple
    backbone_input_shape: tuple | None
    epochs: int
    fine_tune_epochs: int
    patience: int
    augment: object
    learning_rate_scale: float
    steps_per_epoch: int
    steps_per_execution: int


def resolve(config, images, runtime):
    """Settle every `"auto"` of `config` for the loaded data and runtime.

    It builds no model and writes nothing; with `augment="auto"` and a
    backbone trained from scratch it reads the first training images (see
    `looks_like_photographs`).

    Args:
        config: An `ImageClassifierConfig`.
        images: The training images, as `recipes.data.load_image_data`
            returns them (read at `resolve_image_size(config.image_size,
            config.backbone)`).
        runtime: The run's `recipes._runtime.Runtime` (global batch size,
            replicas).

    Returns:
        An `ImageClassifierPlan`.

    Raises:
        ValueError: For images of varying sizes without `image_size`, or
            fine-tuning arguments for a backbone trained from scratch.
    """
    size = resolve_image_size(config.image_size, config.backbone)
    backbone = resolve_backbone(config.backbone, images.image_shape)
    input_shape = model_input_shape(images.image_shape, size, backbone)
    pretrained = is_pretrained(backbone, config.weights)
    if not pretrained:
        _check_from_scratch(backbone, config.fine_tune_epochs,
                            config.fine_tune_layers, config.unfreeze)
    epochs = resolve_epochs(config.epochs, images.num_train,
                            runtime.batch_size)
    fine_tune_epochs = config.fine_tune_epochs
    if fine_tune_epochs is None:
        fine_tune_epochs = max(1, epochs // 2) if pretrained else 0
    steps = math.ceil(images.num_train / runtime.batch_size)
    return ImageClassifierPlan(
        backbone=backbone, pretrained=pretrained, image_size=size,
        input_shape=input_shape,
        backbone_input_shape=backbone_input_shape(backbone, size,
                                                  input_shape),
        epochs=epochs, fine_tune_epochs=fine_tune_epochs,
        patience=_phases.resolve_patience(config.patience, epochs),
        augment=resolve_augment(
            config.augment, pretrained,
            photographs=_auto(config.augment) and not pretrained
            and looks_like_photographs(images)),
        learning_rate_scale=learning_rate_scale(pretrained),
        steps_per_epoch=steps,
        steps_per_execution=_runtime.steps_per_execution_for(
            config.steps_per_execution, steps, runtime))


def load_images(config, data, *, verbose=0):
    """`data` loaded as `fit_image_classifier` loads it for `config`.

    Read at `resolve_image_size(config.image_size, config.backbone)` (a
    registry backbone's native size where `image_size` is not given), split
    with `config.validation_split` and `config.seed`; the recipe, its
    HyperModel and `plan_image_classifier` all load through here.

    Args:
        config: An `ImageClassifierConfig`.
        data: The recipe's `data` argument.
        verbose: Progress of reading an image folder (0 or 1). Defaults to
            `0`.

    Returns:
        What `recipes.data.load_image_data` returns.
    """
    return load_image_data(
        data, validation_data=config.validation_data,
        validation_split=config.validation_split, split=config.split,
        data_dir=config.data_dir,
        image_size=resolve_image_size(config.image_size, config.backbone),
        class_names=config.class_names, seed=config.seed or 0,
        on_bad_image=config.on_bad_image, verbose=verbose)


def resolve_image_size(image_size, backbone):
    """The `(height, width)` the data is read at: `image_size`, else a
    registry backbone's native size, else `None` (the data's own size).

    Example:

    >>> resolve_image_size(32, "small_cnn")
    (32, 32)
    >>> resolve_image_size(None, "auto") is None
    True
    """
    if image_size is not None:
        return check_image_size(image_size)
    if _registry_name(backbone) and backbone != "auto":
        return get_backbone_info(backbone).native_size
    return None


def model_input_shape(image_shape, image_size, backbone):
    """The shape of one raw image the model takes: the data's
    `image_shape`, at `image_size` where its sizes vary.

    Raises:
        ValueError: For images of varying sizes without `image_size`.
    """
    if None not in image_shape[:2]:
        return image_shape
    if image_size is None:
        raise ValueError(
            "Argument `image_size` is required for images of varying "
            f"sizes with backbone={backbone!r}. Received: image_size=None"
        )
    return (*image_size, image_shape[2])


def backbone_input_shape(backbone, image_size, input_shape):
    """The shape a registry backbone is built for: `image_size`, else its
    native size, else the images' size, with its own channel count where
    it has one; `None` for a user model (built as it is)."""
    if not _registry_name(backbone):
        return None
    info = get_backbone_info(backbone)
    target = image_size or info.native_size or input_shape[:2]
    return (*target, info.channels or input_shape[2])


def learning_rate_scale(pretrained):
    """What the registry's batch-scaled learning rate is multiplied by
    when `learning_rate=None`: 1 for a pretrained backbone,
    `SCRATCH_LR_SCALE` for one trained from scratch.

    Example:

    >>> learning_rate_scale(pretrained=False)
    2.0
    """
    return 1.0 if pretrained else SCRATCH_LR_SCALE


def resolve_backbone(backbone, image_shape):
    """The backbone `"auto"` stands for: `"small_cnn"` for images up to
    64x64 pixels, `"efficientnetv2_b0"` above; other values as given.

    Example:

    >>> resolve_backbone("auto", (28, 28, 1))
    'small_cnn'
    """
    if not (isinstance(backbone, str) and backbone == "auto"):
        return backbone
    known = [s for s in image_shape[:2] if s is not None]
    small = known and max(known) <= _SMALL_IMAGE
    return "small_cnn" if small else _DEFAULT_PRETRAINED


def resolve_epochs(epochs, num_train, batch_size):
    """The number of epochs `epochs="auto"` stands for (others unchanged).

    A backbone trained from scratch gets a budget of optimizer steps rather
    than of epochs: `ceil(1000 / steps_per_epoch)` epochs, where
    `steps_per_epoch = ceil(num_train / batch_size)`, but at least 10 and
    at most 60. What a small network learns depends on how many updates it
    makes, not on how many passes over the data: a fixed number of epochs
    is a few dozen updates on a few hundred images and over a thousand on a
    few thousand, so no epoch count suits both. With about 1,000 steps the
    recipe ended above the keras.io convnet's best accuracy (over 30
    epochs) on every data set of `benchmarks/suite.py` (a few hundred to a
    few thousand images, grayscale and RGB, 8x8 to 32x32 pixels) and every
    seed tried; half that budget only tied it on some seeds of the smaller
    sets. The floor gives data sets of 100 batches or more 10 passes
    (at least the budget in steps), enough for early stopping's patience of
    3 epochs to tell a plateau from noise; the ceiling bounds the run on
    tiny data sets, where more epochs mostly memorize them. Early stopping
    on a validation plateau ends a run sooner when it stops improving.

    A pretrained backbone gets the same budget for phase 1 (phase 2 then
    gets half as many epochs, as for any `epochs`): a new head trained on
    a few hundred images gets only a few dozen updates from a fixed number
    of epochs, too few even from features that already separate the
    images, while on data sets of 100 batches or more the floor of 10
    epochs applies as before. Measured on one transfer pair (a small CNN
    pretrained on MNIST-5k, reused on other digits; see
    `benchmarks/RESULTS.md`): a fixed 10 epochs left a few hundred images
    far below the budget's accuracy; ImageNet backbones were not measured.

    Args:
        epochs: The recipe's `epochs` argument.
        num_train: Number of training images.
        batch_size: Global training batch size.

    Returns:
        The number of epochs (an `int`).

    Raises:
        TypeError: If `epochs` is neither `"auto"` nor an integer.
        ValueError: If `epochs`, `num_train` or `batch_size` is below 1.

    Example:

    >>> resolve_epochs("auto", num_train=4000, batch_size=32)  # 125 steps
    10
    >>> resolve_epochs("auto", num_train=1500, batch_size=32)  # 47 steps
    22
    >>> resolve_epochs("auto", num_train=300, batch_size=32)  # 10 steps
    60
    >>> resolve_epochs(5, num_train=300, batch_size=32)
    5
    """
    _checks.check_epochs(epochs, auto=True)
    if not (isinstance(epochs, str) and epochs == "auto"):
        return int(epochs)
    check_number("num_train", num_train, low=1, integer=True)
    check_number("batch_size", batch_size, low=1, integer=True)
    steps = math.ceil(num_train / batch_size)
    return min(max(math.ceil(AUTO_EPOCHS_STEPS / steps), AUTO_EPOCHS_MIN),
               AUTO_EPOCHS_MAX)


def resolve_augment(augment, pretrained, photographs=False):
    """The augmentation `augment="auto"` stands for (others unchanged).

    From scratch, within a budget of about 1,000 optimizer steps, a network
    learning its features from nothing gains less from interpolated views
    (shifts, rotations, zooms) than it loses in slower fitting, and those
    views blur the fine texture of small photographs; a mirror image
    resamples no pixel. So `"auto"` mirrors photographs and leaves digits,
    text and line art (which a mirror turns into other symbols) alone. A
    pretrained backbone gets `"default"`, the views its fine-tuning is
    usually given (ImageNet-pretrained runs are not measurable offline).
    Measured on five real data sets by `benchmarks/bench_augment.py`
    (`benchmarks/RESULTS.md`).

    Args:
        augment: The recipe's `augment` argument.
        pretrained: Whether the backbone starts from pretrained weights.
        photographs: Whether the training images look like photographs
            (see `looks_like_photographs`). Defaults to `False`.

    Returns:
        For `augment="auto"`: `"default"` for a pretrained backbone, else
        `"mirror"` for photographs and `"none"` for others; any other
        `augment` unchanged.

    Example:

    >>> resolve_augment("auto", pretrained=False)
    'none'
    >>> resolve_augment("auto", pretrained=False, photographs=True)
    'mirror'
    """
    if isinstance(augment, str) and augment == "auto":
        if pretrained:
            return "default"
        return "mirror" if photographs else "none"
    return augment


def drawn_fraction(images, value_range, sample=PHOTO_SAMPLE):
    """Fraction of pixels at either end of the value range (within 2%).

    Drawn images (digits, text, line art, scanned pages) are mostly
    background and ink, so most of their pixels sit at an end of the
    range; photographs have few such pixels. `images` is read in order
    (the first `sample` images), without shuffling.

    Args:
        images: An iterable of `(image, label)` pairs (an unbatched
            `tf.data.Dataset`) or of images.
        value_range: The images' maximum pixel value (255 or 1).
        sample: How many images to read. Defaults to `256`.

    Returns:
        A float in [0, 1] (0 for no images).

    Example:

    >>> import numpy as np
    >>> page = np.zeros((8, 8, 1)); page[2:6, 3] = 255  # one stroke
    >>> drawn_fraction([page], 255)
    1.0
    """
    margin = 0.02 * value_range
    ends = total = 0
    for pixels in _first_images(images, sample):
        ends += int(((pixels <= margin)
                     | (pixels >= value_range - margin)).sum())
        total += pixels.size
    return ends / total if total else 0.0


def _first_images(images, sample):
    """NumPy arrays of the first `sample` images: one batch from a
    `tf.data.Dataset` of same-shape images, else one array per image."""
    import tensorflow as tf

    if isinstance(images, tf.data.Dataset):
        spec = images.element_spec
        spec = spec[0] if isinstance(spec, tuple) else spec
        if spec.shape.is_fully_defined():
            images = images.take(sample).batch(sample)
            sample = 1
    for index, item in enumerate(images):
        if index >= sample:
            return
        image = item[0] if isinstance(item, tuple | list) else item
        yield keras.ops.convert_to_numpy(image)


def looks_like_photographs(images, sample=PHOTO_SAMPLE):
    """Whether loaded training images look like photographs, not drawings.

    True when fewer than `DRAWN_FRACTION` (30%) of the pixels of the first
    `sample` training images are at an end of the value range (see
    `drawn_fraction`). On the data sets measured the two kinds lie far
    apart: MNIST and scikit-learn's 8x8 digits have 88% and 58% of their
    pixels there, grayscale textures, RGB photograph patches and face
    photographs 0-14%. A photograph with large saturated areas (a product
    on white) can read as drawn: it then gets no augmentation, the
    from-scratch default before mirroring.

    Args:
        images: What `recipes.data.load_image_data` returns.
        sample: How many training images to read. Defaults to `256`.

    Returns:
        A bool.
    """
    return drawn_fraction(images.train, images.value_range,
                          sample) < DRAWN_FRACTION


def _auto(value):
    return isinstance(value, str) and value == "auto"


def _registry_name(backbone):
    return isinstance(backbone, str) and not backbone.endswith(".keras")


def _check_from_scratch(backbone, fine_tune_epochs, fine_tune_layers,
                        unfreeze):
    """Refuse the fine-tuning arguments for a backbone trained from
    scratch (one phase, every layer): they would be silently ignored."""
    name = backbone if isinstance(backbone, str) else getattr(
        backbone, "name", backbone)
    if fine_tune_epochs:
        raise ValueError(
            "Argument `fine_tune_epochs` applies to pretrained backbones; "
            f"backbone={name!r} with these weights trains from scratch. "
            f"Received: fine_tune_epochs={fine_tune_epochs}"
        )
    if not (isinstance(fine_tune_layers, str) and fine_tune_layers == "auto"):
        raise ValueError(
            "Argument `fine_tune_layers` applies to pretrained backbones; "
            f"backbone={name!r} with these weights trains from scratch, "
            "every layer from the start. Received: "
            f"fine_tune_layers={fine_tune_layers!r}"
        )
    if unfreeze != "at_once":
        raise ValueError(
            "Argument `unfreeze` applies to pretrained backbones; "
            f"backbone={name!r} with these weights trains from scratch, "
            f"every layer from the start. Received: unfreeze={unfreeze!r}"
        )


def _check_args(config):
    kw = vars(config)
    _checks.check_recipe_training_args(kw, auto_epochs=True)
    check_number("fine_tune_epochs", kw["fine_tune_epochs"], low=0,
                 integer=True, allow_none=True)
    layers = kw["fine_tune_layers"]
    if isinstance(layers, int) and not isinstance(layers, bool):
        check_number("fine_tune_layers", layers, low=0, integer=True)
    elif not (isinstance(layers, str) and layers):
        raise TypeError(
            "Argument `fine_tune_layers` must be 'auto', 'all', a count of "
            "top layers or a layer name. Received: "
            f"fine_tune_layers={layers!r}"
        )
    check_choice("unfreeze", kw["unfreeze"], UNFREEZE)
    check_number("dropout", kw["dropout"], low=0.0, high=1.0,
                 high_inclusive=False)
    check_number("ema_momentum", kw["ema_momentum"], low=0.0, high=1.0,
                 high_inclusive=False, allow_none=True)
    check_number("mixup", kw["mixup"], low=0.0)
    check_number("cutmix", kw["cutmix"], low=0.0)
    check_number("backbone_lr_ratio", kw["backbone_lr_ratio"], low=0.0,
                 low_inclusive=False)
    check_number("patience", kw["patience"], low=0, integer=True,
                 allow_none=True)
    check_number("seed", kw["seed"], low=0, integer=True, allow_none=True)
    if kw["image_size"] is not None:
        check_image_size(kw["image_size"])
    check_choice("on_bad_image", kw["on_bad_image"], BAD_IMAGE_ACTIONS)
    if not (isinstance(kw["augment"], str) and kw["augment"] == "auto"):
        augmentation_layers(kw["augment"])
    backbone = kw["backbone"]
    if backbone != "auto" and _registry_name(backbone):
        get_backbone_info(backbone)
    elif not (backbone == "auto" or isinstance(backbone, keras.Model)
              or isinstance(backbone, str | os.PathLike)):
        raise TypeError(
            "Argument `backbone` must be a registry name, a keras.Model or "
            f"a .keras path. Received: backbone={backbone!r}"
        )
    if backbone != "auto" and not is_pretrained(backbone, kw["weights"]):
        _check_from_scratch(backbone, kw["fine_tune_epochs"],
                            kw["fine_tune_layers"], kw["unfreeze"])
    from recipes import optimizers

    optimizers.get_info(kw["optimizer"])
