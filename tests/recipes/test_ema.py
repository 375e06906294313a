"""The recipes' weight average (EMA): swapping, finding, validating."""

import keras
import numpy as np
import pytest

from recipes import _ema, fit_image_classifier
from recipes.optimizers import DiscriminativeOptimizer, Lookahead


def test_swap_exchanges_values_exactly():
    # 1 + 1e-8 rounds to 1 in float32: a swap through additions and
    # subtractions (as keras.callbacks.SwapEMAWeights does) loses 1e-8.
    variable = keras.Variable(np.array([1e-8, 3.0, -2.5], "float32"))
    average = keras.Variable(np.array([1.0, 1e-30, 7.0], "float32"))
    _ema.swap([(variable, average)])
    np.testing.assert_array_equal(variable.numpy(),
                                  np.array([1.0, 1e-30, 7.0], "float32"))
    np.testing.assert_array_equal(average.numpy(),
                                  np.array([1e-8, 3.0, -2.5], "float32"))


def _variables(count):
    return [keras.Variable(np.full((2,), float(i), "float32"), name=f"v{i}")
            for i in range(count)]


def _adamw():
    return keras.optimizers.AdamW(1e-3, use_ema=True, ema_momentum=0.9)


@pytest.mark.parametrize("make", [
    _adamw,
    lambda: Lookahead(_adamw()),
    lambda: keras.optimizers.LossScaleOptimizer(Lookahead(_adamw())),
])
def test_pairs_found_through_wrappers(make):
    variables = _variables(3)
    optimizer = make()
    optimizer.build(variables)
    pairs = _ema.ema_pairs(optimizer)
    assert [id(v) for v, _ in pairs] == [id(v) for v in variables]
    optimizer_variables = {id(v) for v in optimizer.variables}
    # Keras's average is a copy of the weights after the first step.
    optimizer.apply([keras.ops.ones((2,))] * 3, variables)
    for variable, average in pairs:
        assert id(average) in optimizer_variables
        np.testing.assert_array_equal(average.numpy(), variable.numpy())


def test_pairs_of_every_discriminative_group():
    head, body, stem = _variables(3)
    optimizer = DiscriminativeOptimizer(
        _adamw(), groups=[[stem.path], [body.path]], lr_mult=[0.01, 0.1])
    optimizer.build([head, body, stem])
    pairs = _ema.ema_pairs(optimizer)
    assert sorted(id(v) for v, _ in pairs) == sorted(
        [id(head), id(body), id(stem)])


def test_no_pairs_without_ema():
    variables = _variables(2)
    optimizer = Lookahead(keras.optimizers.AdamW(1e-3))
    optimizer.build(variables)
    assert _ema.ema_pairs(optimizer) == []
    assert _ema.ema_pairs(None) == []


class _Record(keras.callbacks.Callback):
    """Raw weights after every step; weights and predictions at epoch ends.

    As a user callback of the recipe it sits after the swap-in and before
    the swap-out of the averaged weights.
    """

    def __init__(self, xv):
        super().__init__()
        self.xv = xv
        self.raw, self.ends, self.begins = [], [], []
        self.predicted_accuracy = []

    def _kernels(self):
        return [np.array(v.numpy()) for v in self.model.trainable_variables]

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.begins.append(self._kernels())

    def on_train_batch_end(self, batch, logs=None):
        self.raw.append(self._kernels())

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append((len(self.raw), self._kernels()))
        labels = self.model.predict(self.xv[0], verbose=0).argmax(-1)
        self.predicted_accuracy.append(
            (float(np.mean(labels == self.xv[1])),
             float(logs["val_accuracy"])))


def _numpy_ema(raw, momentum):
    """Keras's EMA: a copy after the first step, then m * avg + (1-m) * w."""
    average = [w.copy() for w in raw[0]]
    for weights in raw[1:]:
        average = [momentum * a + (1 - momentum) * w
                   for a, w in zip(average, weights, strict=True)]
    return average


def test_recipe_validates_keeps_and_returns_the_average(digits_8x8):
    (x, y), (xv, yv) = digits_8x8
    momentum = 0.8
    record = _Record((xv, yv))
    result = fit_image_classifier(
        (x[:512], y[:512]), validation_data=(xv, yv), epochs=3,
        batch_size=64, steps_per_execution=1, ema_momentum=momentum,
        callbacks=[record], verbose=0, seed=0)
    assert result.config["ema_momentum"] == momentum
    assert len(record.raw) == 3 * 8
    for steps, weights in record.ends:
        expected = _numpy_ema(record.raw[:steps], momentum)
        for got, want in zip(weights, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The raw weights go on training: each later epoch starts from the
    # last step's raw weights, not from the average.
    for (steps, _), begin in zip(record.ends[:-1], record.begins[1:],
                                 strict=True):
        for got, want in zip(begin, record.raw[steps - 1], strict=True):
            np.testing.assert_array_equal(got, want)
    # Validation measured the average: its accuracy is that of the
    # averaged weights' own predictions.
    for predicted, logged in record.predicted_accuracy:
        assert predicted == pytest.approx(logged, abs=1e-6)
    # The returned model holds the best epoch's average (early stopping
    # restores it); BatchNormalization statistics are not averaged.
    best = int(np.argmax(result.history["val_accuracy"]))
    for got, want in zip(
            [v.numpy() for v in result.model.trainable_variables],
            record.ends[best][1], strict=True):
        np.testing.assert_array_equal(got, want)
    assert result.metrics["val_accuracy"] == pytest.approx(
        max(result.history["val_accuracy"]), abs=1e-6)


def test_recipe_without_average(digits_8x8):
    (x, y), (xv, yv) = digits_8x8
    record = _Record((xv, yv))
    result = fit_image_classifier(
        (x[:256], y[:256]), validation_data=(xv, yv), epochs=1,
        batch_size=64, steps_per_execution=1, ema_momentum=None,
        callbacks=[record], verbose=0, seed=0)
    assert not result.model.optimizer.use_ema
    for got, want in zip(record.ends[0][1], record.raw[-1], strict=True):
        np.testing.assert_array_equal(got, want)
