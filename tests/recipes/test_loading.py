import os
import zipfile

import keras
import numpy as np
import pytest

import recipes
from tests.helpers import mlp


@pytest.fixture
def saved(tmp_path):
    model = mlp(input_shape=(8,))
    path = tmp_path / "model.keras"
    model.save(path)
    return model, path


def test_loads_a_keras_file_with_identical_predictions(saved):
    model, path = saved
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    loaded = recipes.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), atol=1e-6)


def test_lambda_layer_is_refused_by_safe_mode(tmp_path):
    model = keras.Sequential([keras.Input((2,)),
                              keras.layers.Lambda(lambda t: t * 2.0)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ValueError, match="safe_mode"):
        recipes.load_model(path)


def test_legacy_h5_needs_opt_in(tmp_path):
    model = mlp(input_shape=(8,))
    path = str(tmp_path / "legacy.h5")
    model.save(path)  # Keras logs that HDF5 is legacy
    with pytest.raises(ValueError, match="allow_legacy=True"):
        recipes.load_model(path)
    with pytest.warns(UserWarning, match="without safe_mode"):
        loaded = recipes.load_model(path, allow_legacy=True)
    x = np.ones((2, 8), "float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), atol=1e-6)


def test_truncated_keras_file_is_a_clear_error(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="path="):
        recipes.load_model(path)


def test_zip_without_model_config_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(ValueError, match="path="):
        recipes.load_model(path)


@pytest.mark.parametrize(
    "name, error, message",
    [
        ("missing.keras", FileNotFoundError, "does not exist"),
        ("folder", ValueError, "folder"),
        ("model.weights.h5", ValueError, "weights-only"),
        ("model.txt", ValueError, ".keras"),
    ],
)
def test_bad_paths(tmp_path, name, error, message):
    if name == "folder":
        os.mkdir(tmp_path / name)
    elif name != "missing.keras":
        (tmp_path / name).write_bytes(b"data")
    with pytest.raises(error, match=message):
        recipes.load_model(tmp_path / name)


def test_path_must_be_a_path():
    with pytest.raises(TypeError, match="path=12"):
        recipes.load_model(12)
