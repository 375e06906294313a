"""A tuning process for the subprocess tests (resume, chief/worker).

Usage: python -m tests.recipes._tuning_worker DIRECTORY TUNER MAX_TRIALS

Tunes on a real MNIST-5k subset (600 train / 200 validation images, one
epoch per trial) and prints the results table as one JSON line.
"""

import json
import sys

from recipes.datasets import load_mnist_5k
from recipes.tuning import tune_image_classifier

TRAIN, VALIDATION = 600, 200


def main(directory, tuner, max_trials):
    (x, y), (xv, yv) = load_mnist_5k()
    result = tune_image_classifier(
        (x[:TRAIN], y[:TRAIN]), validation_data=(xv[:VALIDATION],
                                                 yv[:VALIDATION]),
        tuner=tuner, max_trials=int(max_trials), max_epochs=1,
        directory=directory, project_name="search",
        space={"augment": "none", "batch_size": 64})
    if result is not None:
        print("TABLE " + json.dumps(list(result.table)), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
