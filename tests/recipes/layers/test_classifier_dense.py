import keras
import numpy as np
import pytest

import recipes
from recipes.backbones import small_cnn
from recipes.image_classifier import build_image_classifier
from recipes.layers import ClassifierDense
from tests.helpers import assert_config_round_trip, assert_keras_round_trip

NAMES = ["zero", "one", "two"]


def test_is_a_dense_layer_with_names():
    layer = ClassifierDense(NAMES, activation="softmax")
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in layer.weights)
    logits = x @ kernel + bias
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    assert layer.units == 3 and layer.class_names == NAMES
    assert_config_round_trip(layer)


def test_saved_model_predicts_names_after_plain_keras_load(tmp_path,
                                                           digits_8x8):
    (x, _), _ = digits_8x8
    model = build_image_classifier(
        small_cnn((8, 8, 1)), "unit", input_shape=(8, 8, 1),
        value_range=16.0, num_classes=3, class_names=NAMES)
    loaded = assert_keras_round_trip(model, x[:16], tmp_path)
    assert loaded.layers[-1].class_names == NAMES
    probabilities = model.predict(x[:16], verbose=0)
    expected = np.asarray(NAMES)[probabilities.argmax(-1)]
    np.testing.assert_array_equal(
        recipes.predict_classes(recipes.load_model(tmp_path / "model.keras"),
                                x[:16]), expected)


@pytest.mark.parametrize("names", [[], ["a", "a"], [True, False], "ab",
                                   [1.5, 2.5]])
def test_bad_class_names(names):
    with pytest.raises(ValueError, match="class_names"):
        ClassifierDense(names)


def test_units_must_match_and_plain_models_are_refused():
    with pytest.raises(ValueError, match="units=4"):
        ClassifierDense(NAMES, units=4)
    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="ClassifierDense"):
        recipes.predict_classes(plain, np.zeros((1, 2)))
