import os

import keras
import numpy as np
import pytest

import recipes
from recipes.compress.quantization import (
    export_tflite,
    run_tflite,
    weight_bytes,
)
from tests.recipes.compress.models import copy_of, mlp


@pytest.fixture(scope="module")
def float_export(trained_mlp, mnist_5k, tmp_path_factory):
    model, _ = trained_mlp
    _, (x_val, y_val) = mnist_5k
    path = tmp_path_factory.mktemp("tflite") / "float.tflite"
    return export_tflite(model, path, validation_data=(x_val, y_val))


def test_float_export_matches_keras_predictions(trained_mlp, mnist_5k,
                                                float_export):
    model, accuracy = trained_mlp
    _, (x_val, _) = mnist_5k
    outputs, latency_ms = run_tflite(float_export.path, x_val[:200])
    np.testing.assert_allclose(
        outputs, model.predict(x_val[:200], verbose=0), atol=1e-4
    )
    assert latency_ms > 0
    assert float_export.accuracy == pytest.approx(accuracy, abs=1e-3)
    assert float_export.size_bytes == os.path.getsize(float_export.path)


def test_int8_is_smaller_and_as_accurate(trained_mlp, mnist_5k,
                                         float_export, tmp_path):
    model, _ = trained_mlp
    (x, _), (x_val, y_val) = mnist_5k
    report = recipes.export_tflite(
        model, tmp_path / "int8.tflite", quantization="int8",
        representative_data=x, validation_data=(x_val, y_val),
    )
    assert float_export.size_bytes / report.size_bytes >= 3.5
    assert abs(report.accuracy - float_export.accuracy) <= 0.01
    assert report.latency_ms > 0


def test_export_refuses_to_overwrite_and_checks_arguments(trained_mlp,
                                                          tmp_path):
    model, _ = trained_mlp
    path = tmp_path / "user.tflite"
    path.write_bytes(b"user data")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_tflite(model, path)
    assert path.read_bytes() == b"user data"
    with pytest.raises(ValueError, match="`representative_data` is required"):
        export_tflite(model, tmp_path / "a.tflite", quantization="int8")
    with pytest.raises(ValueError, match="`quantization` must be one of"):
        export_tflite(model, tmp_path / "a.tflite", quantization="int4")
    with pytest.raises(ValueError, match="must end in '.tflite'"):
        export_tflite(model, tmp_path / "a.keras")
    assert sorted(os.listdir(tmp_path)) == ["user.tflite"]
    report = export_tflite(model, path, quantization="dynamic",
                           overwrite=True)
    assert path.read_bytes() != b"user data"
    assert report.size_bytes == os.path.getsize(path)


def test_keras_int8_quantize_keeps_accuracy_and_reloads(trained_mlp,
                                                        mnist_5k, tmp_path):
    baseline, accuracy = trained_mlp
    _, (x_val, y_val) = mnist_5k
    model = copy_of(baseline)
    before = weight_bytes(model)
    model = recipes.quantize(model, "int8")
    assert model.layers[1].kernel.dtype == "int8"
    assert weight_bytes(model) < before / 3
    _, quantized_accuracy = model.evaluate(x_val, y_val, verbose=0)
    assert abs(quantized_accuracy - accuracy) <= 0.01
    path = tmp_path / "int8.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x_val[:64], verbose=0),
                               model.predict(x_val[:64], verbose=0),
                               atol=1e-6)


def test_quantize_errors():
    with pytest.raises(ValueError, match="`mode` must be one of"):
        recipes.quantize(mlp(), "int2")
    with pytest.raises(ValueError, match="must be built"):
        recipes.quantize(keras.Sequential([keras.layers.Dense(2)]))
