"""The image recipe's config and plan (`recipes/image_plan.py`)."""

import dataclasses
import inspect
import math

import pytest

from recipes import _runtime
from recipes.data import load_image_data
from recipes.image_classifier import fit_image_classifier
from recipes.image_plan import (
    SCRATCH_LR_SCALE,
    ImageClassifierConfig,
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
