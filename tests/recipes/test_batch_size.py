"""Tests of `recipes.batch_size` (the batch-size finder)."""

import keras
import matplotlib
import numpy as np
import pytest
import tensorflow as tf

from recipes.batch_size import (
    find_batch_size,
    find_image_classifier_batch_size,
    is_out_of_memory,
    largest_fitting,
)
from tests.helpers import mlp

matplotlib.use("Agg")


@pytest.mark.parametrize("capacity", [1, 16, 100, 1000, 4096, 5000])
def test_largest_fitting_finds_capacity(capacity):
    tried = []

    def fits(size):
        tried.append(size)
        return size <= capacity

    size, limit_reached = largest_fitting(fits, start=16, limit=4096)
    if capacity < 16:
        assert (size, limit_reached) == (0, False)
        return
    if capacity >= 4096:
        assert (size, limit_reached) == (4096, True)
        return
    # Within 1/32 of the true capacity, never above it.
    assert capacity - capacity / 32 - 1 <= size <= capacity
    assert not limit_reached
    assert len(tried) <= 2 * np.log2(4096 / 16) + 2


def test_memory_mode_stops_at_out_of_memory(digits_8x8, monkeypatch):
    (x, y), _ = digits_8x8
    model = mlp(10, (8, 8, 1))
    model.compile("adam", "sparse_categorical_crossentropy")
    before = [v.numpy().copy() for v in model.weights]
    real_fit = keras.Model.fit

    # No GPU here: a training step on more than 200 examples raises the
    # error TensorFlow raises when a GPU runs out of memory.
    def fit(self, data, **kwargs):
        size = int(next(iter(data))[0].shape[0])
        if size > 200:
            raise tf.errors.ResourceExhaustedError(
                None, None, "OOM when allocating tensor")
        return real_fit(self, data, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)
    found = find_batch_size(model, (x, y), mode="memory", start=16,
                            max_batch_size=1024, steps=1)
    assert 200 - 200 / 32 - 1 <= found.batch_size <= 200
    assert found.mode == "memory" and not found.limit_reached
    sizes = [t["batch_size"] for t in found.trials]
    assert sizes[:5] == [16, 32, 64, 128, 256]
    assert not found.trials[4]["fits"]
    for trial in found.trials:
        if trial["fits"]:
            assert trial["examples_per_second"] == pytest.approx(
                trial["batch_size"] / trial["seconds_per_step"])
    # Weights and optimizer are restored.
    for variable, value in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    assert int(model.optimizer.iterations.numpy()) == 0
    assert "<- chosen" in found.table()
    found.plot()


def test_throughput_mode_on_cpu(digits_8x8):
    (x, y), _ = digits_8x8
    model = mlp(10, (8, 8, 1))
    model.compile("adam", "sparse_categorical_crossentropy")
    found = find_batch_size(model, (x[:100], y[:100]), start=8,
                            max_batch_size=64, steps=2)
    assert found.mode == "throughput"  # no GPU here
    sizes = [t["batch_size"] for t in found.trials]
    assert sizes == [8, 16, 32, 64][:len(sizes)]
    best = max(found.trials, key=lambda t: t["examples_per_second"])
    assert found.batch_size == best["batch_size"]
    assert all(t["fits"] and t["seconds_per_step"] > 0
               for t in found.trials)


def test_image_classifier_model(digits_8x8):
    (x, y), _ = digits_8x8
    found = find_image_classifier_batch_size(
        (x, y), num_examples=64, mode="throughput", start=32,
        max_batch_size=64, steps=1)
    assert [t["batch_size"] for t in found.trials] == [32, 64]


def test_is_out_of_memory():
    assert is_out_of_memory(tf.errors.ResourceExhaustedError(
        None, None, "OOM when allocating tensor with shape"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to"))
    assert is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Out of mem"))
    assert not is_out_of_memory(ValueError("shapes do not match"))


def test_bad_input(digits_8x8):
    (x, y), _ = digits_8x8
    model = mlp(10, (8, 8, 1))
    with pytest.raises(ValueError, match="must be a compiled"):
        find_batch_size(model, (x, y))
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="Argument `mode`"):
        find_batch_size(model, (x, y), mode="fast")
    with pytest.raises(ValueError, match="Argument `max_batch_size`"):
        find_batch_size(model, (x, y), start=64, max_batch_size=32)
    with pytest.raises(ValueError, match="Argument `data`"):
        find_batch_size(model, (x, y[:-1]))
    with pytest.raises(ValueError, match="Argument `data`"):
        find_batch_size(model, x)


@pytest.mark.slow
def test_cli_flag_trains_with_the_found_batch_size(tmp_path, capsys,
                                                   digits_8x8):
    import json

    from recipes.cli import main

    (x, y), _ = digits_8x8
    np.savez(tmp_path / "train.npz", x=x[:300], y=y[:300])
    code = main(["fit-image-classifier", str(tmp_path / "train.npz"),
                 "--find-batch-size", "64", "--epochs", "1", "--seed", "0",
                 "--verbose", "0", "--output-dir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0
    chosen = [line for line in out.splitlines() if "<- chosen" in line]
    assert len(chosen) == 1
    found = int(chosen[0].split()[0])
    assert found in (16, 32, 64)
    with open(tmp_path / "run" / "run.json") as f:
        config = json.load(f)["config"]
    assert config["batch_size"] == found
    assert f"{found} (found, throughput)" in out
