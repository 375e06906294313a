"""Canaries of the Keras internals the library relies on.

One test per touch point of `callbacks/_keras_compat.py`: it exercises the
internal directly, on a tiny model or optimizer, and fails with a message
naming the touch point ("Keras compat touch point `name`: Keras 3.x ...")
when a Keras release changes it. Run them first on a new Keras.
"""

import contextlib
import inspect

import keras
import numpy as np
import pytest
from keras import ops

from callbacks import _keras_compat as kc

BACKEND = keras.backend.backend()


def _fail(name, detail):
    pytest.fail(kc.touch_point_error(name, detail), pytrace=False)


def _expect(name, ok, detail):
    if not ok:
        _fail(name, detail)


@contextlib.contextmanager
def _touch(name, what):
    """Any error while exercising `what` means the internal changed."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 (any change must name the point)
        _fail(name, f"fails at {what} ({type(error).__name__}: {error})")


def _numpy(value):
    return np.asarray(ops.convert_to_numpy(value))


def _variables(*names):
    return [keras.Variable(np.full((2,), 1.0, "float32"), name=n)
            for n in names]


def _model(units=1):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(units, kernel_initializer="zeros"),
    ])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def _data(n=6):
    rng = np.random.default_rng(0)
    return (rng.random((n, 3)).astype("float32"),
            rng.random((n, 1)).astype("float32"))


# --------------------------------------------------------------- optimizers

def test_optimizer_learning_rate_object():
    name = "optimizer_learning_rate_object"
    (variable,) = _variables("w")
    optimizer = keras.optimizers.SGD(0.5)
    optimizer.build([variable])
    before = [id(v) for v in optimizer.variables]
    with _touch(name, "`optimizer._learning_rate`"):
        original = kc.learning_rate_object(optimizer)
    _expect(name, isinstance(original, keras.Variable)
            and float(_numpy(original)) == 0.5,
            "no longer keeps a float learning rate as a variable in "
            "`optimizer._learning_rate`")
    schedule = keras.optimizers.schedules.ExponentialDecay(1.0, 1, 0.5)
    with _touch(name, "assigning `optimizer._learning_rate`"):
        kc.set_learning_rate_object(optimizer, schedule)
        optimizer.apply([ops.ones((2,))], [variable])
    # Step 0 of the schedule: lr 1.0, so 1 - 1.0 * 1.
    _expect(name, np.allclose(_numpy(variable), 0.0),
            "does not apply the learning rate held in "
            "`optimizer._learning_rate`")
    kc.set_learning_rate_object(optimizer, original)
    _expect(name, float(_numpy(optimizer.learning_rate)) == 0.5
            and [id(v) for v in optimizer.variables] == before,
            "changes the optimizer's variables when "
            "`optimizer._learning_rate` is replaced and put back")


def test_untracked_attribute():
    name = "untracked_attribute"
    (variable,) = _variables("w")
    optimizer = keras.optimizers.Adam(0.1, beta_1=0.9)
    optimizer.build([variable])
    before = [id(v) for v in optimizer.variables]
    with _touch(name, "`object.__setattr__(optimizer, 'beta_1', ...)`"):
        kc.set_untracked(optimizer, "beta_1", 0.0)
        optimizer.apply([ops.full((2,), 3.0)], [variable])
    first_moment = _numpy(optimizer.variables[2])
    # beta_1 = 0: the first moment is the gradient itself.
    _expect(name, np.allclose(first_moment, 3.0),
            "no longer reads a replaced `beta_1` in `update_step` (first "
            f"moment {first_moment}, expected the gradient 3.0)")
    _expect(name, [id(v) for v in optimizer.variables] == before,
            "changes the optimizer's variables when a hyperparameter is "
            "replaced")


def test_optimizer_built_variables():
    name = "optimizer_built_variables"
    variables = _variables("a", "b")
    optimizer = keras.optimizers.Adam()
    optimizer.build(variables)
    with _touch(name, "`optimizer._trainable_variables`"):
        built = list(kc.optimizer_built_variables(optimizer))
    _expect(name, [id(v) for v in built] == [id(v) for v in variables],
            "no longer lists the variables an optimizer was built for in "
            "`optimizer._trainable_variables`")


def test_optimizer_own_variables():
    name = "optimizer_own_variables"
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(_variables("a"))
    with _touch(name, "`optimizer._variables`"):
        own = list(kc.optimizer_own_variables(optimizer))
    _expect(name, [id(v) for v in own]
            == [id(v) for v in optimizer.variables]
            and any(v is optimizer.iterations for v in own),
            "no longer keeps the optimizer's own variables (step counter, "
            "learning rate, slots) in `optimizer._variables`")


def test_optimizer_variable_index():
    name = "optimizer_variable_index"
    variables = _variables("a", "b")
    optimizer = keras.optimizers.Adam()
    optimizer.build(variables)
    with _touch(name, "`optimizer._get_variable_index(variable)`"):
        indices = [kc.variable_index(optimizer, v) for v in variables]
    _expect(name, indices == [0, 1],
            f"indexes built variables as {indices} in "
            "`optimizer._get_variable_index`, not [0, 1]")


def test_optimizer_weight_decay_exclusions():
    name = "optimizer_weight_decay_exclusions"
    kernel, bias = _variables("kernel", "bias")
    source = keras.optimizers.AdamW(weight_decay=0.1)
    source.exclude_from_weight_decay(var_names=["bias"])
    target = keras.optimizers.AdamW(weight_decay=0.1)
    with _touch(name, "`_use_weight_decay` / the exclusion attributes"):
        kc.copy_weight_decay_exclusions(source, target)
        source.build([kernel, bias])
        target.build([kernel, bias])
        decays = [(kc.uses_weight_decay(o, kernel),
                   kc.uses_weight_decay(o, bias)) for o in (source, target)]
    _expect(name, decays == [(True, False), (True, False)],
            f"reports weight decay (kernel, bias) as {decays} after "
            "`exclude_from_weight_decay(var_names=['bias'])` and a copy of "
            "its attributes, not (True, False)")


def test_optimizer_ema_averages():
    name = "optimizer_ema_averages"
    variables = _variables("a", "b")
    optimizer = keras.optimizers.Adam(use_ema=True)
    optimizer.build(variables)
    with _touch(name, "`optimizer._model_variables_moving_average`"):
        averages = list(kc.ema_averages(optimizer))
    _expect(name, len(averages) == 2 and all(
        tuple(a.shape) == (2,) for a in averages),
        "no longer keeps one moving average per variable in "
        "`optimizer._model_variables_moving_average`")
    _expect(name, "_model_variables_moving_average" in inspect.getsource(
        keras.callbacks.SwapEMAWeights),
        "`SwapEMAWeights` no longer reads "
        "`optimizer._model_variables_moving_average`")

    @kc.delegate_ema_averages
    class Wrapper:
        inner_optimizer = optimizer

    _expect(name, Wrapper()._model_variables_moving_average is averages[0]
            or list(Wrapper()._model_variables_moving_average) == averages,
            "a wrapper no longer shows its inner optimizer's averages")


# ---------------------------------------------------------- training loop

class _Epochs(keras.callbacks.Callback):
    def __init__(self, start):
        super().__init__()
        self.start, self.seen = start, []

    def on_train_begin(self, logs=None):
        kc.set_initial_epoch(self.model, self.start)

    def on_epoch_begin(self, epoch, logs=None):
        kc.set_initial_epoch(self.model, None)
        self.seen.append(epoch)


def test_model_initial_epoch():
    name = "model_initial_epoch"
    model = _model()
    x, y = _data()
    _expect(name, hasattr(model, "_initial_epoch"),
            "models no longer have `model._initial_epoch`")
    epochs = _Epochs(2)
    with _touch(name, "`model._initial_epoch`"):
        model.fit(x, y, epochs=4, verbose=0, callbacks=[epochs])
    _expect(name, epochs.seen == [2, 3],
            f"`fit` ran epochs {epochs.seen} when `model._initial_epoch` "
            "was set to 2 in `on_train_begin`, not [2, 3]")


class _SkipAtStart(keras.callbacks.Callback):
    def __init__(self, count):
        super().__init__()
        self.count = count

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            kc.skip_batches(self.model, self.count)


def test_model_train_function():
    name = "model_train_function"
    model = _model()
    x, y = _data(6)
    with _touch(name, "`model.train_function`"):
        model.fit(x, y, batch_size=1, epochs=1, verbose=0)
        traced = kc.train_function(model)
        kc.rebuild_train_function(model)
        rebuilt = kc.train_function(model)
    _expect(name, traced is not None and rebuilt is not traced,
            "no longer rebuilds `model.train_function` on "
            "`model.make_train_function(force=True)`")
    start = int(_numpy(model.optimizer.iterations))
    with _touch(name, "replacing `model.train_function` to skip batches"):
        history = model.fit(x, y, batch_size=1, epochs=2, verbose=0,
                            callbacks=[_SkipAtStart(2)])
    steps = int(_numpy(model.optimizer.iterations)) - start
    # Each epoch: 6 batches, the first 2 skipped.
    _expect(name, steps == 8 and len(history.history["loss"]) == 2,
            f"took {steps} optimizer steps when the first 2 of 6 batches "
            "of each of 2 epochs went to a replaced `model.train_function`"
            " (expected 8): its calling convention changed")


@pytest.mark.skipif(BACKEND != "tensorflow",
                    reason="TensorFlow trainer only (the recipes' backend)")
def test_iterators_per_epoch():
    name = "iterators_per_epoch"
    import tensorflow as tf

    def make():
        x = np.arange(8, dtype="float32")[:, None].repeat(3, axis=1)
        return tf.data.Dataset.from_tensor_slices((x, x[:, :1])).shuffle(
            8, seed=1, reshuffle_each_iteration=True).batch(8)

    def order(dataset):
        return next(iter(dataset))[1].numpy().ravel().tolist()

    reference = make()
    orders = [order(reference) for _ in range(12)]
    model = _model()
    dataset = make()
    epochs = 3
    with _touch(name, "`fit` on a reshuffling `tf.data.Dataset`"):
        model.fit(dataset, epochs=epochs, verbose=0)
    # The next iterator's order tells how many `fit` made before it.
    following = order(dataset)
    made = orders.index(following) if following in orders else -1
    _expect(name, made == kc.ITERATORS_PER_EPOCH * epochs,
            f"made {made} iterators of the dataset in {epochs} epochs, not "
            f"{kc.ITERATORS_PER_EPOCH} per epoch (`EpochIterator`)")


def test_loss_tracker_update_state():
    name = "loss_tracker_update_state"
    model = _model()
    x, y = _data(6)
    history = model.fit(x, y, batch_size=6, epochs=1, verbose=0)
    trackers = [m for m in model.metrics if m.name == kc.LOSS_TRACKER_NAME]
    _expect(name, len(trackers) == 1 and len(trackers[0].variables) == 2,
            f"has no `Mean` metric named {kc.LOSS_TRACKER_NAME!r} in "
            "`model.metrics`")
    # Zero weights before the only step: the loss is mean(y**2).
    expected = float(np.mean(y ** 2))
    _expect(name, np.isclose(history.history["loss"][0], expected)
            and np.isclose(float(_numpy(trackers[0].result())), expected),
            "the loss tracker no longer receives the step's loss")
    if BACKEND != "tensorflow":
        return
    count = keras.Variable(0, dtype="int64", trainable=False)
    tracker = trackers[0]
    original = tracker.update_state

    def update_state(values, sample_weight=None):
        count.assign_add(1)
        return original(values, sample_weight=sample_weight)

    tracker.update_state = update_state
    try:
        kc.rebuild_train_function(model)
        model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    finally:
        del tracker.__dict__["update_state"]
    _expect(name, int(_numpy(count)) == 3,
            f"the train step called the loss tracker's `update_state` "
            f"{int(_numpy(count))} times in 3 steps, not once per step")


def test_metric_variables():
    name = "metric_variables"
    metric = keras.metrics.Mean()
    extra = metric.add_variable((), "zeros", dtype="float32", name="extra")
    with _touch(name, "`metric._variables`"):
        kc.remove_metric_variables(metric, (extra,))
    metric.update_state([1.0, 3.0])
    _expect(name, len(metric.variables) == 2
            and float(_numpy(metric.result())) == 2.0,
            "no longer lists a metric's variables in `metric._variables`")


@pytest.mark.skipif(BACKEND != "jax", reason="JAX trainer only")
def test_jax_state_sync():
    name = "jax_state_sync"
    model = _model()
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    with _touch(name, "`model.jax_state_sync()`"):
        kc.jax_state_sync(model)


@pytest.mark.skipif(BACKEND != "jax", reason="JAX trainer only")
def test_jax_compute_loss_and_updates():
    name = "jax_compute_loss_and_updates"
    model = _model()
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    with _touch(name, "`model.compute_loss_and_updates(...)`"):
        loss, aux = kc.jax_loss_and_updates(model)(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.metrics_variables], x, y, None,
            training=True,
            optimizer_variables=[v.value for v in model.optimizer.variables])
    expected = np.mean((_numpy(model(x)) - y) ** 2)
    _expect(name, len(aux) == 4 and np.isclose(float(loss), expected)
            and np.isclose(float(aux[0]), expected),
            "`compute_loss_and_updates` no longer returns `(loss, (unscaled "
            "loss, y_pred, non_trainable, metrics))`")


# ------------------------------------------------------------- monitoring

def test_monitor_improvement():
    name = "monitor_improvement"
    model = _model()
    callback = keras.callbacks.ReduceLROnPlateau(monitor="val_loss",
                                                 min_delta=0.1)
    callback.set_model(model)
    with _touch(name, "`MonitorCallback._set_monitor_op`/`_is_improvement`"):
        kc.settle_monitor_mode(callback)
        callback.best = None
        first = kc.monitor_improved(callback, 1.0)
        callback.best = 1.0
        small, large = (kc.monitor_improved(callback, v) for v in (0.95, 0.85))
    _expect(name, (first, small, large) == (True, False, True),
            f"judges improvements on `val_loss` (min_delta 0.1) as "
            f"{(first, small, large)} for (first, 1.0 -> 0.95, 1.0 -> 0.85),"
            " not (True, False, True)")
