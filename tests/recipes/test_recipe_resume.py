"""Crash and resume of a whole recipe through its `output_dir`.

A two-phase `fit_image_classifier` run (frozen backbone, then fine-tuning)
is SIGKILLed in the middle of its fine-tuning phase and started again with
the same arguments; the second process must finish the run without training
any finished epoch again, with the optimizer step count of an uninterrupted
run and one history row per epoch. Runs without in-pipeline augmentation
that crash (here: an exception in a callback) and resume must end with the
uninterrupted run's weights, bit for bit.
"""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from recipes import fit_image_classifier
from tests.helpers import CrashInEpoch

WORKER = os.path.join(os.path.dirname(__file__), "_recipe_resume_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _run(args, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_NUM_INTRAOP_THREADS="1",
               TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, WORKER, *map(str, args)],
                          env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_sigkilled_two_phase_recipe_resumes_from_output_dir(
        tmp_path, digits_8x8):
    (x, y), (xv, yv) = digits_8x8
    # Backbone weights trained here: makes the recipe two-phase.
    pretrained = fit_image_classifier(
        (x, y), validation_data=(xv, yv), epochs=3, batch_size=32,
        verbose=0, seed=0)
    weights = tmp_path / "cnn.weights.h5"
    pretrained.model.get_layer("small_cnn").save_weights(str(weights))

    run = tmp_path / "job" / "run"
    out = tmp_path / "result.json"
    # Global epochs 0-1 are phase 1, 2-3 phase 2; die inside epoch 3.
    killed = _run([run, out, 3, weights])
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not out.exists()
    log = tmp_path / "job" / "epochs.log"
    assert log.read_text().split() == ["0", "1", "2"]
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "running"

    resumed = _run([run, out, -1, weights])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # Only the interrupted epoch was trained again; phase 1 was not.
    assert log.read_text().split() == ["0", "1", "2", "3"]
    result = json.loads(out.read_text())
    steps = math.ceil(len(x) / 32)
    # The phase-2 optimizer: its 2 epochs of steps, no replayed batch.
    assert result["iterations"] == 2 * steps
    assert result["history_epochs"] == result["epochs_run"] == 4
    with open(run / "history.csv", newline="") as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == [1, 2, 3, 4]
    assert result["accuracy"] >= 0.85, result["accuracy"]
    assert json.loads((run / "run.json").read_text())["status"] == (
        "finished")
    # Finished now: the same call is refused instead of retraining.
    again = _run([run, out, -1, weights])
    assert again.returncode != 0
    assert "overwrite=True" in again.stderr


def _raise():
    raise RuntimeError("crash")


def _crash_and_resume(run_dir, crash_epoch, **kwargs):
    with pytest.raises(RuntimeError, match="crash"):
        fit_image_classifier(output_dir=str(run_dir),
                             callbacks=[CrashInEpoch(crash_epoch, _raise)],
                             **kwargs)
    assert json.loads((run_dir / "run.json").read_text())["status"] == (
        "running")
    return fit_image_classifier(output_dir=str(run_dir), **kwargs)


def _assert_same_run(a, b):
    for x, y in zip(a.model.get_weights(), b.model.get_weights(),
                    strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.history == b.history


@pytest.mark.slow
@pytest.mark.parametrize("learning_rate", [None, "auto"])
def test_resumed_run_ends_with_the_uninterrupted_weights(
        tmp_path, digits_8x8, learning_rate):
    # Shuffled every epoch, head dropout 0.2, and with "auto" an LR range
    # test before training: the resumed epochs must see the same batch
    # orders and dropout masks as the uninterrupted run's.
    (x, y), (xv, yv) = digits_8x8
    kwargs = dict(data=(x, y), validation_data=(xv, yv), epochs=4,
                  learning_rate=learning_rate, patience=10, seed=0,
                  verbose=0)
    reference = fit_image_classifier(output_dir=str(tmp_path / "ref"),
                                     **kwargs)
    resumed = _crash_and_resume(tmp_path / "run", 2, **kwargs)
    _assert_same_run(reference, resumed)


@pytest.mark.slow
def test_resumed_two_phase_run_ends_with_the_uninterrupted_weights(
        tmp_path, digits_8x8):
    (x, y), (xv, yv) = digits_8x8
    pretrained = fit_image_classifier((x, y), validation_data=(xv, yv),
                                      epochs=1, verbose=0, seed=1)
    weights = str(tmp_path / "cnn.weights.h5")
    pretrained.model.get_layer("small_cnn").save_weights(weights)
    kwargs = dict(data=(x, y), validation_data=(xv, yv), weights=weights,
                  epochs=2, fine_tune_epochs=2, fine_tune_layers=1,
                  augment="none", patience=10, seed=0, verbose=0)
    reference = fit_image_classifier(output_dir=str(tmp_path / "ref"),
                                     **kwargs)
    # Epoch 2 is the first of phase 2 (a fresh phase 2 after phase 1 is
    # read back from disk), epoch 3 its second (phase 2 resumed).
    for crash_epoch in (2, 3):
        resumed = _crash_and_resume(tmp_path / f"run{crash_epoch}",
                                    crash_epoch, **kwargs)
        _assert_same_run(reference, resumed)
