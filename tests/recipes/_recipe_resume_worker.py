"""Runs `fit_image_classifier` with an output_dir for the crash-resume tests
(as a subprocess).

Usage: python _recipe_resume_worker.py OUTPUT_DIR OUT.json KILL_EPOCH [WEIGHTS]

KILL_EPOCH >= 0: the process SIGKILLs itself in the middle of that (global)
epoch, after its first compiled call; < 0 trains to the end. WEIGHTS, a
small_cnn weights file, makes the run two-phase (frozen, then fine-tuned).
Every epoch that finishes is appended to OUTPUT_DIR/../epochs.log, so a test
can tell which epochs each process trained.
"""

import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from recipes import fit_image_classifier  # noqa: E402
from recipes.datasets import load_digits_8x8  # noqa: E402
from tests.helpers import CrashInEpoch  # noqa: E402


class Trace(CrashInEpoch):
    """Logs finished epochs; SIGKILLs the process mid-way through one."""

    def __init__(self, log, kill_epoch):
        super().__init__(kill_epoch,
                         lambda: os.kill(os.getpid(), signal.SIGKILL))
        self.log = log

    def on_epoch_end(self, epoch, logs=None):
        with open(self.log, "a") as handle:
            handle.write(f"{epoch}\n")


def main(output_dir, out, kill_epoch, weights=None):
    (x, y), (xv, yv) = load_digits_8x8()
    log = os.path.join(os.path.dirname(output_dir), "epochs.log")
    kwargs = dict(epochs=3)
    if weights:
        kwargs = dict(epochs=2, fine_tune_epochs=2, fine_tune_layers=1,
                      weights=weights, learning_rate=1e-2)
    result = fit_image_classifier(
        (x, y), validation_data=(xv, yv), backbone="small_cnn",
        batch_size=32, patience=10, seed=0, verbose=0,
        output_dir=output_dir, callbacks=[Trace(log, kill_epoch)], **kwargs)
    accuracy = float(np.mean(result.predict(xv) == yv.astype(str)))
    with open(out, "w") as handle:
        json.dump({
            "history_epochs": len(result.history["loss"]),
            "val_accuracy": result.history["val_accuracy"],
            "metrics": result.metrics,
            "accuracy": accuracy,
            "iterations": int(result.model.optimizer.iterations.numpy()),
            "epochs_run": result.config["epochs_run"],
        }, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]),
         sys.argv[4] if len(sys.argv) > 4 else None)
