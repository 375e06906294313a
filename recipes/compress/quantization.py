"""Post-training quantization: Keras `model.quantize` and TFLite export.

`quantize` is a checked front door to Keras's own `Model.quantize`.
`export_tflite` goes through a SavedModel (`model.export`) and the TFLite
converter, and `run_tflite` / `evaluate_tflite` measure what was written by
running it in the TFLite interpreter, one example at a time.
"""

import dataclasses
import os
import tempfile
import time
import warnings

import numpy as np
import tensorflow as tf

from callbacks._validation import check_choice, check_number

KERAS_MODES = ("int8", "int4", "float8")
TFLITE_MODES = ("none", "dynamic", "float16", "int8")


def quantize(model, mode="int8", **kwargs):
    """Quantize the weights of a built model with Keras's `model.quantize`.

    Supported layers (Dense, EinsumDense, Embedding, ...) switch to
    quantized kernels in place; the model still saves to `.keras` and
    reloads with `safe_mode=True`.

    Args:
        model: A built Keras model.
        mode: `"int8"`, `"int4"` or `"float8"`. Defaults to `"int8"`.
        **kwargs: Passed to `model.quantize` (e.g. `filters`).

    Returns:
        `model`, quantized in place.

    Raises:
        ValueError: If `mode` is unknown or the model is not built.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model = quantize(model, "int8")
    >>> model.layers[0].kernel.dtype
    'int8'
    """
    check_choice("mode", mode, KERAS_MODES)
    if not model.built:
        raise ValueError(
            "The model must be built before quantization. "
            f"Received: model={model.name!r}"
        )
    model.quantize(mode, **kwargs)
    return model


def weight_bytes(model):
    """Bytes taken by all the weights of `model` (what `quantize` shrinks)."""
    return int(sum(np.asarray(w.numpy()).nbytes for w in model.weights))


@dataclasses.dataclass(frozen=True)
class TFLiteReport:
    """An exported TFLite file and, when measured, how it performs.

    Attributes:
        path: Where the `.tflite` file was written.
        quantization: The export mode.
        size_bytes: File size.
        accuracy: Top-1 accuracy measured by running the file, or `None`.
        latency_ms: Mean milliseconds per example (batch of one), or
            `None`.
    """

    path: str
    quantization: str
    size_bytes: int
    accuracy: float = None
    latency_ms: float = None


def _input_batches(data):
    if isinstance(data, tf.data.Dataset):
        data = data.as_numpy_iterator()
    elif not isinstance(data, (list, tuple)) and hasattr(data, "shape"):
        data = [np.asarray(data)]
    for batch in data:
        if isinstance(batch, (list, tuple)):
            batch = batch[0]
        yield np.asarray(batch, dtype="float32")


def _representative_dataset(data, num_examples):
    def generator():
        count = 0
        for batch in _input_batches(data):
            for example in batch:
                if count == num_examples:
                    return
                count += 1
                yield [example[None]]
    return generator


def export_tflite(model, path, quantization="none", representative_data=None,
                  num_calibration_examples=200, validation_data=None,
                  overwrite=False):
    """Export `model` to a `.tflite` file, optionally quantized, and measure it.

    The model is exported as a SavedModel (`model.export`) in a temporary
    folder and converted with `tf.lite.TFLiteConverter`:

    - `"none"`: float32.
    - `"dynamic"`: int8 weights, float activations (dynamic range).
    - `"float16"`: float16 weights.
    - `"int8"`: full-integer model (int8 weights, activations, inputs and
      outputs) calibrated on `representative_data`.

    With `validation_data=(x, y)` the written file is run example by example
    in the TFLite interpreter to measure its accuracy and latency.

    Args:
        model: A built single-input Keras model.
        path: Destination ending in `.tflite`.
        quantization: One of `"none"`, `"dynamic"`, `"float16"`, `"int8"`.
            Defaults to `"none"`.
        representative_data: Inputs for int8 calibration: an array, an
            iterable of batches or `(x, y)` batches, or a `tf.data.Dataset`.
            Required for `"int8"`. Defaults to `None`.
        num_calibration_examples: How many examples calibrate int8.
            Defaults to `200`.
        validation_data: `(x, y)` with integer labels, to measure accuracy
            and latency. Defaults to `None`.
        overwrite: Replace an existing file at `path`. Defaults to `False`.

    Returns:
        A `TFLiteReport`.

    Raises:
        ValueError: If `quantization` is unknown, `"int8"` lacks
            `representative_data`, or `path` does not end in `.tflite`.
        FileExistsError: If `path` exists and `overwrite=False`.

    Example:

    >>> import os, tempfile
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.tflite")
    >>> report = export_tflite(model, path, quantization="dynamic")
    >>> report.size_bytes == os.path.getsize(path)
    True

    References:
        - [Jacob et al., 2018](https://arxiv.org/abs/1712.05877):
          Quantization and training of neural networks for efficient
          integer-arithmetic-only inference.
    """
    check_choice("quantization", quantization, TFLITE_MODES)
    check_number("num_calibration_examples", num_calibration_examples,
                 low=1, integer=True)
    path = os.fspath(path)
    if not path.endswith(".tflite"):
        raise ValueError(
            f"Argument `path` must end in '.tflite'. Received: path={path!r}"
        )
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "Argument `representative_data` is required for "
            "quantization='int8' (full-integer calibration). "
            "Received: representative_data=None"
        )
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{path!r} already exists; pass overwrite=True to replace it."
        )
    with tempfile.TemporaryDirectory() as tmp:
        saved_model = os.path.join(tmp, "saved_model")
        model.export(saved_model, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        if quantization != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantization == "int8":
            converter.representative_dataset = _representative_dataset(
                representative_data, num_calibration_examples
            )
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8
            ]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        flatbuffer = converter.convert()
    with open(path, "wb") as f:
        f.write(flatbuffer)
    accuracy = latency_ms = None
    if validation_data is not None:
        accuracy, latency_ms = evaluate_tflite(path, *validation_data)
    return TFLiteReport(path, quantization, os.path.getsize(path),
                        accuracy, latency_ms)


def _interpreter(path, num_threads):
    with warnings.catch_warnings():
        # TF 2.21 warns that tf.lite.Interpreter moves to ai-edge-litert.
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=os.fspath(path),
                                          num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def run_tflite(path, x, num_threads=1):
    """Run a `.tflite` file on `x`, one example at a time.

    Integer inputs and outputs (full-integer models) are quantized and
    dequantized with the scales stored in the file, so `x` and the returned
    outputs are float.

    Args:
        path: A `.tflite` file with one input and one output.
        x: Array of inputs, batch first.
        num_threads: Interpreter threads. Defaults to `1`.

    Returns:
        `(outputs, latency_ms)`: the stacked float outputs and the mean
        milliseconds per example (quantize, invoke and read back).
    """
    interpreter = _interpreter(path, num_threads)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    integer_in = np.issubdtype(inp["dtype"], np.integer)
    integer_out = np.issubdtype(out["dtype"], np.integer)
    info = np.iinfo(inp["dtype"]) if integer_in else None
    outputs = []
    start = time.perf_counter()
    for example in np.asarray(x, dtype="float32"):
        example = example[None]
        if integer_in:
            example = np.clip(np.round(example / in_scale + in_zero),
                              info.min, info.max)
        interpreter.set_tensor(inp["index"], example.astype(inp["dtype"]))
        interpreter.invoke()
        result = interpreter.get_tensor(out["index"])[0]
        if integer_out:
            result = (result.astype("float32") - out_zero) * out_scale
        outputs.append(result)
    elapsed = time.perf_counter() - start
    return np.stack(outputs), 1000.0 * elapsed / max(len(outputs), 1)


def evaluate_tflite(path, x, y, num_threads=1):
    """Top-1 accuracy and per-example latency of a `.tflite` classifier.

    Args:
        path: A `.tflite` file.
        x: Inputs.
        y: Integer labels.
        num_threads: Interpreter threads. Defaults to `1`.

    Returns:
        `(accuracy, latency_ms)`.
    """
    outputs, latency_ms = run_tflite(path, x, num_threads=num_threads)
    accuracy = float(np.mean(np.argmax(outputs, axis=-1) == np.asarray(y)))
    return accuracy, latency_ms
