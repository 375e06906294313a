"""Tests of callbacks/unfreezing.py: which layers train at each epoch."""

import keras
import numpy as np
import pytest

import callbacks
from tests.helpers import only_on

# Refused on JAX at construction (tests/test_backend_support.py).
pytestmark = only_on("tensorflow", "torch")


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    stem = keras.layers.Dense(4, name="stem")
    body = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4),
                             keras.layers.BatchNormalization()], name="body")
    head = keras.layers.Dense(1, name="head")
    return keras.Model(inputs, head(body(stem(inputs)))), stem, body


class _Changed(keras.callbacks.Callback):
    """Names of the layers whose weights changed in each epoch."""

    def on_train_begin(self, logs=None):
        self.epochs = []

    def _snapshot(self):
        return {v.path: v.numpy().copy() for v in self.model.weights}

    def on_epoch_begin(self, epoch, logs=None):
        self.before = self._snapshot()

    def on_epoch_end(self, epoch, logs=None):
        after = self._snapshot()
        self.epochs.append(sorted(
            p for p in after if not np.array_equal(after[p],
                                                   self.before[p])))


def _fit(callback, epochs=3, initial_epoch=0, prebuild=False):
    model, stem, body = _model()
    model.compile(keras.optimizers.SGD(0.01), "mse")
    made = callback(stem, body)
    if prebuild:
        model.optimizer.build(model.trainable_variables)
    changed = _Changed()
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    model.fit(x, x[:, :1], epochs=epochs, initial_epoch=initial_epoch,
              batch_size=8, verbose=0, callbacks=[made, changed])
    return model, changed.epochs


def test_head_first_then_one_stage_per_epoch_batchnorm_frozen():
    model, changed = _fit(lambda stem, body: callbacks.GradualUnfreezing(
        [stem, body]))
    head = ["head/bias", "head/kernel"]
    body = ["body/dense/bias", "body/dense/kernel"]
    stem = ["stem/bias", "stem/kernel"]
    # ULMFiT: the head alone, then the top stage, then all.
    assert changed == [head, sorted(body + head), sorted(body + head + stem)]
    # BatchNormalization stayed in inference mode: neither its scale nor
    # its moving statistics moved.
    assert not any("batch_normalization" in p for epoch in changed
                   for p in epoch)
    assert model.get_layer("body").layers[1].trainable is False


def test_explicit_epochs_and_resume_from_initial_epoch():
    _, changed = _fit(lambda stem, body: callbacks.GradualUnfreezing(
        [stem, body], unfreeze_at=[0, 2]), epochs=3, initial_epoch=1)
    # Epochs 1 and 2 ran: the top stage from epoch 0 on, the stem from 2.
    assert [any(p.startswith("stem") for p in e) for e in changed] == [
        False, True]
    assert all(any(p.startswith("body") for p in e) for e in changed)


def test_refuses_an_optimizer_built_with_the_stages_frozen():
    def frozen_first(stem, body):
        stem.trainable = False
        return callbacks.GradualUnfreezing([stem, body])

    # Unbuilt, the callback builds it on every stage; built earlier (by an
    # earlier fit) with the stem frozen, it cannot update the stem. Keras's
    # torch trainer builds it before any callback runs, on what is trainable
    # then: there the stem must be unfrozen when fit starts.
    if keras.backend.backend() == "torch":
        with pytest.raises(ValueError, match="stem/kernel"):
            _fit(frozen_first, epochs=1)
    else:
        _fit(frozen_first, epochs=1)
    with pytest.raises(ValueError, match="stem/kernel"):
        _fit(frozen_first, prebuild=True)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(stages=[]), ValueError, "at least one layer"),
    (dict(stages=["stem"]), TypeError, "stages\\[0\\]"),
    (dict(stages=[keras.layers.Dense(1)] * 2, unfreeze_at=[1]), ValueError,
     "one non-decreasing epoch per stage"),
    (dict(stages=[keras.layers.Dense(1)] * 2, unfreeze_at=[2, 1]),
     ValueError, "unfreeze_at=\\[2, 1\\]"),
    (dict(stages=[keras.layers.Dense(1)], unfreeze_at=[-1]), ValueError,
     "unfreeze_at=-1"),
])
def test_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        callbacks.GradualUnfreezing(**kwargs)
