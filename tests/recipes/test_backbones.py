import os

import keras
import numpy as np
import pytest

from recipes.backbones import (
    build_backbone,
    get_backbone_info,
    is_pretrained,
    list_backbones,
    preprocessing_layers,
    select_fine_tune_layers,
    small_cnn,
)

APPLICATIONS = [n for n in list_backbones() if n != "small_cnn"]


def _apply(layers, x):
    for layer in layers:
        x = layer(x)
    return np.asarray(x)


def test_registry_covers_the_issue_families():
    for name in ("mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
                 "efficientnetv2_b0", "resnet50", "resnet50_v2",
                 "convnext_tiny", "densenet121", "xception", "small_cnn"):
        assert name in list_backbones()
    assert get_backbone_info("xception").native_size == (299, 299)


def test_unknown_backbone_lists_close_names():
    with pytest.raises(ValueError, match=r"Did you mean \['mobilenet_v2'"):
        get_backbone_info("mobilenet_v22")


@pytest.mark.slow
@pytest.mark.parametrize("name", APPLICATIONS)
def test_application_backbones_build_and_fine_tune_from_their_top_block(
        name):
    info = get_backbone_info(name)
    size = 75 if name in ("xception", "inception_v3") else 64
    model, _, pretrained = build_backbone(name, weights=None,
                                          input_shape=(size, size, 3))
    assert not pretrained and len(model.output.shape) == 4
    names = [layer.name for layer in model.layers]
    start = names.index(info.fine_tune_from)
    chosen = select_fine_tune_layers(model, info, "auto")
    assert chosen and all(names.index(layer.name) >= start
                          for layer in chosen)
    # Every weighted non-BN layer above the block start is chosen.
    expected = [layer.name for layer in model.layers[start:]
                if layer.weights and not isinstance(
                    layer, keras.layers.BatchNormalization)]
    assert [layer.name for layer in chosen] == expected


def test_preprocessing_matches_keras_applications_reference():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2, 4, 4, 3)).astype("float32")
    reference = keras.applications.imagenet_utils.preprocess_input
    for mode in ("tf", "torch", "caffe"):
        np.testing.assert_allclose(
            _apply(preprocessing_layers(mode), x),
            reference(x * 255.0, mode=mode), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(_apply(preprocessing_layers("raw255"), x),
                               x * 255.0, rtol=1e-6)
    assert preprocessing_layers("unit") == []


def test_small_cnn_shapes_and_any_channels():
    assert small_cnn((28, 28, 1)).output.shape == (None, 128)
    assert small_cnn((32, 32, 3), width=8).count_params() == (
        3 * 3 * 3 * 8 + 8  # conv1 with bias
        + 3 * 3 * 8 * 16 + 16  # conv2 with bias
        + 3 * 3 * 16 * 32 + 2 * 32 + 2 * 32  # conv3 (no bias) + BN
        + 4 * 4 * 32 * 128 + 128)  # dense on the 4x4x32 map


@pytest.mark.parametrize("pooling", ["average", "max"])
def test_small_cnn_pooling_matches_numpy(pooling):
    model = small_cnn((8, 8, 1), width=4, pooling=pooling)
    conv1 = model.get_layer("conv1")
    pooled = keras.Model(model.inputs, model.get_layer("pool1").output)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    # Independent reference: the first stage's ReLU output, then 2x2 blocks
    # reduced with NumPy.
    kernel, bias = (np.asarray(w) for w in conv1.get_weights())
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    maps = np.zeros((2, 8, 8, 4), "float32")
    for i in range(8):
        for j in range(8):
            maps[:, i, j] = np.einsum(
                "bhwc,hwcf->bf", padded[:, i:i + 3, j:j + 3], kernel)
    maps = np.maximum(maps + bias, 0.0)
    blocks = maps.reshape(2, 4, 2, 4, 2, 4)
    reduce = np.mean if pooling == "average" else np.max
    np.testing.assert_allclose(pooled.predict(x, verbose=0),
                               reduce(blocks, axis=(2, 4)), atol=1e-5)


def test_small_cnn_rejects_unknown_pooling():
    with pytest.raises(ValueError, match="Received: pooling='min'"):
        small_cnn((28, 28, 1), pooling="min")


def test_weights_file_round_trip(tmp_path):
    trained = small_cnn((12, 12, 1))
    rng = np.random.default_rng(1)
    trained.set_weights([rng.normal(size=w.shape).astype("float32")
                         for w in trained.get_weights()])
    path = str(tmp_path / "cnn.weights.h5")
    trained.save_weights(path)
    model, info, pretrained = build_backbone("small_cnn", weights=path,
                                             input_shape=(12, 12, 1))
    assert pretrained and info.name == "small_cnn"
    for got, want in zip(model.get_weights(), trained.get_weights(),
                         strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name, weights, match", [
    ("small_cnn", "imagenet", "weights"),
    ("small_cnn", "/no/such/file.weights.h5", "weights"),
    ("mobilenet_v2", "imagenett", "weights"),
])
def test_bad_weights(name, weights, match):
    with pytest.raises(ValueError, match=match):
        build_backbone(name, weights=weights, input_shape=(32, 32, 3))


def test_user_classifier_becomes_features_and_keras_file(tmp_path):
    user = keras.Sequential([
        keras.Input((10, 10, 1)), keras.layers.Flatten(),
        keras.layers.Dense(8, activation="relu", name="hidden"),
        keras.layers.Dense(3, name="logits"),
    ])
    model, info, pretrained = build_backbone(user)
    assert pretrained and info.preprocessing == "none"
    assert model.output.shape == (None, 8) and info.native_size == (10, 10)
    path = os.path.join(tmp_path, "user.keras")
    user.save(path)
    loaded, info, _ = build_backbone(path)
    x = np.random.default_rng(0).uniform(size=(2, 10, 10, 1))
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="no such file"):
        build_backbone(os.path.join(tmp_path, "missing.keras"))
    with pytest.raises(ValueError, match="keeps its own weights"):
        build_backbone(user, weights="imagenet")


def test_is_pretrained_agrees_with_build_backbone(tmp_path):
    cnn_file = str(tmp_path / "cnn.weights.h5")
    small_cnn((8, 8, 1)).save_weights(cnn_file)
    user = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(),
        keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3),
    ])
    user_file = str(tmp_path / "user.keras")
    user.save(user_file)
    cases = [("small_cnn", "auto", False), ("small_cnn", None, False),
             ("small_cnn", cnn_file, True), (user, "auto", True),
             (user, None, False), (user_file, "auto", True),
             (user_file, None, False)]
    for backbone, weights, expected in cases:
        shape = (8, 8, 1) if isinstance(backbone, str) and not \
            backbone.endswith(".keras") else None
        _, _, built = build_backbone(backbone, weights, input_shape=shape)
        assert built is expected
        assert is_pretrained(backbone, weights) is expected
    # ImageNet backbones, answered without building or downloading.
    assert is_pretrained("mobilenet_v2") is True
    assert is_pretrained("resnet50", "imagenet") is True
    assert is_pretrained("mobilenet_v2", None) is False
    with pytest.raises(ValueError, match="weights='imagenet'"):
        is_pretrained("small_cnn", "imagenet")
    with pytest.raises(ValueError, match="keeps its own weights"):
        is_pretrained(user, "imagenet")


def test_user_classifier_features_leave_its_dropout_out():
    # A frozen backbone's features must not change between training and
    # inference: Keras keeps Dropout active in training even when frozen.
    user = keras.Sequential([
        keras.Input((2, 3, 1)), keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dropout(0.5, name="drop"), keras.layers.Dense(3),
    ])
    model, _, _ = build_backbone(user)
    model.trainable = False
    x = np.random.default_rng(0).uniform(size=(4, 2, 3, 1)).astype("float32")
    hidden = np.maximum(x.reshape(4, 6) @ user.get_layer("hidden").kernel
                        + user.get_layer("hidden").bias, 0.0)
    np.testing.assert_allclose(model(x, training=True), hidden, rtol=1e-5,
                               atol=1e-6)


def test_fine_tune_layer_selection():
    model, info, _ = build_backbone("small_cnn", input_shape=(28, 28, 1))

    def names(choice):
        return [layer.name for layer in select_fine_tune_layers(
            model, info, choice)]

    assert names("auto") == ["conv3", "features"]  # from conv3, BN excluded
    assert names("all") == ["conv1", "conv2", "conv3", "features"]
    assert names(1) == ["features"] and names(0) == []
    # More than the backbone has (5 weighted layers, BN excluded): all of
    # them; a negative start index used to wrap around to fewer.
    assert names(5) == names(6) == names(100) == [
        "conv1", "conv2", "conv3", "features"]
    assert names("relu2") == ["conv3", "features"]
    with pytest.raises(ValueError, match="fine_tune_layers"):
        names("conv9")
    with pytest.raises(ValueError, match="fine_tune_layers"):
        names(-1)


def test_nested_backbone_fine_tunes_leaf_layers_without_bn():
    inner = small_cnn((28, 28, 1))
    inputs = keras.Input((28, 28, 1))
    outer = keras.Model(inputs, keras.layers.Dense(10, name="logits")(
        keras.layers.Dropout(0.2, name="drop")(inner(inputs))))
    model, info, _ = build_backbone(outer)
    assert model.output.shape == (None, 128)  # classifier layer dropped
    chosen = [layer.name for layer in select_fine_tune_layers(model, info)]
    # Weighted leaves: conv1, conv2, conv3, bn3, features; the top third
    # (5 // 3 = 1) is features.
    assert chosen == ["features"]
    assert [layer.name for layer in select_fine_tune_layers(
        model, info, "all")] == ["conv1", "conv2", "conv3", "features"]
