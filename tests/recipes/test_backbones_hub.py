"""KerasHub presets as backbones (`backbone="hub:<preset>"`), offline.

No network here: a tiny KerasHub ResNet image classifier with random
weights is saved with `save_to_preset`, and the recipes load it from that
directory, the same code path a preset name takes after its download.
"""

import json
import sys
import zipfile

import keras
import numpy as np
import pytest

import recipes
from recipes.backbones import (
    build_backbone,
    get_backbone_info,
    is_pretrained,
    leaf_layers,
    select_fine_tune_layers,
)
from recipes.image_classifier import check_image_classifier_args

# ImageNet mean and std as a KerasHub ResNet converter declares them, for
# pixels in [0, 255].
_MEAN = np.array([0.485, 0.456, 0.406])
_STD = np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def keras_hub():
    return pytest.importorskip("keras_hub")


@pytest.fixture(scope="module")
def preset(keras_hub, tmp_path_factory):
    """A tiny ResNet image classifier preset (backbone + converter)."""
    keras.utils.set_random_seed(0)
    network = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 64], stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2], block_type="basic_block")
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(16, 16), scale=list(1 / (255 * _STD)),
        offset=list(-_MEAN / _STD))
    classifier = keras_hub.models.ResNetImageClassifier(
        network, num_classes=10,
        preprocessor=keras_hub.models.ResNetImageClassifierPreprocessor(
            image_converter=converter))
    directory = str(tmp_path_factory.mktemp("hub") / "tiny_resnet")
    classifier.save_to_preset(directory)
    return directory


def test_missing_keras_hub_names_the_extra(monkeypatch, tmp_path):
    # A None entry in sys.modules makes `import keras_hub` fail, as when
    # the package is not installed.
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    with pytest.raises(ImportError, match=r"keras-recipes\[hub\]"):
        get_backbone_info("hub:resnet_50_imagenet")
    with pytest.raises(ImportError, match=r"keras-recipes\[hub\]"):
        check_image_classifier_args(backbone="hub:resnet_50_imagenet")
    # A saved model naming KerasHub classes (only its config matters).
    path = str(tmp_path / "hub_model.keras")
    config = {"module": "keras.src.models.functional",
              "class_name": "Functional", "config": {"layers": [
                  {"module": "keras_hub.src.models.resnet.resnet_backbone",
                   "class_name": "ResNetBackbone", "config": {}}]}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
    with pytest.raises(ImportError, match=r"keras-recipes\[hub\]"):
        recipes.load_model(path)
    with pytest.raises(ImportError, match=r"keras-recipes\[hub\]"):
        build_backbone(path)


def test_info_comes_from_the_presets_image_converter(preset):
    info = get_backbone_info("hub:" + preset)
    assert info.name == "hub:" + preset
    assert info.native_size == (16, 16)
    assert info.preprocessing == "unit"
    assert info.pretrained_weights == ("preset",)
    assert is_pretrained("hub:" + preset) is True
    assert is_pretrained("hub:" + preset, "preset") is True
    assert is_pretrained("hub:" + preset, None) is False
    with pytest.raises(ValueError, match="Argument `weights`"):
        is_pretrained("hub:" + preset, "imagenet")
    check_image_classifier_args(backbone="hub:" + preset)


def test_features_match_keras_hubs_own_pipeline(keras_hub, preset):
    # Reference: KerasHub's converter on pixels in [0, 255], then the
    # preset's backbone; ours takes the same pixels divided by 255.
    model, info, pretrained = build_backbone("hub:" + preset)
    assert pretrained and model.output.shape == (None, 2, 2, 64)
    pixels = np.random.default_rng(0).uniform(
        0, 255, (2, 16, 16, 3)).astype("float32")
    converter = keras_hub.layers.ImageConverter.from_preset(preset)
    network = keras_hub.models.Backbone.from_preset(preset)
    reference = network(converter(pixels))
    np.testing.assert_allclose(
        model.get_layer("preprocess_hub")(pixels / 255.0),
        converter(pixels), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model(pixels / 255.0), reference,
                               rtol=1e-4, atol=1e-4)
    # weights=None: the preset's architecture, randomly initialized.
    fresh, _, pretrained = build_backbone("hub:" + preset, weights=None)
    assert not pretrained
    assert not np.allclose(fresh(pixels / 255.0), reference, atol=1e-3)
    # Fine-tuning unfreezes the top third of the layers with weights,
    # BatchNormalization excluded.
    chosen = select_fine_tune_layers(model, info)
    assert chosen and not any(
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in chosen)
    assert chosen[-1].name == "stack1_block0_2_conv"


def test_tuner_searches_with_a_hub_preset(preset):
    keras_tuner = pytest.importorskip("keras_tuner")
    from recipes.datasets import load_digits_8x8
    from recipes.tuning import ImageClassifierHyperModel

    (x, y), (xv, yv) = load_digits_8x8()
    hypermodel = ImageClassifierHyperModel(
        (x[:100], y[:100]), validation_data=(xv[:50], yv[:50]),
        backbone="hub:" + preset)
    assert hypermodel.pretrained
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    # Pretrained: the fine-tune depth is a knob of the search.
    assert "fine_tune_layers" in hp.values
    assert model.output.shape == (None, 10)
    assert model.get_layer("resize").output.shape == (None, 16, 16, 1)


def test_unavailable_preset_name_is_one_clear_error(monkeypatch, tmp_path,
                                                   keras_hub):
    # Offline, wherever the test runs: an empty cache, and Kaggle's API
    # endpoint pointed at a local port nothing listens on.
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")
    from recipes.datasets import load_digits_8x8

    (x, y), _ = load_digits_8x8()
    with pytest.raises(ValueError) as caught:
        recipes.fit_image_classifier(
            (x[:40], y[:40]), backbone="hub:resnet_50_imagenet", epochs=1,
            verbose=0)
    message = str(caught.value)
    assert message.startswith("Argument `backbone`")
    assert "'resnet_50_imagenet'" in message and "network" in message
    assert "Received: backbone='hub:resnet_50_imagenet'" in message
    # One error, not a chain from inside the download client.
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_bad_hub_backbones_are_refused_before_any_work(keras_hub, preset,
                                                      tmp_path):
    with pytest.raises(ValueError, match="after 'hub:'"):
        get_backbone_info("hub:")
    with pytest.raises(ValueError, match="could not be loaded"):
        get_backbone_info("hub:" + str(tmp_path / "missing"))
    # A backbone saved alone declares no input scaling.
    alone = str(tmp_path / "alone")
    keras_hub.models.Backbone.from_preset(preset).save_to_preset(alone)
    with pytest.raises(ValueError, match="image_converter.json"):
        get_backbone_info("hub:" + alone)
    # A preset directory without the prefix: the error says how to write it.
    with pytest.raises(ValueError, match=r"write backbone='hub:"):
        get_backbone_info(preset)
    with pytest.raises(ValueError, match="Argument `image_size`"):
        _fixed_size_builder(keras_hub, tmp_path)


def _fixed_size_builder(keras_hub, tmp_path):
    """A preset whose network takes only 16x16 images, asked for 24x24."""
    fixed = str(tmp_path / "fixed")
    keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64], stackwise_num_blocks=[1],
        stackwise_num_strides=[1], block_type="basic_block",
        image_shape=(16, 16, 3)).save_to_preset(fixed)
    keras_hub.layers.ImageConverter(image_size=(16, 16),
                                    scale=1 / 255).save_to_preset(fixed)
    build_backbone("hub:" + fixed, input_shape=(24, 24, 3))


def _pretrain(keras_hub, preset, x, y, directory):
    """The tiny preset with its network trained one epoch on the digits,
    fed by KerasHub's own converter (pixels in [0, 255], RGB)."""
    keras.utils.set_random_seed(0)
    classifier = keras_hub.models.ImageClassifier.from_preset(preset)
    inputs = classifier.preprocessor.image_converter(
        np.repeat(x * 255.0, 3, axis=-1))
    # A plain Keras fit on the converted images: KerasHub's task `fit`
    # (its preprocessing in tf.data) took 20 s here for the same epoch.
    model = keras.Sequential([classifier.backbone,
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    model.fit(inputs, y, epochs=1, batch_size=64, verbose=0)
    classifier.save_to_preset(directory)
    return directory


@pytest.mark.slow
def test_fit_image_classifier_with_a_hub_preset_end_to_end(keras_hub, preset,
                                                          tmp_path):
    from recipes.datasets import load_digits_8x8

    (x, y), (xv, yv) = load_digits_8x8()
    trained = _pretrain(keras_hub, preset, x, y, str(tmp_path / "trained"))
    # A higher rate than the batch-scaled default: with it the new head
    # on these 64 features was at 20% after 2 epochs (1e-2: 96%).
    result = recipes.fit_image_classifier(
        (x, y), validation_data=(xv, yv), backbone="hub:" + trained,
        epochs=1, fine_tune_epochs=1, learning_rate=1e-2, augment="none",
        verbose=0, seed=0)
    config = result.config
    assert config["backbone"] == "hub:" + trained
    assert config["weights"] == "preset" and config["pretrained"]
    unfrozen = set(config["fine_tune_layers"])
    assert unfrozen and unfrozen <= {
        layer.name for layer in select_fine_tune_layers(
            *build_backbone("hub:" + trained)[:2])}
    assert len(result.history["loss"]) == 2
    # The frozen features are those KerasHub computes (a wrong input
    # scaling would ruin them): a logistic regression on them reached 98%;
    # the recipe's head after one epoch 96%.
    assert result.metrics["val_accuracy"] > 0.9
    # Phase 1 froze the whole network and phase 2 unfroze only the chosen
    # top layers: every other weight is still the preset's.
    network = result.model.get_layer("hub_res_net_backbone").get_layer(
        "res_net_backbone")
    original = keras_hub.models.Backbone.from_preset(trained)
    for mine, theirs in zip(network.layers, original.layers, strict=True):
        same = all(np.array_equal(a, b) for a, b in
                   zip(mine.get_weights(), theirs.get_weights(),
                       strict=True))
        assert same == (mine.name not in unfrozen), mine.name
    # The saved model reloads in safe mode, plain Keras and ours alike.
    # (Not through `output_dir`, whose run files cost 8 s more here.)
    path = str(tmp_path / "model.keras")
    result.model.save(path)
    expected = result.model.predict(xv[:16], verbose=0)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(xv[:16], verbose=0),
                               expected, rtol=1e-5, atol=1e-6)
    # ... with its fine-tuning state: the same layers train.
    assert {layer.name for layer in leaf_layers(
        loaded.get_layer("hub_res_net_backbone"))
        if layer.trainable and layer.weights} == unfrozen
    assert isinstance(recipes.load_model(path), keras.Model)
