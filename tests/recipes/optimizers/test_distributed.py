import json
import os
import subprocess
import sys

import pytest

from tests.helpers import only_on

# tf.distribute.MirroredStrategy: TensorFlow only.
pytestmark = only_on("tensorflow")

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


@pytest.fixture(scope="module")
def results():
    completed = subprocess.run(
        [sys.executable, "-m", "tests.recipes.optimizers._distributed_worker"],
        cwd=_ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": _ROOT},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_lookahead_under_mirrored_strategy_matches_one_device(results):
    # Each replica gets half of the batch; after the all-reduce every step,
    # fast and slow weights equal the single-device run.
    assert results["replicas"] == 2
    assert results["lookahead_max_diff"] < 1e-5
    assert results["slow_max_diff"] < 1e-5


@pytest.mark.slow
def test_sam_and_ranger_train_under_mirrored_strategy(results):
    assert results["sam_loss"][1] < results["sam_loss"][0]
    assert results["sam_accuracy"] > 0.8
    assert results["ranger_loss"][1] < results["ranger_loss"][0]
    assert results["ranger_accuracy"] > 0.7
