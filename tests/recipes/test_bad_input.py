"""Bad-input catalogue: each malformed call raises ONE clear exception.

Every case is `(call, exception type, argument name)`. `call` receives the
`workspace` folder, pre-filled with user files (a valid model, a corrupt
`.keras` file, a legacy `.h5` file, a damaged checkpoint folder, a text
file); the test checks that the call raises the expected type, that the
message names the argument in the Keras style ("... Received: name=..."),
and that no file of the workspace was modified, created or deleted.

To add cases for another module, append `case(...)` entries to `CASES`
(or build a list in your module and add it here).
"""

import json
import os

import keras
import numpy as np
import pytest

import callbacks
import recipes
from callbacks import Checkpointing, DivergenceGuard, checkpoint_status
from recipes import backbones, distribute
from recipes import data as image_data


def case(call, error, name, id):
    return pytest.param(call, error, name, id=id)


CASES = [
    # recipes.distribute
    case(lambda ws: recipes.get_strategy("gpu"), ValueError, "strategy",
         id="strategy-unknown-name"),
    case(lambda ws: recipes.get_strategy(3), TypeError, "strategy",
         id="strategy-number"),
    case(lambda ws: distribute.resolve_precision("float16"), ValueError,
         "mixed_precision", id="precision-unknown"),
    case(lambda ws: distribute.resolve_precision("auto", strategy="tpu"),
         TypeError, "strategy", id="precision-strategy-string"),
    case(lambda ws: distribute.global_batch_size(0), ValueError,
         "per_replica", id="batch-zero"),
    case(lambda ws: distribute.global_batch_size("32"), TypeError,
         "per_replica", id="batch-string"),
    case(lambda ws: distribute.scale_learning_rate(-0.1, 64, 32),
         ValueError, "learning_rate", id="lr-negative"),
    case(lambda ws: distribute.scale_learning_rate(float("nan"), 64, 32),
         ValueError, "learning_rate", id="lr-nan"),
    case(lambda ws: distribute.scale_learning_rate(0.1, 64, 0), ValueError,
         "base_batch_size", id="base-batch-zero"),
    case(lambda ws: distribute.scale_learning_rate(0.1, 64, 32, "cubic"),
         ValueError, "rule", id="lr-rule-unknown"),
    # callbacks.Checkpointing
    case(lambda ws: Checkpointing(os.path.join(ws, "notes.txt")),
         ValueError, "directory", id="checkpoint-dir-is-a-file"),
    case(lambda ws: Checkpointing(ws, save_freq=0), ValueError, "save_freq",
         id="checkpoint-save-freq-zero"),
    case(lambda ws: Checkpointing(ws, save_freq="step"), ValueError,
         "save_freq", id="checkpoint-save-freq-unknown"),
    case(lambda ws: Checkpointing(ws, keep=1), ValueError, "keep",
         id="checkpoint-keep-one"),
    case(lambda ws: checkpoint_status(os.path.join(ws, "damaged_run")),
         ValueError, "directory", id="checkpoint-all-corrupt"),
    # callbacks.DivergenceGuard
    case(lambda ws: DivergenceGuard(lr_factor=0.0), ValueError,
         "lr_factor", id="guard-lr-factor-zero"),
    case(lambda ws: DivergenceGuard(spike_factor="big"), TypeError,
         "spike_factor", id="guard-spike-string"),
    case(lambda ws: DivergenceGuard(max_retries=-1), ValueError,
         "max_retries", id="guard-retries-negative"),
    # recipes.load_model
    case(lambda ws: recipes.load_model(os.path.join(ws, "missing.keras")),
         FileNotFoundError, "path", id="load-missing"),
    case(lambda ws: recipes.load_model(os.path.join(ws, "corrupt.keras")),
         ValueError, "path", id="load-corrupt-keras"),
    case(lambda ws: recipes.load_model(os.path.join(ws, "legacy.h5")),
         ValueError, "path", id="load-legacy-h5"),
    case(lambda ws: recipes.load_model(ws), ValueError, "path",
         id="load-folder"),
    case(lambda ws: recipes.load_model(os.path.join(ws, "notes.txt")),
         ValueError, "path", id="load-unknown-extension"),
    case(lambda ws: recipes.load_model(None), TypeError, "path",
         id="load-none"),
    # callbacks: schedules and callbacks
    case(lambda ws: callbacks.CyclicalLearningRate(1e-3, 1e-2, step_size=0),
         ValueError, "step_size", id="clr-step-size-zero"),
    case(lambda ws: callbacks.WarmupCosineDecay(1e-3, 100, warmup_steps=200),
         ValueError, "warmup_steps", id="warmup-longer-than-total"),
    case(lambda ws: callbacks.OneCycleLR(1e-2, total_steps="100"),
         TypeError, "total_steps", id="one-cycle-steps-string"),
    case(lambda ws: callbacks.CyclicalLR(1e-2, 1e-3, step_size=10),
         ValueError, "maximal_learning_rate", id="clr-max-below-initial"),
    case(lambda ws: callbacks.StepDecay(0.1, factor=0.5), ValueError,
         "step_size", id="step-decay-no-steps"),
    case(lambda ws: callbacks.EarlyStopping(max_time=-1), ValueError,
         "max_time", id="early-stopping-negative-time"),
    case(lambda ws: callbacks.LRFinder(num_steps=0), ValueError,
         "num_steps", id="lr-finder-no-steps"),
    # recipes.fit_image_classifier: data and output_dir
    case(lambda ws: recipes.fit_image_classifier(
        (np.full((20, 8, 8, 1), np.nan, "float32"), np.arange(20) % 2)),
        ValueError, "data", id="image-nan-pixels"),
    case(lambda ws: recipes.fit_image_classifier(
        (np.zeros((0, 8, 8, 1), "float32"), np.zeros(0, "int64"))),
        ValueError, "data", id="image-empty"),
    case(lambda ws: recipes.fit_image_classifier(
        (np.zeros((20, 8, 8, 1), "float32"), np.arange(20) % 2),
        output_dir=os.path.join(ws, "finished_run")),
        ValueError, "output_dir", id="image-finished-output-dir"),
    case(lambda ws: recipes.fit_image_classifier(
        (np.zeros((20, 8, 8, 1), "float32"), np.arange(20) % 2),
        epochs=0), ValueError, "epochs", id="image-zero-epochs"),
    case(lambda ws: recipes.fit_image_classifier(
        (np.zeros((20, 8, 8, 1), "float32"), np.arange(20) % 2),
        backbone="resnet9000"), ValueError, "backbone",
        id="image-unknown-backbone"),
]


# issue 18, item 8 (and the data checks of items 5-7).
def _pixels():
    return np.zeros((20, 8, 8, 1), "float32"), np.arange(20) % 2


def _result_255():
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    return recipes.ImageClassifierResult(
        model, ["a", "b"], {}, {}, {"value_range": 255.0})


def _offline(call):
    # A proxy nobody listens on: the download fails at once, as offline.
    def run(ws):
        saved = {k: os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy")}
        os.environ["HTTPS_PROXY"] = os.environ["https_proxy"] = (
            "http://127.0.0.1:9")
        try:
            return call(ws)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return run


def _nan_dataset():
    import tensorflow as tf

    x, y = _pixels()
    x[7, 2, 3, 0] = np.nan
    return tf.data.Dataset.from_tensor_slices((x, y))


def _logits_model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


CASES += [
    case(lambda ws: recipes.fit_image_classifier(
        _pixels(), callbacks=[1], output_dir=os.path.join(ws, "new_run")),
        TypeError, "callbacks", id="image-callbacks-not-callbacks"),
    case(lambda ws: recipes.fit_image_classifier(_pixels(), seed=2**40),
         ValueError, "seed", id="image-seed-over-32-bits"),
    case(lambda ws: recipes.fit_image_classifier(
        _pixels(), backbone="mobilenet_v2", weights=None, image_size=16),
        ValueError, "image_size", id="image-size-below-backbone-minimum"),
    case(lambda ws: backbones.build_backbone(os.path.join(ws, "corrupt.keras")),
         ValueError, "backbone", id="backbone-truncated-keras"),
    case(lambda ws: backbones.build_backbone(
        os.path.join(ws, "not_a_zip.keras")),
        ValueError, "backbone", id="backbone-keras-not-zip"),
    case(lambda ws: image_data.load_image_data(
        os.path.join(ws, "images"),
        validation_data=os.path.join(ws, "images_val")),
        ValueError, "validation_data", id="image-validation-classes-differ"),
    case(lambda ws: recipes.fit_sequence_classifier(
        (["", " ", "", "  "] * 5, [0, 1] * 10)),
        ValueError, "data", id="sequence-empty-strings"),
    case(lambda ws: recipes.quantize(os.path.join(ws, "model.keras")),
         TypeError, "model", id="quantize-a-path"),
    case(lambda ws: recipes.tune_image_classifier(
        _pixels(), directory=os.path.join(ws, "notes.txt")),
        ValueError, "directory", id="tuner-directory-is-a-file"),
    case(lambda ws: recipes.load_model(os.path.join(ws, "model.keras"),
                                       custom_objects=5),
         TypeError, "custom_objects", id="load-custom-objects-not-dict"),
    case(lambda ws: recipes.fit_image_classifier(
        os.path.join(ws, "images"),
        output_dir=os.path.join(ws, "images", "run")),
        ValueError, "output_dir", id="image-output-dir-inside-data"),
    case(lambda ws: recipes.distill(
        _logits_model(), _logits_model(),
        (np.full((8, 4), np.nan, "float32"), np.arange(8) % 3)),
        ValueError, "data", id="distill-nan-inputs"),
    case(lambda ws: _result_255().predict(np.full((2, 4, 4, 1), 300.0)),
         ValueError, "images", id="predict-pixels-above-training-range"),
    case(lambda ws: recipes.fit_image_classifier(_nan_dataset()),
         ValueError, "data", id="image-tf-data-nan-pixels"),
    case(_offline(lambda ws: backbones.build_backbone(
        "mobilenet_v2", weights="imagenet", input_shape=(32, 32, 3))),
        ValueError, "weights", id="backbone-imagenet-offline"),
]


def _snapshot(folder):
    state = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                state[path] = (handle.read(), os.stat(path).st_mtime_ns)
    return state


@pytest.fixture(scope="module")
def _model_bytes(tmp_path_factory):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def _png_bytes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("png")
    images = []
    for i in range(2):
        keras.utils.save_img(folder / f"{i}.png",
                             np.full((8, 8, 3), 40 * i, "uint8"),
                             scale=False)
        images.append((folder / f"{i}.png").read_bytes())
    return images


@pytest.fixture
def workspace(tmp_path, _model_bytes, _png_bytes):
    (tmp_path / "model.keras").write_bytes(_model_bytes)
    (tmp_path / "corrupt.keras").write_bytes(_model_bytes[:100])
    (tmp_path / "legacy.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"0" * 64)
    (tmp_path / "notes.txt").write_text("the user's own notes")
    finished = tmp_path / "finished_run"
    finished.mkdir()
    (finished / "run.json").write_text(json.dumps({"status": "finished"}))
    (tmp_path / "not_a_zip.keras").write_text("not a Keras archive")
    for folder, classes in (("images", "ab"), ("images_val", "ac")):
        for name in classes:
            (tmp_path / folder / name).mkdir(parents=True)
            for i, png in enumerate(_png_bytes):
                (tmp_path / folder / name / f"{i}.png").write_bytes(png)
    damaged = tmp_path / "damaged_run"
    damaged.mkdir()
    (damaged / "ckpt-000000000001.npz").write_bytes(b"truncated")
    return str(tmp_path)


@pytest.mark.filterwarnings("ignore:Checkpoint .* is unreadable")
@pytest.mark.parametrize("call, error, name", CASES)
def test_bad_input_raises_one_clear_error(workspace, call, error, name):
    before = _snapshot(workspace)
    with pytest.raises(error) as info:
        call(workspace)
    message = str(info.value)
    assert f"`{name}`" in message, message
    assert f"Received: {name}=" in message, message
    assert _snapshot(workspace) == before
