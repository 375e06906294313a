import os
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import recipes
from recipes.compress.quantization import (
    export_tflite,
    run_tflite,
    weight_bytes,
)
from tests.recipes.compress.models import (
    classifier,
    compile_classifier,
    copy_of,
    mlp,
)


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


def _digits_mlp(units=16):
    return classifier((), units, input_shape=(8, 8, 1))


def _trained_digits_mlp(digits_8x8):
    (x, y), _ = digits_8x8
    keras.utils.set_random_seed(0)
    model = compile_classifier(_digits_mlp())
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    return model


@pytest.mark.parametrize("quantization", ["none", "dynamic", "int8"])
def test_export_refuses_keras_quantized_model(digits_8x8, tmp_path,
                                              quantization):
    (x, _), _ = digits_8x8
    model = recipes.quantize(_digits_mlp(), "int8")
    nested = keras.Sequential([keras.Input((8, 8, 1)), model])
    for candidate in (model, nested):
        with pytest.raises(ValueError, match="must not be quantized by Keras"):
            export_tflite(candidate, tmp_path / "q.tflite", quantization,
                          representative_data=x)
    assert os.listdir(tmp_path) == []


def test_int8_export_needs_calibration_examples(digits_8x8, tmp_path):
    (x, y), _ = digits_8x8
    model = _digits_mlp(8)
    empty = [x[:0], [], tf.data.Dataset.from_tensor_slices((x[:0], y[:0]))
             .batch(8)]
    for representative_data in empty:
        with pytest.raises(ValueError,
                           match="`representative_data` must hold at least "
                                 "one example"):
            export_tflite(model, tmp_path / "e.tflite", "int8",
                          representative_data=representative_data)
    assert os.listdir(tmp_path) == []


def test_full_integer_check_rejects_a_float_model(tmp_path):
    from recipes.compress.quantization import _check_full_integer

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    export_tflite(model, tmp_path / "f.tflite")
    with pytest.raises(RuntimeError, match="did not produce a full-integer"):
        _check_full_integer((tmp_path / "f.tflite").read_bytes())


def test_xy_representative_data_calibrates_on_inputs_only(digits_8x8,
                                                          tmp_path):
    (x, y), _ = digits_8x8
    model = _trained_digits_mlp(digits_8x8)
    x, y = x[:50], y[:50]
    # Reference: calibration on the bare inputs.
    reference = export_tflite(model, tmp_path / "x.tflite", "int8",
                              representative_data=x)
    want = Path(reference.path).read_bytes()
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    for name, data in [("pair", (x, y)), ("list", [(x[:25], y[:25]),
                                                   (x[25:], y[25:])]),
                       ("dataset", batches)]:
        report = export_tflite(model, tmp_path / f"{name}.tflite", "int8",
                               representative_data=data)
        assert Path(report.path).read_bytes() == want, name
    with pytest.raises(ValueError, match=r"`representative_data` must hold "
                                         r"inputs of shape \(None, 8, 8, 1\)"):
        export_tflite(model, tmp_path / "w.tflite", "int8",
                      representative_data=x.reshape(50, 64))


def test_failed_export_leaves_no_file_and_keeps_existing(digits_8x8,
                                                         tmp_path):
    (x, y), _ = digits_8x8
    model = _trained_digits_mlp(digits_8x8)
    path = tmp_path / "m.tflite"
    bad_inputs = (x.reshape(-1, 64), y)
    with pytest.raises(ValueError, match="`validation_data` must hold "
                                         "inputs of shape"):
        export_tflite(model, path, validation_data=bad_inputs)
    assert os.listdir(tmp_path) == []
    good = export_tflite(model, path, validation_data=(x, y))
    want = path.read_bytes()
    for validation_data, match in [
        (bad_inputs, "inputs of shape"),
        ((x, keras.utils.to_categorical(y, 10)), "1-D integer labels"),
        ((x, y + 10), r"labels in \[0, 10\)"),
        ((x, y[:-1]), "as many labels as inputs"),
        (x, "must be a tuple"),
    ]:
        with pytest.raises(ValueError, match=match):
            export_tflite(model, path, "dynamic", overwrite=True,
                          validation_data=validation_data)
        assert path.read_bytes() == want
    assert os.listdir(tmp_path) == ["m.tflite"]
    assert good.accuracy == pytest.approx(np.mean(
        np.argmax(model.predict(x, verbose=0), axis=-1) == y))


class SubclassedClassifier(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, inputs):
        return self.dense(inputs)


def test_export_failing_after_conversion_keeps_existing_file(tmp_path):
    # A subclassed model has no symbolic input to check shapes against, so
    # a wrong width fails only when the converted file runs.
    model = SubclassedClassifier()
    model(np.zeros((1, 4), "float32"))
    path = tmp_path / "m.tflite"
    path.write_bytes(b"user data")
    with pytest.raises(ValueError, match="Cannot set tensor"):
        export_tflite(model, path, overwrite=True, validation_data=(
            np.zeros((5, 6), "float32"), np.zeros(5, "int64")))
    assert path.read_bytes() == b"user data"
    assert os.listdir(tmp_path) == ["m.tflite"]


def test_integer_input_model_exports_and_runs(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6,), dtype="int32"), keras.layers.Embedding(20, 4),
        keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3),
    ])
    tokens = np.random.default_rng(0).integers(0, 20, (16, 6))
    for quantization in ["none", "dynamic"]:
        report = export_tflite(model, tmp_path / f"{quantization}.tflite",
                               quantization)
        outputs, _ = run_tflite(report.path, tokens)
        np.testing.assert_allclose(outputs, model.predict(tokens, verbose=0),
                                   atol=1e-5)
    with pytest.raises(ValueError, match="integer inputs"):
        export_tflite(model, tmp_path / "i.tflite", "int8",
                      representative_data=tokens)
    text = keras.Sequential([
        keras.Input((1,), dtype="string"),
        keras.layers.TextVectorization(max_tokens=20,
                                       output_sequence_length=4,
                                       vocabulary=["a", "b"]),
        keras.layers.Embedding(20, 4), keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(3),
    ])
    with pytest.raises(ValueError, match="must take numeric inputs"):
        export_tflite(text, tmp_path / "s.tflite")
    assert sorted(os.listdir(tmp_path)) == ["dynamic.tflite", "none.tflite"]


@pytest.mark.parametrize("mode", ["int8", "int4", "float8"])
def test_weight_bytes_shrink_except_float8(mode):
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32),
                              keras.layers.Dense(10)])
    before = weight_bytes(model)
    assert before == 4 * (64 * 32 + 32 + 32 * 10 + 10)
    recipes.quantize(model, mode)
    if mode == "float8":
        # Float8 training state: float32 kernels, plus per layer 6 scales or
        # amax histories (3 of 1 float, 3 of 1024 floats).
        assert weight_bytes(model) == before + 2 * 4 * (3 + 3 * 1024)
    else:
        assert weight_bytes(model) < before / 3


def test_export_shows_its_stages_by_default(tmp_path, capsys):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    x = np.zeros((3, 4), "float32")
    export_tflite(model, str(tmp_path / "a.tflite"),
                  validation_data=(x, np.zeros(3, "int64")))
    assert "3/3" in capsys.readouterr().out
    export_tflite(model, str(tmp_path / "b.tflite"), verbose=0)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="verbose=2"):
        export_tflite(model, str(tmp_path / "c.tflite"), verbose=2)
