"""LR range test on real MNIST-5k."""

import keras
import numpy as np
import pytest

import callbacks
from callbacks.lr_finder import LRFinderResult, _valley
from tests.helpers import only_on, small_cnn, steps_per_execution


def test_finder_restores_state_and_suggests_sensible_lr(mnist_5k):
    (x, y), (xv, yv) = mnist_5k
    model = small_cnn()
    model.compile(keras.optimizers.Adam(1e-3),
                  "sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=steps_per_execution(4))
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


@only_on("tensorflow")  # tf.data input
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


def _squared_weight_model(loss_shift):
    """y_pred = w (one weight, w0 = 1), loss = mean(y_pred^2) + shift.

    Under SGD with learning rate a the weight follows w <- (1 - 2a) w, so
    the loss falls towards `shift` while a < 1 and blows up once a > 1.
    """
    model = keras.Sequential([
        keras.Input((1,)),
        keras.layers.Dense(1, use_bias=False, kernel_initializer="ones"),
    ])
    model.compile(keras.optimizers.SGD(0.1),
                  lambda y_true, y_pred: keras.ops.mean(y_pred ** 2)
                  + loss_shift)
    return model


def _numpy_sweep(lrs, shift, smoothing, threshold):
    """Losses and stopping step of the sweep above, in NumPy."""
    w, avg, best, raw, smoothed = 1.0, 0.0, np.inf, [], []
    for step, lr in enumerate(lrs):
        raw.append(w * w + shift)
        avg = smoothing * avg + (1 - smoothing) * raw[-1]
        smoothed.append(avg / (1 - smoothing ** (step + 1)))
        if step > 0 and smoothed[-1] - best > (threshold - 1) * abs(best):
            break
        best = min(best, smoothed[-1])
        w *= 1 - 2 * lr
    return np.array(raw), np.array(smoothed)


@pytest.mark.parametrize("shift", [-1.0, 0.5])
def test_divergence_is_a_rise_above_the_best_loss_of_any_sign(shift):
    # A negative loss (shift -1) used to "diverge" at step 2 while falling.
    lrs = np.geomspace(1e-3, 10.0, 60)
    raw, smoothed = _numpy_sweep(lrs, shift, smoothing=0.5, threshold=4.0)
    assert 30 < len(raw) < 60  # reference: stops once a > 1 blows it up
    result = callbacks.LRFinder(1e-3, 10.0, num_steps=60, smoothing=0.5,
                                verbose=0).find(
        _squared_weight_model(shift), np.ones((4, 1)), np.zeros((4, 1)),
        batch_size=4)
    assert result.diverged
    assert len(result.lrs) == len(raw)
    np.testing.assert_allclose(result.raw_losses, raw, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.losses, smoothed, rtol=1e-4,
                               atol=1e-6)


def test_negative_loss_that_keeps_falling_runs_the_whole_sweep():
    # Keras's cosine similarity loss lies in [-1, 1].
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    w = rng.normal(size=(8, 4)).astype("float32")
    y = x @ w
    # Start clearly below zero (about -0.5): a loss hovering around 0 makes
    # any ratio test noisy, whatever its sign.
    w0 = (w + rng.normal(size=(8, 4))).astype("float32")
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(4, kernel_initializer=lambda shape, dtype: w0)])
    model.compile(keras.optimizers.SGD(0.01), "cosine_similarity")
    result = callbacks.find_learning_rate(
        model, x, y, start_learning_rate=1e-4, end_learning_rate=10.0,
        num_steps=100, verbose=0)
    assert not result.diverged and len(result.lrs) == 100
    assert result.raw_losses.min() < -0.9  # it did learn the mapping


def test_divergence_rule_is_unchanged_for_positive_losses():
    rng = np.random.default_rng(0)
    finder = callbacks.LRFinder(divergence_threshold=3.0, verbose=0)
    for best, smoothed in rng.uniform(1e-6, 10.0, size=(200, 2)):
        assert finder._diverged(smoothed, best) == (smoothed > 3.0 * best)


def test_repr_with_too_few_finite_losses():
    short = LRFinderResult([1e-3, 1e-2], [1.0, 0.5], [1.0, 0.5], False)
    assert repr(short) == ("LRFinderResult(steps=2, diverged=False, "
                           "suggestion=None)")
    lrs = np.geomspace(1e-5, 1.0, 11)
    losses = np.array([2.3, 2.3, 2.2, 1.8, 1.0, 0.5, 0.4, 0.45, 1.0, 3.0,
                       9.0])
    full = LRFinderResult(lrs, losses, losses, diverged=True)
    assert repr(full) == ("LRFinderResult(steps=11, diverged=True, "
                          f"suggestion={lrs[4]:.3g})")


def _linear_data():
    rng = np.random.default_rng(0)
    x = rng.random((64, 3)).astype("float32")
    y = rng.random((64, 1)).astype("float32")
    return x, y


def _full_batch_mse(model, x, y):
    """The first step's loss with one full batch, in NumPy."""
    kernel, bias = (w.numpy() for w in model.layers[-1].weights)
    return float(np.mean((x @ kernel + bias - y) ** 2))


def _check_first_loss_and_sweep(model, x_np, y_np, x, y, num_steps=5):
    want = _full_batch_mse(model, x_np, y_np)
    result = callbacks.LRFinder(1e-4, 1e-2, num_steps=num_steps,
                                verbose=0).find(model, x, y, batch_size=64)
    assert len(result.lrs) == num_steps and not result.diverged
    np.testing.assert_allclose(result.lrs,
                               np.geomspace(1e-4, 1e-2, num_steps),
                               rtol=1e-9)
    assert result.raw_losses[0] == pytest.approx(want, rel=1e-5)


@only_on("tensorflow")  # tf.data input
def test_dict_list_and_tensor_inputs_are_batched():
    import tensorflow as tf

    x, y = _linear_data()
    inputs = keras.Input((3,), name="a")
    model = keras.Model({"a": inputs}, keras.layers.Dense(1)(inputs))
    model.compile(keras.optimizers.SGD(0.01), "mse")
    _check_first_loss_and_sweep(model, x, y, {"a": x}, y)

    first, second = keras.Input((1,)), keras.Input((2,))
    merged = keras.layers.Concatenate()([first, second])
    model = keras.Model([first, second], keras.layers.Dense(1)(merged))
    model.compile(keras.optimizers.SGD(0.01), "mse")
    _check_first_loss_and_sweep(model, x, y, [x[:, :1], x[:, 1:]], y)

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    _check_first_loss_and_sweep(model, x, y, tf.constant(x), tf.constant(y))


def test_mismatched_structures_and_y_with_a_dataset_are_rejected():
    import tensorflow as tf

    x, y = _linear_data()
    inputs = keras.Input((3,), name="a")
    model = keras.Model({"a": inputs}, keras.layers.Dense(1)(inputs))
    model.compile(keras.optimizers.SGD(0.01), "mse")
    with pytest.raises(ValueError, match="same length.*len\\(y\\)=10"):
        callbacks.find_learning_rate(model, {"a": x}, y[:10], verbose=0)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(ValueError, match="`y` must be None.*Dataset"):
        callbacks.find_learning_rate(model, ds, y, verbose=0)


def test_one_shot_generator_ends_the_sweep_with_a_warning():
    x, y = _linear_data()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    weights = [w.copy() for w in model.get_weights()]
    batches = ((x[i:i + 8], y[i:i + 8]) for i in range(0, 64, 8))
    with pytest.warns(UserWarning, match="ran out of data after 8 of 20"):
        result = callbacks.find_learning_rate(model, batches, num_steps=20,
                                              verbose=0)
    assert len(result.lrs) == 8 and not result.diverged
    np.testing.assert_allclose(result.lrs,
                               np.geomspace(1e-7, 10.0, 20)[:8], rtol=1e-9)
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_finder_restores_dropout_seed_state():
    x, y = _linear_data()

    def build():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((3,)), keras.layers.Dense(8),
            keras.layers.Dropout(0.5, seed=1), keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(1e-3), "mse")
        return model

    probed, untouched = build(), build()
    before = [np.array(v.numpy()) for v in probed.variables]
    callbacks.find_learning_rate(probed, x, y, num_steps=10, verbose=0)
    for value, v in zip(before, probed.variables, strict=True):
        np.testing.assert_array_equal(value, v.numpy(), err_msg=v.path)
    # The next training step draws the same dropout mask as a model that
    # never saw the finder, so both end with the same weights.
    probed.train_on_batch(x, y)
    untouched.train_on_batch(x, y)
    for a, b in zip(probed.get_weights(), untouched.get_weights(),
                    strict=True):
        np.testing.assert_array_equal(a, b)
