"""Pruning with an optimizer that writes the weights after the constraints.

Lookahead's slow-weight sync runs after the wrapped optimizer applied the
masking constraint; these runs end on a sync step.
"""

import keras
import numpy as np
import pytest

import recipes
import recipes.optimizers as optimizers
from callbacks import Pruning


def _digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data[:320].astype("float32") / 16, data.target[:320]


def _mlp():
    model = keras.Sequential([keras.Input((64,)),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10)])
    return model


def _compile(model):
    model.compile(optimizers.get("lookahead_adam"),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _zeros_and_expected(model, sparsity):
    """Zeros per kernel, and the count a per-layer target asks for."""
    kernels = [layer.kernel.numpy() for layer in model.layers]
    return ([int(np.sum(k == 0)) for k in kernels],
            [int(round(sparsity * k.size)) for k in kernels])


@pytest.mark.parametrize("steps", [9, 10])  # syncs every 5: 10 ends on one
def test_pruning_callback_with_lookahead(steps):
    x, y = _digits()
    model = _compile(_mlp())
    model.fit(x[:32 * steps], y[:32 * steps], batch_size=32, verbose=0,
              callbacks=[Pruning(0.8, schedule="constant", frequency=1)])
    zeros, expected = _zeros_and_expected(model, 0.8)
    assert zeros == expected


def test_prune_recipe_with_lookahead_saves_its_zeros(tmp_path):
    x, y = _digits()
    model = _compile(recipes.prune(_mlp(), 0.8, schedule="constant",
                                   frequency=1))
    model.fit(x, y, batch_size=32, verbose=0)  # 10 steps, ends on a sync
    path = str(tmp_path / "pruned.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    zeros, expected = _zeros_and_expected(reloaded, 0.8)
    assert zeros == expected
