import json
import logging
import math
import os
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

import recipes
from recipes import distribute
from recipes.datasets import load_digits_8x8


def test_auto_on_this_cpu_machine_is_the_default_strategy(
    monkeypatch, caplog
):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with caplog.at_level(logging.INFO, logger="recipes.distribute"):
        strategy = recipes.get_strategy("auto")
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert "Distribution strategy" in caplog.text


def test_cpu_and_mirrored_names():
    cpu = recipes.get_strategy("cpu")
    assert isinstance(cpu, tf.distribute.OneDeviceStrategy)
    assert cpu.extended.worker_devices[0].endswith("CPU:0")
    mirrored = recipes.get_strategy("mirrored")
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    # Without GPUs, "mirrored" spans every logical CPU device (1 here).
    assert mirrored.num_replicas_in_sync == len(
        tf.config.list_logical_devices("CPU")
    )


def test_strategy_instance_is_returned_unchanged():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    assert recipes.get_strategy(strategy) is strategy


def test_tf_config_worker_count(monkeypatch):
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                 "index": 0}}),
    )
    assert distribute._tf_config_workers() == 2
    monkeypatch.setenv("TF_CONFIG", "not json")
    assert distribute._tf_config_workers() == 0
    monkeypatch.delenv("TF_CONFIG")
    assert distribute._tf_config_workers() == 0


def test_tpu_without_tpu_is_a_clear_error(monkeypatch):
    for name in ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE"):
        monkeypatch.delenv(name, raising=False)
    if distribute._tpu_hint():
        pytest.skip("this machine has a TPU")
    with pytest.raises(ValueError, match="strategy='tpu'"):
        recipes.get_strategy("tpu")


@pytest.mark.parametrize(
    "value, error",
    [("gpu", ValueError), (3, TypeError), (None, TypeError)],
)
def test_get_strategy_rejects_bad_names(value, error):
    with pytest.raises(error, match="strategy"):
        recipes.get_strategy(value)


def test_prepare_model_is_identity_outside_multi_worker():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    for name in ("auto", "cpu"):
        strategy = recipes.get_strategy(name)
        assert not distribute.is_multi_worker(strategy)
        assert distribute.prepare_model(model, strategy) is model


def test_resolve_precision_auto_on_cpu_is_float32():
    cpu = tf.distribute.OneDeviceStrategy("/cpu:0")
    assert distribute.resolve_precision("auto", cpu) == "float32"
    assert distribute.resolve_precision("auto") == (
        "mixed_float16" if distribute._gpus_support_float16() else "float32"
    )


def test_resolve_precision_tpu_and_gpu_rules(monkeypatch):
    monkeypatch.setattr(distribute, "_strategy_devices", lambda s: {"TPU"})
    assert distribute.resolve_precision("auto") == "mixed_bfloat16"
    monkeypatch.setattr(distribute, "_strategy_devices", lambda s: {"GPU"})
    monkeypatch.setattr(distribute, "_gpus_support_float16", lambda: True)
    assert distribute.resolve_precision("auto") == "mixed_float16"
    monkeypatch.setattr(distribute, "_gpus_support_float16", lambda: False)
    assert distribute.resolve_precision("auto") == "float32"


def test_resolve_precision_explicit_and_none():
    for name in ("float32", "mixed_float16", "mixed_bfloat16"):
        assert distribute.resolve_precision(name) == name
    assert distribute.resolve_precision(None) == "float32"


@pytest.mark.parametrize("value", ["float16", "bf16", 16])
def test_resolve_precision_rejects_unknown(value):
    with pytest.raises(ValueError, match="mixed_precision"):
        distribute.resolve_precision(value)


def test_global_batch_size():
    one = tf.distribute.get_strategy()
    assert distribute.global_batch_size(32, one) == 32
    assert distribute.global_batch_size(32) == 32
    with pytest.raises(ValueError, match="per_replica=0"):
        distribute.global_batch_size(0, one)
    with pytest.raises(TypeError, match="per_replica"):
        distribute.global_batch_size(2.5, one)
    with pytest.raises(TypeError, match="strategy"):
        distribute.global_batch_size(32, "mirrored")


def test_scale_learning_rate_rules():
    assert distribute.scale_learning_rate(0.1, 1024, 256) == pytest.approx(
        0.4
    )
    assert distribute.scale_learning_rate(
        0.1, 1024, 256, rule="sqrt"
    ) == pytest.approx(0.2)
    assert distribute.scale_learning_rate(3e-4, 64, 256, rule="sqrt") == (
        pytest.approx(3e-4 * math.sqrt(0.25))
    )
    assert distribute.scale_learning_rate(0.1, 1024, 256, rule=None) == 0.1


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"learning_rate": 0.0}, ValueError, "learning_rate"),
        ({"learning_rate": "big"}, TypeError, "learning_rate"),
        ({"global_batch_size": 0}, ValueError, "global_batch_size"),
        ({"base_batch_size": -8}, ValueError, "base_batch_size"),
        ({"rule": "cubic"}, ValueError, "rule"),
    ],
)
def test_scale_learning_rate_rejects_bad_input(kwargs, error, name):
    args = {"learning_rate": 0.1, "global_batch_size": 64,
            "base_batch_size": 32, **kwargs}
    with pytest.raises(error, match=name):
        distribute.scale_learning_rate(**args)


WORKER = os.path.join(os.path.dirname(__file__), "_strategy_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _worker_env(**extra):
    return dict(os.environ, PYTHONPATH=ROOT, TF_NUM_INTRAOP_THREADS="1",
                TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3", **extra)


def _wait(processes, timeout):
    """Wait for all processes; kill them all if any runs past `timeout`."""
    outputs = []
    try:
        for process in processes:
            out, _ = process.communicate(timeout=timeout)
            outputs.append(out.decode(errors="replace")[-3000:])
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        raise
    return outputs


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.slow
def test_mirrored_over_two_cpu_devices_matches_one_device(tmp_path):
    out = tmp_path / "mirrored.json"
    process = subprocess.Popen(
        [sys.executable, WORKER, "mirrored", str(out)], env=_worker_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    (log,) = _wait([process], timeout=240)
    assert process.returncode == 0, log
    result = json.loads(out.read_text())
    assert result["replicas"] == [1, 2]
    # Same 64-example batches: the mean of two 32-example replica gradients
    # equals the 64-example gradient up to float32 summation order.
    assert result["max_abs_diff"] < 1e-5 * max(1.0, result["max_abs_weight"])


@pytest.mark.slow
def test_two_process_multi_worker_recipe_reaches_accuracy_floor(tmp_path):
    """`fit_image_classifier` as 2 workers on loopback, one output_dir."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    shared = tmp_path / "run"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    processes = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker",
                                               "index": index}}
        processes.append(subprocess.Popen(
            [sys.executable, WORKER, "multi_worker",
             str(tmp_path / f"worker{index}.json"), str(shared)],
            env=_worker_env(TF_CONFIG=json.dumps(config),
                            TMPDIR=str(scratch)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    logs = _wait(processes, timeout=300)
    for process, log in zip(processes, logs, strict=True):
        assert process.returncode == 0, log
    results = [json.loads((tmp_path / f"worker{i}.json").read_text())
               for i in range(2)]
    (x, _), _ = load_digits_8x8()
    steps = -(-len(x) // 64)  # global batch 2 x 32
    for result in results:
        assert result["strategy"] == "CollectiveAllReduceStrategy"
        assert result["replicas"] == 2
        assert result["global_batch_size"] == 64
        assert result["history_epochs"] == 5
        assert result["iterations"] == 5 * steps
        assert result["val_accuracy"] >= 0.85
    # The evaluation is all-reduced: both workers report the same number.
    assert results[0]["val_accuracy"] == results[1]["val_accuracy"]
    # Only the chief (worker 0) wrote the shared run directory, completely.
    names = set(os.listdir(shared))
    assert {"model.keras", "history.csv", "run.json"} <= names
    assert "checkpoints" not in names  # removed once the run finished
    assert json.loads((shared / "run.json").read_text())["status"] == (
        "finished")
    rows = (shared / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 5
    # The non-chief worker's scratch directory was removed at the end.
    assert not any(name.startswith("recipes-worker-")
                   for name in os.listdir(scratch))
