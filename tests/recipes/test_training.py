"""The recipes' run directory (`recipes._run_dir.OutputDir`) and
optimizer building before `fit`."""

import csv
import json
import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from recipes import _optimization, fit_image_classifier
from recipes._run_dir import OutputDir

HEADER = "epoch,accuracy,loss,val_accuracy,val_loss\n"


def _rows(*epochs):
    return "".join(f"{e},0.{e}5,1.{e},0.{e}4,1.{e}5\n" for e in epochs)


def test_remember_and_recall_only_while_running(tmp_path):
    out = OutputDir(tmp_path / "run")
    out.open()
    assert out.recall() == {}
    out.remember(learning_rate=0.0123)
    out.remember(other=1)
    assert out.recall() == {"learning_rate": 0.0123, "other": 1}
    # A new process sees the same values (what a resumed run reads).
    assert OutputDir(tmp_path / "run").recall()["learning_rate"] == 0.0123
    assert not out.finished()
    (tmp_path / "run" / "run.json").write_text(json.dumps(
        {"status": "finished", "resolved": {"learning_rate": 1.0}}))
    assert OutputDir(tmp_path / "run", overwrite=True).recall() == {}


def test_history_rows_are_read_by_epoch_range(tmp_path):
    # The file counts epochs from 1 (as the console does), Keras from 0:
    # Keras epochs 1 and 2 are the file's rows 2 and 3.
    out = OutputDir(tmp_path)
    (tmp_path / "history.csv").write_text(HEADER + _rows(1, 2, 3, 4))
    history = out.read_history(1, 3)
    assert history["loss"] == [1.2, 1.3]
    assert history["val_accuracy"] == [0.24, 0.34]
    assert len(out.read_history(2, None)["accuracy"]) == 2


def test_history_truncated_to_the_resume_epoch(tmp_path):
    # Resuming at Keras epoch 2 keeps the file's epochs 1 and 2.
    out = OutputDir(tmp_path)
    (tmp_path / "history.csv").write_text(HEADER + _rows(1, 2, 3))
    out._truncate_history(2)
    assert (tmp_path / "history.csv").read_text() == HEADER + _rows(1, 2)


def test_finished_run_needs_overwrite(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"status": "finished"}))
    with pytest.raises(ValueError, match="overwrite=True"):
        OutputDir(tmp_path)


def _digits_mlp(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10, activation="softmax")])


class _VariablesCreatedInFunctions:
    """Counts variables created inside traced functions (public TF API)."""

    def __init__(self):
        self.names = []

    def __enter__(self):
        def creator(next_creator, **kwargs):
            if tf.inside_function():
                self.names.append(kwargs.get("name"))
            return next_creator(**kwargs)

        self._scope = tf.variable_creator_scope(creator)
        self._scope.__enter__()
        return self

    def __exit__(self, *exc):
        self._scope.__exit__(*exc)


def test_build_optimizer_traces_the_train_step_once(digits_8x8):
    (x, y), _ = digits_8x8
    runs = {}
    for prebuilt in (False, True):
        keras.backend.clear_session()
        model = _digits_mlp(seed=3)
        model.compile(keras.optimizers.AdamW(1e-3),
                      "sparse_categorical_crossentropy")
        if prebuilt:
            _optimization.build_optimizer(model)
            assert model.optimizer.built
            # Adam's two slots per trainable variable exist before `fit`.
            slots = {v.path for v in model.optimizer.variables}
            for variable in model.trainable_variables:
                assert any(variable.name in s and "momentum" in s
                           for s in slots)
        traces = []
        step = model.train_step

        def counting_step(data, step=step, traces=traces):
            traces.append(1)
            return step(data)

        model.train_step = counting_step
        with _VariablesCreatedInFunctions() as created:
            model.fit(x, y, batch_size=64, epochs=2, verbose=0,
                      shuffle=False)
        runs[prebuilt] = (len(traces), created.names,
                          [w.copy() for w in model.get_weights()])
    # Plain Keras creates Adam's slots inside the first trace, so TF traces
    # the step again; built beforehand, one trace and no variable creation.
    assert runs[False][1], "Keras no longer builds slots inside the trace"
    assert runs[True][0] == 1 and runs[True][1] == []
    # Same training either way.
    for ours, plain in zip(runs[True][2], runs[False][2], strict=True):
        np.testing.assert_allclose(ours, plain, rtol=1e-6, atol=1e-6)


def test_recipe_creates_no_variable_inside_its_train_step(digits_8x8):
    (x, y), (xv, yv) = digits_8x8
    with _VariablesCreatedInFunctions() as created:
        fit_image_classifier((x, y), validation_data=(xv, yv), epochs=1,
                             seed=0, verbose=0)
    assert created.names == []


def test_a_diverging_recipe_raises_and_names_the_last_good_epoch(
        digits_8x8, tmp_path):
    (x, y), _ = digits_8x8
    with pytest.raises(Exception) as raised:
        fit_image_classifier((x[:256], y[:256]), epochs=2, batch_size=64,
                             learning_rate=1e8, verbose=0, seed=0,
                             output_dir=tmp_path / "run")
    # Not a NaN model returned silently: the guard's error, explained.
    from callbacks import DivergenceError
    assert isinstance(raised.value, DivergenceError)
    message = str(raised.value)
    assert "diverged" in message and "learning_rate" in message
    # Which epoch was the last good one depends on the CPU's arithmetic
    # (at this rate the first epoch's loss is ~1e26, finite or not): the
    # message must name the one history.csv shows.
    named = re.search(r"no epoch finished without diverging|the last epoch "
                      r"that finished without diverging is epoch (\d+)",
                      message)
    assert named, message
    history = tmp_path / "run" / "history.csv"
    losses = []
    if history.exists():
        with open(history, newline="") as f:
            losses = [float(row["loss"]) for row in csv.DictReader(f)]
    good = 0
    while good < len(losses) and math.isfinite(losses[good]):
        good += 1
    assert int(named.group(1) or 0) == good
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "failed"
    assert "diverged" in run["error"]


def test_default_learning_rate_uses_the_batch_the_data_allows(digits_8x8):
    from recipes import optimizers

    (x, y), _ = digits_8x8
    n = 200
    result = fit_image_classifier((x[:n], y[:n]), epochs=1,
                                  batch_size=10**9, verbose=0, seed=0)
    # The square-root rule from batch 32, at the 160 training examples a
    # batch can hold (200 less the 20% validation split), times the
    # from-scratch factor 2 (small_cnn trains from scratch).
    assert result.config["num_train"] == 160
    expected = (optimizers.default_learning_rate("adamw")
                * np.sqrt(160 / 32) * 2.0)
    np.testing.assert_allclose(result.config["learning_rate"], expected,
                               rtol=1e-6)
