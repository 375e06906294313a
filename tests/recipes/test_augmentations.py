import keras
import numpy as np
import pytest

from recipes import augmentations, data
from recipes.augmentations import (
    AugmentationInfo,
    augmentation_layers,
    get_augmentation_info,
    list_augmentations,
    register_augmentation,
)


def test_list_is_in_registration_order():
    assert list_augmentations() == ["default", "flip", "mirror",
                                    "randaugment", "none"]
    # The pipeline and the image recipe use the same function.
    assert data.augmentation_layers is augmentation_layers


@pytest.mark.parametrize("name", list_augmentations())
def test_layers_are_what_the_info_says(name):
    info = get_augmentation_info(name)
    assert isinstance(info, AugmentationInfo) and info.name == name
    assert info.description
    layers = augmentation_layers(name, seed=1)
    assert tuple(type(layer).__name__ for layer in layers) == info.built_from
    assert all(isinstance(layer, keras.layers.Layer) for layer in layers)


def test_layer_settings():
    translation, rotation, zoom, flip = augmentation_layers("flip", seed=3)
    # 10% shifts and zooms, rotations of 0.05 of a turn (18 degrees).
    assert (translation.height_factor, translation.width_factor) == (0.1,
                                                                     0.1)
    assert rotation.get_config()["factor"] == (-0.05, 0.05)
    assert zoom.height_factor == 0.1 and flip.mode == "horizontal"
    assert {layer.fill_mode for layer in (translation, rotation, zoom)} == {
        "constant"}
    (rand,) = augmentation_layers("randaugment", value_range=1.0)
    assert tuple(rand.value_range) == (0, 1.0)


def test_mirror_flips_whole_images_without_resampling():
    (flip,) = augmentation_layers("mirror", seed=0)
    images = np.random.default_rng(0).random((64, 5, 5, 3), "float32")
    out = np.asarray(flip(images, training=True))
    mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images,
                                                              strict=True)]
    # Each image comes out exactly as itself or its mirror (no pixel is
    # interpolated), and both happen.
    for o, i, m in zip(out, images, mirrored, strict=True):
        assert m or np.array_equal(o, i)
    assert 0 < sum(mirrored) < len(images)


def test_none_and_layers_pass_through():
    assert augmentation_layers(None) == augmentation_layers("none") == []
    layer = keras.layers.RandomContrast(0.2)
    assert augmentation_layers(layer) == [layer]
    assert augmentation_layers((layer,)) == [layer]
    with pytest.raises(TypeError, match="Argument `augment` must be a "
                       "policy name or Keras layers"):
        augmentation_layers([layer, "flip"])


def test_unknown_name_names_the_argument():
    with pytest.raises(ValueError, match=(
            r"Argument `augment` must be one of \['default', 'flip', 'mirror', "
            r"'none', 'randaugment'\]. Received: augment='strong'")):
        augmentation_layers("strong")
    with pytest.raises(ValueError, match="Received: name='strong'"):
        get_augmentation_info("strong")


def test_registered_policy_is_used_and_duplicates_fail(monkeypatch):
    # A copy of the registry, restored after the test.
    registry = augmentations._REGISTRY
    monkeypatch.setattr(registry, "entries", dict(registry.entries))
    register_augmentation(
        "upside_down",
        lambda value_range, seed: [keras.layers.RandomFlip("vertical",
                                                           seed=seed)],
        description="Vertical flips.", built_from=("RandomFlip",))
    assert list_augmentations()[-1] == "upside_down"
    (flip,) = augmentation_layers("upside_down", seed=0)
    images = np.arange(2 * 4 * 4 * 1, dtype="float32").reshape(2, 4, 4, 1)
    out = np.asarray(flip(images, training=True))
    # Each image is itself or upside down.
    for image, flipped in zip(images, out, strict=True):
        assert (np.array_equal(flipped, image)
                or np.array_equal(flipped, image[::-1]))
    with pytest.raises(ValueError, match="name='upside_down'"):
        register_augmentation("upside_down", list, description="",
                              built_from=())
