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
import uuid
import warnings

import keras
import numpy as np
import tensorflow as tf

from callbacks._internal import check_choice, check_number
from recipes.compress._checks import (
    check_batch_shape,
    check_labelled_data,
    model_input_shape,
    model_num_classes,
)

KERAS_MODES = ("int8", "int4", "float8")
TFLITE_MODES = ("none", "dynamic", "float16", "int8")


def quantize(model, mode="int8", **kwargs):
    """Quantize the weights of a built model with Keras's `model.quantize`.

    Supported layers (Dense, EinsumDense, Embedding, ...) switch to
    quantized layers in place; the model still saves to `.keras` and
    reloads with `safe_mode=True`. `"int8"` and `"int4"` store integer
    kernels (plus float scales) and shrink the weights. `"float8"` is
    Keras's float8 *training* mode: the kernels stay float32 and each layer
    gains scales and amax histories, so the weights grow (by about
    `6 * 1024` floats per layer); use it to train or fine-tune in float8,
    not to compress.

    A Keras-quantized model runs in Keras but cannot go through
    `export_tflite`: export the float model and let the TFLite converter
    quantize it instead.

    Args:
        model: A built Keras model.
        mode: `"int8"`, `"int4"` or `"float8"`. Defaults to `"int8"`.
        **kwargs: Passed to `model.quantize` (e.g. `filters`).

    Returns:
        `model`, quantized in place.

    Raises:
        TypeError: If `model` is not a `keras.Model` (a path, say).
        ValueError: If `mode` is unknown or the model is not built.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model = quantize(model, "int8")
    >>> model.layers[0].kernel.dtype
    'int8'
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a `keras.Model` (load a `.keras` "
            "file first with `recipes.load_model(path)`). "
            f"Received: model={model!r}"
        )
    check_choice("mode", mode, KERAS_MODES)
    if not model.built:
        raise ValueError(
            "The model must be built before quantization. "
            f"Received: model={model.name!r}"
        )
    model.quantize(mode, **kwargs)
    return model


def weight_bytes(model):
    """Bytes taken by all the weights of `model` in memory.

    `quantize(model, "int8")` or `"int4"` shrinks this number;
    `"float8"` grows it (float32 kernels plus scaling state).

    Args:
        model: A built Keras model.

    Returns:
        The total size of `model.weights`, in bytes.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> weight_bytes(model)  # (4 * 2 + 2) float32 values
    40
    """
    return int(sum(np.asarray(w.numpy()).nbytes for w in model.weights))


def _keras_quantized_layers(model):
    """Names of the layers, nested models included, `model.quantize` set."""
    names = []
    for layer in getattr(model, "layers", ()):
        policy = getattr(layer, "dtype_policy", None)
        if getattr(policy, "quantization_mode", None):
            names.append(layer.name)
        names += _keras_quantized_layers(layer)
    return names


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


def _inputs_of(element):
    # Keras's convention (`validation_data`, generators, datasets): a tuple
    # is `(x, y)` or `(x, y, sample_weight)`; calibration needs only `x`.
    if isinstance(element, tuple):
        if len(element) not in (2, 3):
            raise ValueError(
                "Argument `representative_data` must hold input arrays or "
                "`(x, y)` / `(x, y, sample_weight)` tuples. Received: a "
                f"tuple of length {len(element)}"
            )
        return element[0]
    return element


def _calibration_examples(data, num_examples, input_shape):
    """The first `num_examples` inputs of `data`, checked, as float32."""
    if isinstance(data, tf.data.Dataset):
        batches = data.as_numpy_iterator()
    elif isinstance(data, tuple) or hasattr(data, "shape"):
        batches = [data]
    else:
        batches = data
    examples = []
    for batch in batches:
        batch = np.asarray(_inputs_of(batch))
        check_batch_shape("representative_data", batch.shape, input_shape)
        if not (np.issubdtype(batch.dtype, np.number)
                or batch.dtype == bool):
            raise ValueError(
                "Argument `representative_data` must hold numeric inputs. "
                f"Received: inputs of dtype {batch.dtype}"
            )
        for example in batch.astype("float32"):
            if len(examples) == num_examples:
                return examples
            examples.append(example[None])
    if not examples:
        raise ValueError(
            "Argument `representative_data` must hold at least one "
            "example to calibrate quantization='int8'. Received: "
            "representative_data with 0 examples"
        )
    return examples


def _check_full_integer(flatbuffer):
    """Raise if a converted 'int8' model does not take and return int8."""
    interpreter = _interpreter(None, 1, model_content=flatbuffer)
    dtypes = {details["dtype"] for details in
              interpreter.get_input_details()
              + interpreter.get_output_details()}
    if dtypes != {np.int8}:
        raise RuntimeError(
            "The TFLite converter did not produce a full-integer model for "
            "quantization='int8' (its inputs and outputs are "
            f"{sorted(np.dtype(d).name for d in dtypes)}); nothing was "
            "written."
        )


def _check_path(path, overwrite):
    """Check the destination; `(path, directory)` as `str`s."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(
            f"Argument `path` must be a file path. Received: path={path!r}"
        )
    path = os.fspath(path)
    if not path.endswith(".tflite"):
        raise ValueError(
            f"Argument `path` must end in '.tflite'. Received: path={path!r}"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or os.path.isdir(path):
        raise ValueError(
            "Argument `path` must name a file in an existing folder. "
            f"Received: path={path!r}"
        )
    _check_not_there(path, overwrite)
    return path, directory


def _check_not_there(path, overwrite):
    """Raise `FileExistsError` if `path` exists and `overwrite` is off."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{path!r} already exists; pass overwrite=True to replace it."
        )


def _check_model(model):
    """Check that `model` converts; `(input_shape, input_dtype)`."""
    quantized = _keras_quantized_layers(model)
    if quantized:
        raise ValueError(
            "Argument `model` must not be quantized by Keras "
            "(`quantize` / `model.quantize`): its integer kernels do not "
            "convert to TFLite. Export the float model instead, with "
            "quantization='dynamic', 'float16' or 'int8' to let the TFLite "
            f"converter quantize it. Received: model={model.name!r} with "
            f"quantized layers {quantized}"
        )
    input_shape = model_input_shape(model, "model")
    inputs = getattr(model, "inputs", None)
    input_dtype = inputs[0].dtype if inputs else "float32"
    if input_dtype == "string":
        raise ValueError(
            "Argument `model` must take numeric inputs: TFLite's builtin "
            "ops have no string support. Export the part of the model "
            "after its text preprocessing. Received: "
            f"model={model.name!r} with input dtype {input_dtype}"
        )
    return input_shape, input_dtype


def _int8_calibration(model, input_dtype, input_shape, representative_data,
                      num_calibration_examples):
    """Check that `model` suits 'int8'; its calibration examples."""
    if not np.issubdtype(np.dtype(input_dtype), np.floating):
        raise ValueError(
            "Argument `quantization` must not be 'int8' for a model "
            "with integer inputs: full-integer quantization rescales "
            "float inputs to int8. Use 'dynamic' or 'float16'. "
            f"Received: quantization='int8' for model={model.name!r} "
            f"with input dtype {input_dtype}"
        )
    if representative_data is None:
        raise ValueError(
            "Argument `representative_data` is required for "
            "quantization='int8' (full-integer calibration). "
            "Received: representative_data=None"
        )
    return _calibration_examples(
        representative_data, num_calibration_examples, input_shape
    )


def _converter(saved_model, quantization, calibration):
    """A `tf.lite.TFLiteConverter` for `saved_model`, set up for the mode."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        converter.representative_dataset = lambda: (
            [example] for example in calibration
        )
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        ]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter


def _convert(model, quantization, calibration, progress):
    """The TFLite flatbuffer of `model`, through a temporary SavedModel."""
    with tempfile.TemporaryDirectory() as tmp:
        saved_model = os.path.join(tmp, "saved_model")
        model.export(saved_model, format="tf_saved_model", verbose=False)
        if progress:
            progress.update(1)
        flatbuffer = _converter(saved_model, quantization,
                                calibration).convert()
    if progress:
        progress.update(2)
    if quantization == "int8":
        _check_full_integer(flatbuffer)
    return flatbuffer


def _write_measured(flatbuffer, path, directory, overwrite, validation_data,
                    progress):
    """Write `flatbuffer` to `path` once measured; `(accuracy, latency_ms)`.

    It goes to a temporary file next to `path`, measured there, and is
    renamed to `path` only if that succeeded; the temporary file never
    outlives the call.
    """
    partial = os.path.join(
        directory,
        f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.partial",
    )
    try:
        with open(partial, "xb") as f:
            f.write(flatbuffer)
        accuracy = latency_ms = None
        if validation_data is not None:
            accuracy, latency_ms = evaluate_tflite(partial, *validation_data)
            if progress:
                progress.update(3)
        _check_not_there(path, overwrite)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return accuracy, latency_ms


def export_tflite(model, path, quantization="none", representative_data=None,
                  num_calibration_examples=200, validation_data=None,
                  overwrite=False, verbose=1):
    """Export `model` to a `.tflite` file, optionally quantized, and measure it.

    The model is exported as a SavedModel (`model.export`) in a temporary
    folder and converted with `tf.lite.TFLiteConverter`:

    - `"none"`: float32.
    - `"dynamic"`: int8 weights, float activations (dynamic range).
    - `"float16"`: float16 weights.
    - `"int8"`: full-integer model (int8 weights, activations, inputs and
      outputs) calibrated on `representative_data`.

    Export the float model: the converter quantizes it itself. A model
    already quantized by `quantize` (Keras's `model.quantize`) is refused,
    as its integer Keras kernels do not convert.

    With `validation_data=(x, y)` the converted model is run example by
    example in the TFLite interpreter to measure its accuracy and latency.

    Every argument is checked before the conversion starts. The file is
    written under a temporary name next to `path` and renamed to `path`
    only once the conversion and the measurement succeeded, so a failed
    call leaves no file behind and never replaces an existing one.

    Args:
        model: A built single-input Keras model with numeric inputs (float
            inputs for `"int8"`), not quantized by Keras.
        path: Destination ending in `.tflite`, in an existing folder.
        quantization: One of `"none"`, `"dynamic"`, `"float16"`, `"int8"`.
            Defaults to `"none"`.
        representative_data: Inputs for int8 calibration: an array, an
            `(x, y)` tuple (only `x` is used, as Keras does with
            `validation_data`), a list or other iterable of batches (arrays
            or `(x, y)` tuples), or a `tf.data.Dataset` of batches. Required
            for `"int8"`, with at least one example. Defaults to `None`.
        num_calibration_examples: How many examples calibrate int8.
            Defaults to `200`.
        validation_data: `(x, y)` with 1-D integer labels, to measure
            accuracy and latency. Defaults to `None`.
        overwrite: Replace an existing file at `path`. Defaults to `False`.
        verbose: 1 shows a progress bar over the stages (SavedModel
            export, conversion, measurement), which take from seconds to
            minutes; 0 is silent. Defaults to `1`.

    Returns:
        A `TFLiteReport`.

    Raises:
        ValueError: If `quantization` is unknown, `path` does not end in
            `.tflite` or its folder does not exist, the model is
            Keras-quantized or has string inputs (or integer inputs with
            `"int8"`), `"int8"` lacks calibration examples, or
            `representative_data` or `validation_data` do not fit the
            model.
        FileExistsError: If `path` exists and `overwrite=False`.
        RuntimeError: If `"int8"` was requested but the converter did not
            produce int8 inputs and outputs.

    Example:

    >>> import os, tempfile
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.tflite")
    >>> report = export_tflite(model, path, quantization="dynamic",
    ...                        verbose=0)
    >>> report.size_bytes == os.path.getsize(path)
    True

    References:
        - [Jacob et al., 2018](https://arxiv.org/abs/1712.05877):
          Quantization and training of neural networks for efficient
          integer-arithmetic-only inference.
    """
    check_choice("quantization", quantization, TFLITE_MODES)
    check_choice("verbose", verbose, (0, 1))
    num_calibration_examples = check_number(
        "num_calibration_examples", num_calibration_examples, low=1,
        integer=True,
    )
    path, directory = _check_path(path, overwrite)
    input_shape, input_dtype = _check_model(model)
    calibration = None
    if quantization == "int8":
        calibration = _int8_calibration(
            model, input_dtype, input_shape, representative_data,
            num_calibration_examples,
        )
    if validation_data is not None:
        validation_data = check_labelled_data(
            "validation_data", validation_data, input_shape,
            model_num_classes(model),
        )

    # Conversion alone can take minutes for a large model.
    stages = 3 if validation_data is not None else 2
    progress = (keras.utils.Progbar(stages, unit_name="stage")
                if verbose else None)
    flatbuffer = _convert(model, quantization, calibration, progress)
    accuracy, latency_ms = _write_measured(
        flatbuffer, path, directory, overwrite, validation_data, progress
    )
    return TFLiteReport(path, quantization, len(flatbuffer), accuracy,
                        latency_ms)


def _interpreter(path, num_threads, model_content=None):
    with warnings.catch_warnings():
        # TF 2.21 warns that tf.lite.Interpreter moves to ai-edge-litert.
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(
            model_path=None if path is None else os.fspath(path),
            model_content=model_content, num_threads=num_threads,
        )
    interpreter.allocate_tensors()
    return interpreter


def run_tflite(path, x, num_threads=1):
    """Run a `.tflite` file on `x`, one example at a time.

    Quantized inputs and outputs (full-integer models) are quantized and
    dequantized with the scales stored in the file, so `x` and the returned
    outputs are float. Inputs without a quantization scale are cast to the
    input's own dtype.

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
    # A zero scale marks a tensor that is not quantized (e.g. the integer
    # token ids of an Embedding model): its values go in as they are.
    quantized_in = np.issubdtype(inp["dtype"], np.integer) and in_scale != 0
    quantized_out = (np.issubdtype(out["dtype"], np.integer)
                     and out_scale != 0)
    info = np.iinfo(inp["dtype"]) if quantized_in else None
    x = np.asarray(x, dtype="float32" if quantized_in else inp["dtype"])
    outputs = []
    start = time.perf_counter()
    for example in x:
        example = example[None]
        if quantized_in:
            example = np.clip(np.round(example / in_scale + in_zero),
                              info.min, info.max)
        interpreter.set_tensor(inp["index"], example.astype(inp["dtype"]))
        interpreter.invoke()
        result = interpreter.get_tensor(out["index"])[0]
        if quantized_out:
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
