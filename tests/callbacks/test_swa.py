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


class _Residual(keras.layers.Layer):
    """A custom block holding its BatchNormalization as an attribute."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.norm = keras.layers.BatchNormalization()
        self.dense = keras.layers.Dense(units)

    def call(self, x, training=None):
        return x + self.dense(self.norm(x, training=training))


def _residual_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,))
    block = _Residual(64)
    outputs = keras.layers.Dense(10)(block(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, block


def test_batch_norm_inside_a_custom_layer_is_found(digits_8x8):
    (x, y), _ = digits_8x8
    x = x.reshape(len(x), 64)[:256]
    y = y[:256]
    model, block = _residual_model()
    with pytest.raises(ValueError, match="1 BatchNormalization.*bn_data=None"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[SWA(start_epoch=0)])
    model.fit(x, y, epochs=2, batch_size=64, verbose=0,
              callbacks=[SWA(start_epoch=0, bn_data=x, bn_batch_size=64)])
    # The block's BN input is the model input: equal-weight mean of the
    # batch statistics of x.
    batches = [x[i:i + 64] for i in range(0, 256, 64)]
    np.testing.assert_allclose(block.norm.moving_mean.numpy(),
                               np.mean([b.mean(0) for b in batches], 0),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(block.norm.moving_variance.numpy(),
                               np.mean([b.var(0) for b in batches], 0),
                               rtol=1e-4, atol=1e-5)


class _FlatLoss(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        logs["flat"] = 1.0


@pytest.mark.parametrize("swa_first", [True, False])
def test_swa_learning_rate_beside_our_plateau(digits_8x8, swa_first):
    from callbacks import ReduceLROnPlateau
    from tests.callbacks._recording import RecordingSGD

    (x, y), _ = digits_8x8
    x, y = x[:256], y[:256]
    opt = RecordingSGD(1e-4)
    model = _mlp()
    model.compile(opt, "sparse_categorical_crossentropy")
    swa = SWA(start_epoch=1, swa_learning_rate=1e-3)
    # No improvement: reductions after epochs 1 and 2 (0, the first, sets
    # the best value); SWA switched the rate to 1e-3 at epoch 1.
    plateau = ReduceLROnPlateau(monitor="flat", mode="min", patience=1,
                                factor=0.5)
    order = [swa, plateau] if swa_first else [plateau, swa]
    model.fit(x, y, epochs=3, batch_size=64, verbose=0, shuffle=False,
              callbacks=[_FlatLoss(), *order])
    lrs = opt.lr_log.numpy()[:12]
    np.testing.assert_allclose(lrs, [1e-4] * 4 + [1e-3] * 4 + [5e-4] * 4,
                               rtol=1e-6)
    assert float(opt.learning_rate) == pytest.approx(2.5e-4)


def test_swa_learning_rate_when_resuming_past_start_epoch(digits_8x8):
    from tests.callbacks._recording import RecordingSGD

    (x, y), _ = digits_8x8
    x, y = x[:128], y[:128]
    opt = RecordingSGD(0.05)
    model = _mlp()
    model.compile(opt, "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=4, initial_epoch=2, batch_size=64, verbose=0,
              callbacks=[SWA(start_epoch=1, swa_learning_rate=0.01)])
    np.testing.assert_allclose(opt.lr_log.numpy()[:4], 0.01, rtol=1e-6)


def test_swa_learning_rate_with_a_schedule_callback_is_an_error(digits_8x8):
    import callbacks

    (x, y), _ = digits_8x8
    model = _mlp()
    with pytest.raises(ValueError, match="swa_learning_rate=0.01"):
        model.fit(x[:64], y[:64], epochs=2, verbose=0, callbacks=[
            SWA(start_epoch=1, swa_learning_rate=0.01),
            callbacks.OneCycleLR(0.1, 10, cycle_momentum=False)])
    # Raised before any step, with the optimizer given back.
    assert int(model.optimizer.iterations.numpy()) == 0
    assert callbacks.restore_optimizer(model) is False
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
