"""The image recipe's config and plan (`recipes/image_plan.py`)."""

import dataclasses
import inspect
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from recipes import _runtime, datasets, plan_image_classifier
from recipes.data import load_image_data
from recipes.image_classifier import fit_image_classifier
from recipes.image_plan import (
    DRAWN_FRACTION,
    SCRATCH_LR_SCALE,
    ImageClassifierConfig,
    drawn_fraction,
    looks_like_photographs,
    resolve,
)


def test_config_fields_are_the_recipe_keywords_with_its_defaults():
    params = inspect.signature(fit_image_classifier).parameters
    keywords = [(name, p.default) for name, p in params.items()
                if name != "data"]
    fields = [(f.name, f.default)
              for f in dataclasses.fields(ImageClassifierConfig)]
    assert fields == keywords


def test_config_is_frozen_and_checked():
    config = ImageClassifierConfig(epochs=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 4
    with pytest.raises(ValueError, match="Received: mixup=-1"):
        ImageClassifierConfig(mixup=-1)
    with pytest.raises(ValueError, match="Received: unfreeze='slowly'"):
        ImageClassifierConfig(unfreeze="slowly")


def _plan(digits_8x8, **kwargs):
    (x, y), _ = digits_8x8
    config = ImageClassifierConfig(**kwargs)
    images = load_image_data((x, y), validation_split=0.2, seed=0)
    runtime = _runtime.resolve_runtime("auto", "auto", config.batch_size)
    return images, resolve(config, images, runtime)


def test_resolve_settles_every_auto_for_small_images(digits_8x8):
    images, plan = _plan(digits_8x8)
    steps = math.ceil(images.num_train / 32)
    # The step budget: ceil(1000 / steps) epochs, between 10 and 60.
    epochs = min(max(math.ceil(1000 / steps), 10), 60)
    assert plan.backbone == "small_cnn"  # 8x8 images
    assert not plan.pretrained
    assert plan.input_shape == (8, 8, 1)
    assert plan.backbone_input_shape == (8, 8, 1)
    assert plan.image_size is None
    assert (plan.epochs, plan.fine_tune_epochs) == (epochs, 0)
    assert plan.patience == max(3, epochs // 4)
    assert plan.augment == "none"
    assert plan.learning_rate_scale == SCRATCH_LR_SCALE
    assert plan.steps_per_epoch == steps
    assert plan.steps_per_execution == min(32, steps)


def test_resolve_keeps_given_values(digits_8x8):
    _, plan = _plan(digits_8x8, epochs=4, patience=1, augment="flip",
                    steps_per_execution=5, image_size=16)
    assert (plan.epochs, plan.patience, plan.augment) == (4, 1, "flip")
    assert plan.steps_per_execution == 5
    assert plan.image_size == (16, 16)


def test_drawn_fraction_counts_pixels_at_the_ends_of_the_range():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (300, 6, 6, 3)).astype("float32")
    images[:, :2] = 0.0  # background rows
    images[:, 5, :1] = 255.0  # ink
    # Reference: pixels within 2% of 0 or of 255, over the first 256.
    first = images[:256]
    expected = np.mean((first <= 5.1) | (first >= 249.9))
    pairs = [(image, 0) for image in images]
    assert drawn_fraction(pairs, 255.0) == pytest.approx(expected)
    assert drawn_fraction(pairs, 255.0, sample=300) == pytest.approx(
        np.mean((images <= 5.1) | (images >= 249.9)))
    assert drawn_fraction([], 1.0) == 0.0
    # A tf.data pipeline of same-size images (read as one batch) and one
    # of varying sizes (read image by image) give the same counts.
    same = tf.data.Dataset.from_tensor_slices((images, np.zeros(300)))
    assert drawn_fraction(same, 255.0) == pytest.approx(expected)
    sizes = [(4, 4), (5, 7), (6, 3)]
    varying = [np.full(size + (1,), value, "float32")
               for size, value in zip(sizes, (0.0, 0.5, 1.0), strict=True)]
    ragged = tf.data.Dataset.from_generator(
        lambda: iter(varying),
        output_signature=tf.TensorSpec((None, None, 1), tf.float32))
    # 16 + 18 pixels at the ends, 35 in the middle.
    assert drawn_fraction(ragged, 1.0) == pytest.approx(34 / 69)
    assert drawn_fraction(ragged, 1.0, sample=1) == 1.0


@pytest.mark.parametrize("loader, photographs", [
    (datasets.load_digits_8x8, False),
    (datasets.load_textures, True),
    (datasets.load_scene_patches, True),
])
def test_auto_augment_mirrors_photographs_not_digits(loader, photographs):
    (x, y), _ = loader()
    config = ImageClassifierConfig()
    images = load_image_data((x, y), validation_split=0.2, seed=0)
    runtime = _runtime.resolve_runtime("auto", "auto", config.batch_size)
    assert looks_like_photographs(images) is photographs
    plan = resolve(config, images, runtime)
    assert plan.augment == ("mirror" if photographs else "none")
    # A given policy is kept whatever the images are.
    given = resolve(ImageClassifierConfig(augment="default"), images,
                    runtime)
    assert given.augment == "default"


def test_mnist_reads_as_drawn():
    (x, _), _ = datasets.load_mnist_5k()
    # About 88% of MNIST's pixels are background or full ink.
    assert drawn_fraction(x[:256], 1.0) > DRAWN_FRACTION


def test_a_folder_of_photographs_is_mirrored_and_of_digits_is_not(
        tmp_path, digits_8x8):
    (textures, labels), _ = datasets.load_textures(
        train_per_class=10, val_per_class=1, size=16, normalize=False)
    (digits, digit_labels), _ = digits_8x8
    digits = (digits[:30] * 255).round().astype("uint8")
    for name, images, y in (("photos", textures, labels),
                            ("digits", digits, digit_labels[:30] % 3)):
        for i, (image, label) in enumerate(zip(images, y, strict=True)):
            folder = tmp_path / name / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            keras.utils.save_img(folder / f"{i:03d}.png", image, scale=False)
    # PNG folders decode to uint8 in [0, 255]: the same rule holds there.
    assert plan_image_classifier(str(tmp_path / "photos")).augment == (
        "mirror")
    assert plan_image_classifier(str(tmp_path / "digits")).augment == "none"
