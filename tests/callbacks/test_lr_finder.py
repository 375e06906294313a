"""LR range test on real MNIST-5k."""

import keras
import numpy as np
import pytest

import callbacks
from callbacks.lr_finder import LRFinderResult, _valley
from tests.helpers import small_cnn


def test_finder_restores_state_and_suggests_sensible_lr(mnist_5k):
    (x, y), (xv, yv) = mnist_5k
    model = small_cnn()
    model.compile(keras.optimizers.Adam(1e-3),
                  "sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=4)
    model.fit(x[:256], y[:256], epochs=1, verbose=0)  # non-trivial state
    weights = [w.copy() for w in model.get_weights()]
    opt_state = [np.array(v.numpy()) for v in model.optimizer.variables]

    result = callbacks.find_learning_rate(model, x, y, batch_size=64,
                                          verbose=0)
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    for before, v in zip(opt_state, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(before, v.numpy())
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)

    n = len(result.lrs)
    np.testing.assert_allclose(result.lrs, np.geomspace(1e-7, 10.0, 100)[:n],
                               rtol=1e-9)
    assert n <= 100 and np.all(np.isfinite(result.raw_losses[:-1]))
    for method in ("valley", "steepest", "minimum"):
        lr = result.suggestion(method)
        assert 1e-5 <= lr <= 0.5, (method, lr)
    # The suggestion trains: one epoch at it gets well above chance.
    model.optimizer.learning_rate = result.suggestion()
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    _, acc = model.evaluate(xv, yv, verbose=0)
    assert acc > 0.8


def test_finder_stops_on_divergence(digits_8x8):
    (x, y), _ = digits_8x8
    # Linear regression of the label with SGD: explodes for lr >~ 0.05.
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    result = callbacks.find_learning_rate(
        model, x, y.astype("float32"), batch_size=32,
        start_learning_rate=1e-5, end_learning_rate=10.0, num_steps=100,
        verbose=0)
    assert result.diverged
    assert len(result.lrs) < 100
    assert result.lrs[-1] > 0.01
    assert 1e-5 < result.suggestion() < 0.1


def test_finder_with_dataset_input(mnist_5k):
    import tensorflow as tf

    (x, y), _ = mnist_5k
    model = small_cnn()
    model.compile("sgd", "sparse_categorical_crossentropy")
    ds = tf.data.Dataset.from_tensor_slices((x[:640], y[:640])).batch(64)
    result = callbacks.LRFinder(1e-4, 1.0, num_steps=15,
                                verbose=0).find(model, ds)
    # 10 batches per pass: the sweep goes on over a second pass.
    assert len(result.lrs) + result.diverged >= 10
    assert np.all(np.diff(result.lrs) > 0)


def test_suggestion_methods_on_a_known_curve():
    lrs = np.geomspace(1e-5, 1.0, 11)
    losses = np.array([2.3, 2.3, 2.2, 1.8, 1.0, 0.5, 0.4, 0.45, 1.0, 3.0,
                       9.0])
    result = LRFinderResult(lrs, losses, losses, diverged=True)
    assert result.suggestion("minimum") == pytest.approx(lrs[6] / 10)
    # Steepest drop of loss vs log(lr): central differences peak at index 4.
    assert result.suggestion("steepest") == pytest.approx(lrs[4])
    # Drop 2.3 -> 0.4: 10% of it is covered at index 3 (1.8 <= 2.11);
    # minimum at 6; middle index 4.
    assert _valley(losses) == (3, 6)
    assert result.suggestion("valley") == pytest.approx(lrs[4])
    with pytest.raises(ValueError, match="`method`.*Received"):
        result.suggestion("median")


def test_plot_marks_suggestion(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    lrs = np.geomspace(1e-5, 1.0, 20)
    losses = np.concatenate([np.linspace(2.3, 0.3, 15),
                             [0.5, 1.0, 2.0, 4.0, 8.0]])
    ax = LRFinderResult(lrs, losses, losses, True).plot()
    assert ax.get_xscale() == "log"
    ax.figure.savefig(tmp_path / "finder.png")
    assert (tmp_path / "finder.png").stat().st_size > 1000


@pytest.mark.parametrize("kwargs,match", [
    ({"start_learning_rate": 0}, "start_learning_rate"),
    ({"start_learning_rate": 1.0, "end_learning_rate": 0.1},
     "end_learning_rate"),
    ({"num_steps": 2}, "num_steps"),
    ({"smoothing": 1.0}, "smoothing"),
    ({"divergence_threshold": 1.0}, "divergence_threshold"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"`{match}`.*Received"):
        callbacks.LRFinder(**kwargs)


def test_uncompiled_model_and_empty_data():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="compiled model"):
        callbacks.find_learning_rate(model, np.zeros((8, 3)), np.zeros(8))
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="`x`"):
        callbacks.find_learning_rate(model, np.zeros((0, 3)), np.zeros(0))
    with pytest.raises(ValueError, match="same length"):
        callbacks.find_learning_rate(model, np.zeros((8, 3)), np.zeros(7))
