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
def test_two_process_multi_worker_training_reaches_accuracy_floor(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker",
                                               "index": index}}
        processes.append(subprocess.Popen(
            [sys.executable, WORKER, "multi_worker",
             str(tmp_path / f"worker{index}.json"),
             str(tmp_path / f"checkpoints{index}")],
            env=_worker_env(TF_CONFIG=json.dumps(config)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    logs = _wait(processes, timeout=300)
    for process, log in zip(processes, logs, strict=True):
        assert process.returncode == 0, log
    results = [json.loads((tmp_path / f"worker{i}.json").read_text())
               for i in range(2)]
    for result in results:
        assert result["strategy"] == "CollectiveAllReduceStrategy"
        assert result["replicas"] == 2
        assert result["accuracy"] >= 0.85
    # Both workers hold the same (all-reduced) model.
    assert results[0]["accuracy"] == results[1]["accuracy"]
    # Only the chief (worker 0) wrote checkpoints.
    assert os.listdir(tmp_path / "checkpoints0")
    assert not (tmp_path / "checkpoints1").exists()
