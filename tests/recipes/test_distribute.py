import json
import logging
import math

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
