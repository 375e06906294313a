import copy

import keras
import numpy as np
import pytest

import recipes.optimizers as ro

NAMES = ro.list_optimizers()


def _model():
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(3),
    ])


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.integers(0, 3, size=(32,))
    return x, y


def test_names_from_the_issue_are_registered():
    expected = {"sgd", "nesterov", "momentum", "adagrad", "rmsprop", "adam",
                "adamw", "lamb", "lion", "radam", "lookahead_adam", "ranger",
                "lars", "adabelief", "yogi"}
    assert expected <= set(NAMES)
    assert NAMES == sorted(NAMES)


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"Did you mean \['radam'") as info:
        ro.get("radm")
    assert "Received: name='radm'" in str(info.value)


def test_names_are_case_and_dash_insensitive():
    assert isinstance(ro.get("Lookahead-Adam"), ro.Lookahead)


def test_keras_entries_keep_their_meaning():
    nesterov = ro.get("nesterov", learning_rate=0.2)
    assert isinstance(nesterov, keras.optimizers.SGD)
    assert nesterov.nesterov and nesterov.momentum == 0.9
    np.testing.assert_allclose(nesterov.learning_rate.numpy(), 0.2)
    assert ro.get("momentum").momentum == 0.9


def test_gradient_transform_options_wrap_any_entry():
    opt = ro.get("adamw", agc_clip_factor=0.05, gradient_centralization=True)
    assert isinstance(opt, ro.GradientTransform)
    assert isinstance(opt.inner_optimizer, keras.optimizers.AdamW)
    assert opt.agc_clip_factor == 0.05


def test_lookahead_entry_splits_its_kwargs():
    opt = ro.get("lookahead_adam", sync_period=3, beta_1=0.8)
    assert opt.sync_period == 3
    assert opt.inner_optimizer.beta_1 == 0.8


@pytest.mark.parametrize("name", NAMES)
def test_entry_builds_with_default_lr_and_weight_decay(name):
    default = ro.default_learning_rate(name)
    assert default > 0
    opt = ro.get(name, weight_decay=1e-4)
    np.testing.assert_allclose(
        float(keras.ops.convert_to_numpy(opt.learning_rate)), default,
        rtol=1e-6,
    )
    schedule = keras.optimizers.schedules.ExponentialDecay(default, 10, 0.5)
    scheduled = ro.get(name, learning_rate=schedule)
    config = scheduled.get_config()
    # Keras's `Optimizer.from_config` deserializes the schedule in place.
    clone = type(scheduled).from_config(copy.deepcopy(config))
    assert clone.get_config() == config
    assert "ExponentialDecay" in str(config)
    np.testing.assert_allclose(
        float(keras.ops.convert_to_numpy(clone.learning_rate)), default,
        rtol=1e-6,
    )


@pytest.mark.parametrize("name", NAMES)
def test_save_load_resume_gives_the_same_next_steps(name, tmp_path):
    # 3 steps, save, then 3 more: Lookahead's k=5 sync falls after the save.
    x, y = _data()
    model = _model()
    model.compile(ro.get(name, learning_rate=ro.default_learning_rate(name)),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  run_eagerly=True)
    for _ in range(3):
        model.train_on_batch(x, y)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.optimizer) is type(model.optimizer)
    # Tracing costs more than 3 eager steps of this tiny model.
    loaded.run_eagerly = True
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for _ in range(3):
        model.train_on_batch(x, y)
        loaded.train_on_batch(x, y)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6,
                                   atol=1e-6)


# LARS's `weight_decay` is its own coupled decay, not Keras's.
DECOUPLED = [n for n in NAMES if n != "lars"]


@pytest.mark.parametrize("name", DECOUPLED)
def test_weight_decay_exclusions_reach_the_optimizer_that_decays(name):
    # Zero gradients: only decoupled decay moves a weight,
    # w <- w * (1 - lr * wd), and the excluded bias must not move.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        2, kernel_initializer="ones", bias_initializer="ones")])
    opt = ro.get(name, learning_rate=0.1, weight_decay=0.5)
    assert opt.weight_decay == 0.5
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.apply([keras.ops.zeros(v.shape) for v in model.trainable_variables],
              model.trainable_variables)
    kernel, bias = (v.numpy() for v in model.trainable_variables)
    np.testing.assert_allclose(kernel, np.full((4, 2), 1 - 0.1 * 0.5),
                               rtol=1e-6)
    np.testing.assert_allclose(bias, np.ones(2))


@pytest.mark.parametrize("name", ["adamw", "ranger", "lookahead_adam"])
def test_exclusions_after_reload_work_as_for_adamw(name, tmp_path):
    # Keras does not save the exclusions (AdamW included); on a reloaded
    # model they are set again on the optimizer and reach the inner one.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        2, kernel_initializer="ones", bias_initializer="ones")])
    model.compile(ro.get(name, learning_rate=0.1, weight_decay=0.5), "mse")
    model.fit(np.zeros((4, 4)), np.ones((4, 2)), verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.optimizer.weight_decay == 0.5
    loaded.optimizer.exclude_from_weight_decay(var_names=["bias"])
    kernel, bias = (v.numpy() for v in loaded.trainable_variables)
    loaded.optimizer.apply(
        [keras.ops.zeros(v.shape) for v in loaded.trainable_variables])
    np.testing.assert_allclose(loaded.trainable_variables[0].numpy(),
                               kernel * (1 - 0.1 * 0.5), rtol=1e-6)
    np.testing.assert_allclose(loaded.trainable_variables[1].numpy(), bias)


@pytest.mark.parametrize("name, kwargs, error, text", [
    ("adam", {"learning_rate": -1.0}, ValueError, "learning_rate=-1.0"),
    ("lookahead_adam", {"learning_rate": -1.0}, ValueError,
     "learning_rate=-1.0"),
    ("adam", {"learning_rate": float("nan")}, ValueError, "learning_rate=nan"),
    ("adam", {"learning_rate": "fast"}, TypeError, "learning_rate='fast'"),
    ("lookahead_adam", {"beta_1": 2.0}, ValueError, "beta_1=2.0"),
    ("adam", {"beta_2": 1.0}, ValueError, "beta_2=1.0"),
    ("momentum", {"momentum": 1.5}, ValueError, "momentum=1.5"),
    ("lookahead_sgd", {"momentum": -0.1}, ValueError, "momentum=-0.1"),
    ("adam", {"epsilon": -1.0}, ValueError, "epsilon=-1.0"),
    ("adamw", {"weight_decay": -0.1}, ValueError, "weight_decay=-0.1"),
])
def test_get_validates_arguments_of_every_entry(name, kwargs, error, text):
    with pytest.raises(error, match=text.replace("(", r"\(")):
        ro.get(name, **kwargs)


@pytest.mark.parametrize("name", ["adam", "lookahead_adam"])
def test_get_accepts_a_schedule(name):
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.5)
    opt = ro.get(name, learning_rate=schedule)
    variable = keras.Variable([1.0])
    opt.apply([keras.ops.ones((1,))], [variable])
    # Adam's first step is lr * sign(g) (up to epsilon).
    np.testing.assert_allclose(variable.numpy(), [1.0 - 1e-3], rtol=1e-5)
