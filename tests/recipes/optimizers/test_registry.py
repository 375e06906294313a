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
