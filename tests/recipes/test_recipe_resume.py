"""Crash and resume of a whole recipe through its `output_dir`.

A two-phase `fit_image_classifier` run (frozen backbone, then fine-tuning)
is SIGKILLed in the middle of its fine-tuning phase and started again with
the same arguments; the second process must finish the run without training
any finished epoch again, with the optimizer step count of an uninterrupted
run and one history row per epoch.
"""

import csv
import json
import math
import os
import subprocess
import sys

import pytest

from recipes import fit_image_classifier

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
    assert epochs == [0, 1, 2, 3]
    assert result["accuracy"] >= 0.85, result["accuracy"]
    assert json.loads((run / "run.json").read_text())["status"] == (
        "finished")
    # Finished now: the same call is refused instead of retraining.
    again = _run([run, out, -1, weights])
    assert again.returncode != 0
    assert "overwrite=True" in again.stderr
