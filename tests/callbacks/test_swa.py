import keras
import numpy as np
import pytest

from callbacks.swa import SWA


class _Snapshots(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(
            [keras.ops.convert_to_numpy(w)
             for w in self.model.trainable_weights]
        )


def _mlp(batch_norm=False):
    layers = [keras.Input((8, 8, 1)), keras.layers.Flatten()]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    layers += [keras.layers.Dense(32, activation="relu"),
               keras.layers.Dense(10)]
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


@pytest.mark.parametrize("start, freq, averaged", [(2, 1, [2, 3, 4]),
                                                   (1, 2, [1, 3])])
def test_average_of_the_epoch_end_weights(digits_8x8, start, freq, averaged):
    (x, y), _ = digits_8x8
    model = _mlp()
    snapshots = _Snapshots()
    swa = SWA(start_epoch=start, swa_freq=freq)
    model.fit(x, y, epochs=5, batch_size=64, verbose=0,
              callbacks=[snapshots, swa])
    assert swa.averaged_epochs == averaged
    for i, w in enumerate(model.trainable_weights):
        expected = np.mean([snapshots.weights[e][i] for e in averaged], axis=0)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(w), expected,
                                   rtol=1e-6, atol=1e-6)


def test_batch_norm_statistics_are_re_estimated(digits_8x8):
    (x, y), (x_val, y_val) = digits_8x8
    model = _mlp(batch_norm=True)
    swa = SWA(start_epoch=1, bn_data=x, bn_batch_size=100)
    model.fit(x, y, epochs=4, batch_size=64, verbose=0, callbacks=[swa])
    # The BN layer sees the flattened input: its statistics must be the
    # equal-weight mean of the per-batch mean and (biased) variance.
    flat = x.reshape(len(x), -1)
    batches = [flat[i:i + 100] for i in range(0, len(flat), 100)]
    bn = model.layers[1]
    np.testing.assert_allclose(bn.moving_mean.numpy(),
                               np.mean([b.mean(0) for b in batches], 0),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(),
                               np.mean([b.var(0) for b in batches], 0),
                               rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.99
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    assert accuracy > 0.9


def test_swa_learning_rate_is_applied_from_start_epoch(digits_8x8):
    (x, y), _ = digits_8x8
    model = _mlp()
    seen = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(
            float(model.optimizer.learning_rate.numpy())
        )
    )
    model.fit(x, y, epochs=3, batch_size=256, verbose=0,
              callbacks=[SWA(start_epoch=1, swa_learning_rate=0.01),
                         recorder])
    np.testing.assert_allclose(seen, [0.05, 0.01, 0.01], rtol=1e-6)


def test_weights_unchanged_when_training_stops_before_start(digits_8x8):
    (x, y), _ = digits_8x8
    model = _mlp()
    snapshots = _Snapshots()
    model.fit(x, y, epochs=2, batch_size=256, verbose=0,
              callbacks=[snapshots, SWA(start_epoch=5)])
    for w, last in zip(model.trainable_weights, snapshots.weights[-1],
                       strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), last)


def test_errors(digits_8x8):
    (x, y), _ = digits_8x8
    with pytest.raises(ValueError, match="start_epoch=-1"):
        SWA(start_epoch=-1)
    with pytest.raises(ValueError, match="swa_freq=0"):
        SWA(start_epoch=0, swa_freq=0)
    with pytest.raises(ValueError, match="bn_data=None"):
        _mlp(batch_norm=True).fit(x[:8], y[:8], verbose=0,
                                  callbacks=[SWA(start_epoch=0)])
    model = _mlp()
    model.compile(keras.optimizers.SGD(
        keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)),
        "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="swa_learning_rate=0.1"):
        model.fit(x[:8], y[:8], verbose=0,
                  callbacks=[SWA(start_epoch=0, swa_learning_rate=0.1)])
