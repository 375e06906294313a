import math
import warnings

import keras
import numpy as np
import pytest

import recipes
from recipes.compress import distillation
from tests.recipes.compress.models import mlp, small_cnn


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("temperature, alpha", [(3.0, 0.3), (None, None)],
                         ids=["T3-alpha0.3", "defaults"])
def test_distiller_loss_matches_hinton_formula(trained_mlp, mnist_5k,
                                               temperature, alpha):
    teacher, _ = trained_mlp
    (x, y), _ = mnist_5k
    student = mlp(units=8)
    if temperature is None:
        distiller = distillation.build_distiller(teacher, student)
        temperature, alpha = 1.0, 0.5
    else:
        distiller = distillation.build_distiller(teacher, student,
                                                 temperature, alpha)
    xb, yb = x[:64], y[:64]
    s_logits = np.asarray(student(xb, training=True))
    t_logits = np.asarray(teacher(xb, training=False))
    loss = float(distiller.compute_loss(xb, yb, y_pred=s_logits))
    # Hinton et al. (2015) in NumPy: alpha * CE + (1 - alpha) * T^2 * KL.
    ce = -np.mean(_log_softmax(s_logits)[np.arange(64), yb])
    log_p = _log_softmax(t_logits / temperature)
    log_q = _log_softmax(s_logits / temperature)
    kl = np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1))
    want = alpha * ce + (1 - alpha) * temperature ** 2 * kl
    assert loss == pytest.approx(want, rel=1e-4)
    teacher.trainable = True


@pytest.mark.slow
def test_distilled_student_agrees_with_teacher_more(trained_mlp, mnist_5k):
    teacher, teacher_accuracy = trained_mlp
    (x, y), (x_val, y_val) = mnist_5k
    teacher_weights = teacher.get_weights()
    # A small student on 1,000 labels: the teacher's soft targets carry the
    # information the labels lack.
    results = {}
    for name, alpha in [("alone", 1.0), ("distilled", 0.1)]:
        keras.utils.set_random_seed(0)
        results[name] = recipes.distill(
            teacher, mlp(units=16), (x[:1000], y[:1000]),
            validation_data=(x_val, y_val), temperature=4.0, alpha=alpha,
            epochs=30, batch_size=128, learning_rate=1e-2,
            compare_alone=False,
        ).metrics
    # Measured here: agreement 92.1% alone, 96.6% distilled.
    assert results["distilled"]["agreement"] > (
        results["alone"]["agreement"] + 0.01)
    assert results["distilled"]["teacher_accuracy"] == pytest.approx(
        teacher_accuracy, abs=1e-6)
    assert results["distilled"]["student_params"] < teacher.count_params()
    assert teacher.trainable
    for before, after in zip(teacher_weights, teacher.get_weights(),
                             strict=True):
        np.testing.assert_array_equal(before, after)


def test_distill_returns_trained_student_and_history(trained_mlp, mnist_5k):
    teacher, _ = trained_mlp
    (x, y), (x_val, y_val) = mnist_5k
    data = (x[:256], y[:256])
    student = mlp(units=8)
    twin = keras.models.clone_model(student)
    twin.set_weights(student.get_weights())

    def decay():
        return keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)

    # One batch per epoch, so `fit`'s shuffling (its only randomness)
    # changes nothing but the order of a sum.
    result = recipes.distill(teacher, student, data,
                             validation_data=(x_val, y_val), epochs=3,
                             batch_size=256, learning_rate=decay())
    assert result.student is student
    assert len(result.history.history["loss"]) == 3
    assert result.config == {"temperature": 1.0, "alpha": 0.5, "epochs": 3,
                             "steps": 3, "batch_size": 256}
    predicted = np.argmax(student.predict(x_val, verbose=0), axis=-1)
    assert result.metrics["student_accuracy"] == pytest.approx(
        np.mean(predicted == y_val))
    # The comparison is exactly `distill(alpha=1)` from the same initial
    # weights, on a separate copy.
    assert result.alone is not student
    recipes.distill(teacher, twin, data, alpha=1.0, epochs=3,
                    batch_size=256, learning_rate=decay())
    for want, got in zip(twin.get_weights(), result.alone.get_weights(),
                         strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    predicted = np.argmax(result.alone.predict(x_val, verbose=0), axis=-1)
    assert result.metrics["alone_accuracy"] == pytest.approx(
        np.mean(predicted == y_val))
    assert result.metrics["gain"] == pytest.approx(
        result.metrics["student_accuracy"] - result.metrics["alone_accuracy"])


def test_distill_errors(trained_mlp, mnist_5k):
    teacher, _ = trained_mlp
    (x, y), _ = mnist_5k
    data = (x[:64], y[:64])
    with pytest.raises(ValueError, match="same output shape"):
        recipes.distill(teacher, mlp(num_classes=5), data)
    softmax_student = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    with pytest.raises(ValueError, match="must output logits"):
        recipes.distill(teacher, softmax_student, data)
    with pytest.raises(ValueError, match="`temperature` must be > 0"):
        recipes.distill(teacher, small_cnn(), data, temperature=0)
    with pytest.raises(ValueError, match="`alpha` must be <= 1"):
        recipes.distill(teacher, small_cnn(), data, alpha=1.5)
    with pytest.raises(ValueError, match="`data` must be a tuple"):
        recipes.distill(teacher, small_cnn(), x[:64])
    with pytest.raises(ValueError, match="`epochs` must be >= 1"):
        recipes.distill(teacher, small_cnn(), data, epochs=0)
    with pytest.raises(ValueError, match='or "auto". Received: epochs=.Auto'):
        recipes.distill(teacher, small_cnn(), data, epochs="Auto")


def _digits_model(*layers):
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                             *layers])


class _TrainingStarted(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        raise AssertionError("training started before the data was checked")


@pytest.mark.parametrize("data_index, validation_index, match", [
    (0, "x_only", "`validation_data` must be a tuple"),
    (0, "one_hot", "`validation_data` must have 1-D integer labels"),
    (0, "out_of_range", r"`validation_data` must have labels in \[0, 10\)"),
    (0, "fractional", "`validation_data` must have integer labels"),
    (0, "short", "`validation_data` must have as many labels"),
    (0, "wrong_width", r"`validation_data` must hold inputs of shape "
                       r"\(None, 8, 8, 1\)"),
    ("out_of_range", None, r"`data` must have labels in \[0, 10\)"),
    ("negative", None, r"`data` must have labels in \[0, 10\)"),
    ("short", None, "`data` must have as many labels"),
])
def test_distill_checks_data_before_training(digits_8x8, data_index,
                                             validation_index, match):
    (x, y), _ = digits_8x8
    x, y = x[:64], y[:64]
    variants = {
        0: (x, y), "x_only": x, "one_hot": (x, np.eye(10)[y]),
        "out_of_range": (x, y + 10), "negative": (x, y - 1),
        "fractional": (x, y + 0.5), "short": (x, y[:-1]),
        "wrong_width": (x.reshape(64, 64), y),
    }
    teacher = _digits_model(keras.layers.Dense(10))
    student = _digits_model(keras.layers.Dense(10))
    before = student.get_weights()
    with pytest.raises(ValueError, match=match):
        recipes.distill(
            teacher, student, variants[data_index],
            validation_data=variants.get(validation_index), epochs=1,
            callbacks=[_TrainingStarted()],
        )
    for want, got in zip(before, student.get_weights(), strict=True):
        np.testing.assert_array_equal(want, got)


def test_distill_refuses_any_final_softmax(digits_8x8):
    (x, y), _ = digits_8x8
    data = (x[:64], y[:64])
    inner = keras.Sequential([keras.Input((64,)),
                              keras.layers.Dense(10, activation="softmax")])
    probability_models = {
        "softmax_layer": _digits_model(keras.layers.Dense(10),
                                       keras.layers.Softmax()),
        "activation_layer": _digits_model(keras.layers.Dense(10),
                                          keras.layers.Activation("softmax")),
        "nested": _digits_model(inner),
    }
    for teacher in probability_models.values():
        with pytest.raises(ValueError, match="`teacher` must output logits"):
            recipes.distill(teacher, _digits_model(keras.layers.Dense(10)),
                            data, epochs=1, callbacks=[_TrainingStarted()])
    logits = _digits_model(keras.layers.Dense(10),
                           keras.layers.Activation("linear"))
    distillation._check_logits(logits, "teacher")
    with pytest.raises(ValueError, match="must be different models"):
        recipes.distill(logits, logits, data, epochs=1)


def test_distill_accepts_numpy_scalars(digits_8x8):
    (x, y), _ = digits_8x8
    data = (x[:64], y[:64])
    teacher = _digits_model(keras.layers.Dense(10))
    weights = {}
    for kind, cast in [("python", float), ("numpy", np.float32)]:
        keras.utils.set_random_seed(0)
        student = _digits_model(keras.layers.Dense(10))
        recipes.distill(teacher, student, data, temperature=cast(3.0),
                        alpha=cast(0.25), epochs=1, batch_size=32)
        weights[kind] = student.get_weights()
    for want, got in zip(weights["python"], weights["numpy"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def _digits_teacher(x, y, epochs):
    keras.utils.set_random_seed(0)
    teacher = _digits_model(keras.layers.Dense(128, activation="relu"),
                            keras.layers.Dense(10))
    teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    teacher.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    return teacher


def test_distill_warns_when_the_teacher_does_not_help(digits_8x8):
    (x, y), (x_val, y_val) = digits_8x8
    x, y = x[:512], y[:512]
    # A confident teacher of the wrong classes (each label shifted by one).
    teacher = _digits_teacher(x, (y + 1) % 10, epochs=5)
    keras.utils.set_random_seed(0)
    student = _digits_model(keras.layers.Dense(10))
    with pytest.warns(UserWarning, match="Distillation did not help"):
        result = recipes.distill(teacher, student, (x, y),
                                 validation_data=(x_val, y_val), epochs=5)
    assert result.metrics["gain"] < 0


@pytest.mark.slow
def test_distill_defaults_no_worse_than_student_alone(digits_8x8):
    """At its defaults, on real data, the distilled student is at least as
    good as the same student trained on the labels alone (one point of
    tolerance: 3 of the 297 validation digits)."""
    (x, y), (x_val, y_val) = digits_8x8
    teacher = _digits_teacher(x, y, epochs=10)
    keras.utils.set_random_seed(0)
    student = _digits_model(keras.layers.Dense(16, activation="relu"),
                            keras.layers.Dense(10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = recipes.distill(teacher, student, (x, y),
                                 validation_data=(x_val, y_val))
    assert result.config["epochs"] == math.ceil(1000 / math.ceil(len(x) / 32))
    assert result.config["steps"] >= 1000
    assert result.metrics["alone_accuracy"] > 0.85
    assert result.metrics["gain"] >= -0.0101
