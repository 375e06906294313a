import json
import os
import re

import keras
import keras_tuner
import numpy as np
import pytest

from recipes import optimizers
from recipes.augmentations import list_augmentations
from recipes.image_classifier import (
    check_image_classifier_args,
    fit_image_classifier,
)
from recipes.schedules import list_schedules
from recipes.tuning import (
    DEFAULT_SPACE,
    ImageClassifierHyperModel,
    atomic_write_json,
    make_oracle,
    tune_image_classifier,
)
from recipes.tuning import space as space_module

TRAIN, VALIDATION = 600, 200


@pytest.fixture(scope="module")
def small(mnist_5k):
    (x, y), (xv, yv) = mnist_5k
    return (x[:TRAIN], y[:TRAIN]), (xv[:VALIDATION], yv[:VALIDATION])


def documented_knobs():
    """Knob names from the table in `recipes.tuning.space`'s docstring."""
    return re.findall(r"^\| `(\w+)` \|", space_module.__doc__, re.M)


def test_search_space_holds_the_documented_knobs(small):
    train, val = small
    hp = keras_tuner.HyperParameters()
    # A pretrained registry backbone: fine-tune depth is a knob (declaring
    # the space builds nothing, so no weights are downloaded).
    ImageClassifierHyperModel(train, validation_data=val,
                              backbone="mobilenet_v3_small").declare(hp)
    assert sorted(hp.values) == sorted(documented_knobs())
    assert len(documented_knobs()) == 10
    names = {p.name: p for p in hp.space}
    assert set(names["optimizer"].values) <= set(
        optimizers.list_optimizers())
    assert set(names["schedule"].values) == {
        "constant", "warmup_cosine", "one_cycle", "cyclical"}
    assert names["learning_rate_scale"].sampling == "log"
    assert names["weight_decay"].sampling == "log"
    # Trained from scratch: no fine-tune depth to search.
    hp = keras_tuner.HyperParameters()
    ImageClassifierHyperModel(train, validation_data=val).declare(hp)
    assert "fine_tune_layers" not in hp.values


def test_knob_choices_are_registry_names():
    # Every registered schedule is searched, in the registry's order; the
    # augmentation knob searches a subset (no flips: they corrupt digits).
    assert DEFAULT_SPACE["schedule"].values == tuple(list_schedules())
    assert set(DEFAULT_SPACE["augment"].values) < set(list_augmentations())


def test_user_fixes_knobs_and_passes_ranges(small):
    train, val = small
    hypermodel = ImageClassifierHyperModel(
        train, validation_data=val,
        space={"optimizer": "lion", "dropout": [0.1, 0.3],
               "weight_decay": (1e-3, 1e-2),
               "batch_size": lambda hp: hp.Fixed("batch_size", 16)})
    hp = keras_tuner.HyperParameters()
    hypermodel.declare(hp)
    space = {p.name: p for p in hp.space}
    assert isinstance(space["optimizer"], keras_tuner.engine
                      .hyperparameters.Fixed)
    assert space["dropout"].values == [0.1, 0.3]
    assert (space["weight_decay"].min_value,
            space["weight_decay"].max_value) == (1e-3, 1e-2)
    assert space["weight_decay"].sampling == "log"
    assert hp.values["batch_size"] == 16


def test_recipe_config_maps_knobs_to_recipe_keywords(small):
    train, val = small
    hypermodel = ImageClassifierHyperModel(train, validation_data=val,
                                           seed=3)
    hp = keras_tuner.HyperParameters()
    hypermodel.declare(hp)
    hp.values.update(optimizer="lion", learning_rate_scale=2.0,
                     batch_size=128, mix="cutmix", dropout=0.3)
    config = hypermodel.recipe_config(hp, epochs=4)
    # Registry default for lion moved from batch 32 to 128 by the
    # square-root rule (x2), doubled like the recipe's own default for a
    # backbone trained from scratch (small_cnn), then scaled by 2.
    base = optimizers.get_info("lion").default_learning_rate
    assert config["learning_rate"] == pytest.approx(base * 2.0 * 2.0 * 2.0)
    assert (config["mixup"], config["cutmix"]) == (0.0, 1.0)
    # Step budget: 4 epochs of ceil(600 / 32) = 19 steps at the default
    # batch, 76 steps, are 15 epochs of ceil(600 / 128) = 5 steps.
    assert config["epochs"] == 15 and config["seed"] == 3
    assert config["optimizer"] == "lion" and config["dropout"] == 0.3
    assert config["backbone"] == "small_cnn"


@pytest.mark.parametrize("backbone, expected", [
    # The recipe's documented defaults for AdamW at batch 32: 2e-3 for a
    # backbone trained from scratch, the registry's 1e-3 for a pretrained
    # one.
    ("small_cnn", 2e-3), ("mobilenet_v3_small", 1e-3)])
def test_scale_one_is_the_recipe_default_learning_rate(small, backbone,
                                                       expected):
    train, val = small
    hypermodel = ImageClassifierHyperModel(train, validation_data=val,
                                           backbone=backbone)
    hp = keras_tuner.HyperParameters()
    hypermodel.declare(hp)
    hp.values.update(optimizer="adamw", learning_rate_scale=1.0,
                     batch_size=32)
    assert optimizers.get_info("adamw").default_learning_rate == 1e-3
    config = hypermodel.recipe_config(hp)
    assert config["learning_rate"] == pytest.approx(expected)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"tuner": "annealing"}, ValueError, "`tuner`.*tuner='annealing'"),
    ({"max_trials": 0}, ValueError, "`max_trials`.*max_trials=0"),
    ({"max_trials": -2}, ValueError, "`max_trials`.*max_trials=-2"),
    ({"max_epochs": 0}, ValueError, "`max_epochs`.*max_epochs=0"),
    ({"objective": "val_auc"}, ValueError, "`objective`.*'val_auc'"),
    ({"validation_split": 0.0, "validation_data": None}, ValueError,
     "`objective`.*'val_accuracy'"),
    ({"space": {"momentum": [0.9]}}, ValueError, "`space`.*'momentum'"),
    ({"space": {"dropout": (0.5, 0.1)}}, ValueError, "dropout.*0.5, 0.1"),
    # Fixed values, choices and range ends the recipe refuses.
    ({"space": {"dropout": 2.0}}, ValueError,
     "`space`.*'dropout'.*dropout=2.0"),
    ({"space": {"dropout": (0.0, 1.0)}}, ValueError,
     "`space`.*'dropout'.*dropout=1.0"),
    ({"space": {"optimizer": ["adamw", "adamm"]}}, ValueError,
     "`space`.*'optimizer'.*'adamm'"),
    ({"space": {"schedule": "cosine"}}, ValueError,
     "`space`.*'schedule'.*schedule='cosine'"),
    ({"space": {"batch_size": [0, 32]}}, ValueError,
     "`space`.*'batch_size'.*batch_size=0"),
    ({"space": {"learning_rate_scale": -1.0}}, ValueError,
     "`space`.*'learning_rate_scale'.*learning_rate_scale=-1.0"),
    ({"space": {"mix": "both"}}, ValueError, "`space`.*'mix'.*mix='both'"),
    ({"space": {"label_smoothing":
                lambda hp: hp.Choice("label_smoothing", [0.0, 1.5])}},
     ValueError, "'label_smoothing'.*label_smoothing=1.5"),
    # Fixed recipe keywords.
    ({"warmup_fraction": 2.0}, ValueError,
     "`warmup_fraction`.*warmup_fraction=2.0"),
    ({"patience": -1}, ValueError, "`patience`.*patience=-1"),
    ({"backbone": "resnet5"}, ValueError, "`backbone`.*'resnet5'"),
    ({"epochs": 0}, ValueError, "epochs.*0"),
    ({"dropout": 2.0}, ValueError, "dropout.*2.0"),
    ({"learning_rate": 0.1}, ValueError, "learning_rate.*0.1"),
    ({"epoch": 3}, TypeError, "epoch.*3"),
])
def test_bad_arguments_fail_before_any_trial(small, tmp_path, kwargs,
                                             error, match):
    train, val = small
    args = dict(validation_data=val, tuner="random", max_trials=2,
                max_epochs=1, directory=tmp_path / "search")
    args.update(kwargs)
    with pytest.raises(error, match=match):
        tune_image_classifier(train, **args)
    # Nothing ran: the search directory was never created.
    assert not (tmp_path / "search").exists()


def test_bad_predeclared_hyperparameters_fail_before_any_trial(
        small, tmp_path):
    train, val = small
    hp = keras_tuner.HyperParameters()
    hp.Float("weight_decay", -0.1, 0.1)
    with pytest.raises(ValueError, match="`hyperparameters`.*"
                       "'weight_decay'.*weight_decay=-0.1"):
        tune_image_classifier(
            train, validation_data=val, tuner="random", max_trials=2,
            max_epochs=1, directory=tmp_path / "search", hyperparameters=hp)
    assert not (tmp_path / "search").exists()


def test_check_image_classifier_args_matches_the_recipe():
    # Same verdicts as the recipe's own checks, without data or training.
    check_image_classifier_args(dropout=0.3, optimizer="lion", epochs=2)
    for kwargs in ({"dropout": 2.0}, {"epochs": 0},
                   {"schedule": "cosine"}):
        with pytest.raises(ValueError) as checked:
            check_image_classifier_args(**kwargs)
        with pytest.raises(ValueError) as fitted:
            fit_image_classifier((np.zeros((4, 8, 8, 1)), np.arange(4)),
                                 **kwargs)
        assert str(checked.value) == str(fitted.value)
    with pytest.raises(TypeError, match="epoch"):
        check_image_classifier_args(epoch=3)


def test_keras_model_backbone_is_refused(small):
    train, val = small
    with pytest.raises(TypeError, match="backbone"):
        ImageClassifierHyperModel(train, validation_data=val,
                                  backbone=keras.Sequential([]))


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory, digits_8x8):
    """60 of the 8x8 digits (classes 0-2) as PNG files in class folders."""
    (x, y), _ = digits_8x8
    root = tmp_path_factory.mktemp("folder") / "digits"
    for i in np.flatnonzero(y < 3)[:60]:
        os.makedirs(root / str(y[i]), exist_ok=True)
        keras.utils.save_img(root / str(y[i]) / f"{i}.png",
                             (np.repeat(x[i], 3, axis=-1) * 255).round(),
                             scale=False)
    return str(root)


@pytest.mark.parametrize("kwargs, size", [
    # A registry backbone with a native size (MobileNetV3 at 224x224): the
    # recipe reads a folder's 8x8 images at that size, so must the trials.
    ({"backbone": "mobilenet_v3_small", "weights": None}, (224, 224)),
    ({"backbone": "mobilenet_v3_small", "weights": None,
      "image_size": 40}, (40, 40)),
    # No native size: the images' own.
    ({"backbone": "small_cnn"}, (8, 8)),
])
def test_trial_models_take_the_images_at_the_recipes_size(digit_folder,
                                                           kwargs, size):
    hypermodel = ImageClassifierHyperModel(digit_folder, **kwargs)
    assert hypermodel.images.image_shape == (*size, 3)
    assert hypermodel.plan.backbone == kwargs["backbone"]
    model = hypermodel.build(keras_tuner.HyperParameters())
    assert tuple(model.input_shape) == (None, *size, 3)


def test_diverging_configuration_is_a_failed_trial(small):
    train, val = small
    hypermodel = ImageClassifierHyperModel(
        train, validation_data=val,
        space={"optimizer": "sgd", "learning_rate_scale": 1e30,
               "schedule": "constant", "augment": "none"})
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    with pytest.raises(keras_tuner.errors.FailedTrialError,
                       match="diverged"):
        hypermodel.fit(hp, model, epochs=1)


def test_atomic_write_keeps_the_old_file_when_a_write_fails(tmp_path):
    path = tmp_path / "oracle.json"
    atomic_write_json(path, {"trials": [1, 2]})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"trials": [object()]})
    assert json.loads(path.read_text()) == {"trials": [1, 2]}


def _oracle(directory, max_trials):
    hp = keras_tuner.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = make_oracle("random", objective="val_accuracy",
                         max_trials=max_trials, max_epochs=1, seed=0,
                         hyperparameters=hp)
    oracle._set_project_dir(directory, "search")
    return oracle


def _finish(oracle, trial):
    oracle.update_trial(trial.trial_id, {"val_accuracy": 1.0})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


def test_trial_started_but_not_in_oracle_state_is_retried(tmp_path):
    # The oracle.json saved when trial 0 ended still lists trial 0 as
    # running (Keras Tuner pops it after saving); putting it back after
    # trial 1 started mimics a kill between trial 1's trial.json and
    # oracle.json writes. Resuming must not rerun 0 and must retry 1.
    oracle = _oracle(tmp_path, 3)
    _finish(oracle, oracle.create_trial("tuner0"))
    state = (tmp_path / "search" / "oracle.json").read_text()
    started = oracle.create_trial("tuner0")
    (tmp_path / "search" / "oracle.json").write_text(state)

    resumed = _oracle(tmp_path, 3)
    resumed.reload()
    retried = resumed.create_trial("tuner0")
    assert retried.trial_id == started.trial_id == "1"
    assert retried.hyperparameters.values == started.hyperparameters.values
    _finish(resumed, retried)
    _finish(resumed, resumed.create_trial("tuner0"))
    assert resumed.create_trial("tuner0").status == "STOPPED"
    assert sorted(resumed.trials) == ["0", "1", "2"]
    assert all(t.status == "COMPLETED" for t in resumed.trials.values())


def _check_search(result, val, max_trials):
    table = result.table
    assert 1 <= len(table) <= max_trials
    scores = [row["score"] for row in table if row["status"] == "COMPLETED"]
    assert scores and all(0.0 <= s <= 1.0 for s in scores)
    assert result.best_score == pytest.approx(max(scores))
    # The best model is the best trial's trained model: its accuracy on the
    # validation images is the trial's score.
    xv, yv = val
    predicted = result.best_model.predict(xv, verbose=0).argmax(-1)
    assert np.mean(predicted == yv) == pytest.approx(result.best_score,
                                                     abs=1e-6)
    for row in table:
        assert set(DEFAULT_SPACE) - {"fine_tune_layers"} <= set(row)


@pytest.mark.slow
# The grid tuner runs in test_failed_trials_do_not_stop_the_search.
@pytest.mark.parametrize("tuner", ["random", "bayesian"])
def test_each_tuner_searches_real_mnist(small, tmp_path, tuner):
    train, val = small
    result = tune_image_classifier(
        train, validation_data=val, tuner=tuner, max_trials=2,
        max_epochs=1, directory=tmp_path, space={"augment": "none"},
        budget="epochs")
    _check_search(result, val, 2)
    assert len(result.table) == 2
    assert all(row["epochs_run"] == 1 for row in result.table)
    axes = result.plot()
    assert axes.get_ylabel() == "val_accuracy"
    if tuner == "random":
        # The best configuration is a set of recipe keywords: the recipe
        # re-trains it as searched.
        best = result.best_hyperparameters
        refit = fit_image_classifier(train, verbose=0, **best)
        values = result.best_hp.values
        assert refit.config["optimizer"] == values["optimizer"]
        assert refit.config["batch_size"] == values["batch_size"]
        assert refit.config["learning_rate"] == pytest.approx(
            best["learning_rate"])
        assert refit.config["epochs_run"] == 1
        assert 0.0 < refit.metrics["val_accuracy"] <= 1.0


class RecordStartWeights(keras.callbacks.Callback):
    """Saves the weights each training run starts from, one file a run.

    Keras Tuner deep-copies search callbacks per trial, so the record goes
    to files (numbered in run order) rather than to the instance.
    """

    def __init__(self, directory):
        super().__init__()
        self.directory = str(directory)

    def on_train_begin(self, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        index = len(os.listdir(self.directory))
        np.savez(os.path.join(self.directory, f"{index:03d}.npz"),
                 *self.model.get_weights())


def load_record(path):
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


FIXED = {"optimizer": "adamw", "learning_rate_scale": 1.0,
         "schedule": "warmup_cosine", "augment": "none", "mix": "none",
         "batch_size": 64}


def test_promoted_hyperband_trial_continues_from_the_parent(small,
                                                            tmp_path):
    train, val = small
    hypermodel = ImageClassifierHyperModel(
        train, validation_data=val, space=FIXED, early_stopping=False,
        seed=0)
    hp = keras_tuner.HyperParameters()
    parent_file = str(tmp_path / "parent.weights.h5")
    parent_history = keras.callbacks.History()
    parent = hypermodel.fit(
        hp, hypermodel.build(hp), epochs=3,
        callbacks=[parent_history, keras.callbacks.ModelCheckpoint(
            parent_file, save_weights_only=True)])
    # What Keras Tuner's Hyperband hands a promoted trial: the parent's
    # id in `hp`, a model holding its weights, epochs and initial_epoch.
    hp.values.update({"tuner/trial_id": "0", "tuner/epochs": 4,
                      "tuner/initial_epoch": 3})
    model = hypermodel.build(hp)
    model.load_weights(parent_file)
    record = RecordStartWeights(tmp_path / "starts")
    history = keras.callbacks.History()
    child = hypermodel.fit(hp, model, epochs=4, initial_epoch=3,
                           callbacks=[record, history])
    # Only the increment ran, starting from the parent's saved weights
    # (read back from its checkpoint file into a fresh model). Step budget
    # at batch 64: 3 epochs of ceil(600 / 32) = 19 steps are 57 steps, 6
    # epochs of ceil(600 / 64) = 10; 4 epochs (76 steps) are 8, so the
    # child trains 8 - 6 = 2.
    assert parent["epochs_run"] == 6 and child["epochs_run"] == 2
    reference = hypermodel.build(hp)
    reference.load_weights(parent_file)
    (start,) = sorted((tmp_path / "starts").iterdir())
    assert_same_weights(load_record(start), reference.get_weights())
    # So its first epoch trains far better than a fresh model's first
    # epoch (the parent's); training accuracy, as BatchNorm's moving
    # statistics lag behind in so few steps.
    fresh = parent_history.history["accuracy"][0]
    continued = history.history["accuracy"][0]
    assert continued > fresh + 0.2


@pytest.mark.slow
def test_hyperband_promotes_the_better_configuration(small, tmp_path):
    train, val = small
    record = RecordStartWeights(tmp_path / "starts")
    result = tune_image_classifier(
        train, validation_data=val, tuner="hyperband", max_trials=4,
        max_epochs=2, factor=2, directory=tmp_path / "search",
        space={"augment": "none", "batch_size": 64},
        early_stopping=False, callbacks=[record], budget="epochs")
    _check_search(result, val, 4)
    table = result.table
    # The defaults train the full 2 epochs first. Then Hyperband with
    # max_epochs=2, factor=2 (Li et al., 2018) starts with two
    # configurations for 1 epoch and trains the better one to 2 epochs:
    # it continues from its first epoch, so it runs 1 more.
    assert [row["epochs_run"] for row in table] == [2, 1, 1, 1]
    assert table[0]["defaults"]
    best = max(row["score"] for row in table[1:3])

    def knobs(row):
        return {k: row[k] for k in DEFAULT_SPACE if k in row}

    assert knobs(table[3]) in [knobs(row) for row in table[1:3]
                               if row["score"] == best]
    promoted = result.tuner.oracle.trials[table[3]["trial_id"]]
    values = promoted.hyperparameters.values
    assert (values["tuner/initial_epoch"], values["tuner/epochs"]) == (1, 2)
    parent = result.tuner.oracle.trials[values["tuner/trial_id"]]
    assert parent.score == best
    # The promoted trial started from the parent's best checkpoint.
    starts = sorted((tmp_path / "starts").iterdir())
    assert len(starts) == 4
    saved = result.tuner.load_model(parent).get_weights()
    assert_same_weights(load_record(starts[3]), saved)


@pytest.mark.slow
def test_failed_trials_do_not_stop_the_search(small, tmp_path):
    train, val = small
    result = tune_image_classifier(
        train, validation_data=val, tuner="grid", max_trials=2,
        max_epochs=1, directory=tmp_path,
        space={"schedule": "constant", "weight_decay": 1e-4,
               "dropout": 0.0, "augment": "none", "mix": "none",
               "batch_size": 64, "label_smoothing": 0.0,
               # Plain SGD at 1e30 x its rate diverges: that trial fails.
               "optimizer": "sgd", "learning_rate_scale": [1e30, 1.0]})
    statuses = [row["status"] for row in result.table]
    # Defaults first: scale 1 (the recipe's learning rate) runs first.
    assert statuses == ["COMPLETED", "FAILED"]
    assert result.best_hp.values["learning_rate_scale"] == 1.0


@pytest.mark.slow
def test_resume_without_overwrite_reuses_the_project(small, tmp_path):
    train, val = small
    first = tune_image_classifier(
        train, validation_data=val, tuner="random", max_trials=1,
        max_epochs=1, directory=tmp_path, space={"augment": "none"})
    trial_file = tmp_path / "image_classifier" / "trial_0" / "trial.json"
    stamp = os.stat(trial_file).st_mtime_ns
    again = tune_image_classifier(
        train, validation_data=val, tuner="random", max_trials=1,
        max_epochs=1, directory=tmp_path, space={"augment": "none"})
    assert os.stat(trial_file).st_mtime_ns == stamp
    assert list(again.table) == list(first.table)


@pytest.mark.slow
def test_lr_range_test_sets_the_base_rate_and_is_reused(small, tmp_path):
    train, val = small
    args = dict(validation_data=val, tuner="random", max_trials=1,
                max_epochs=1, directory=tmp_path, lr_range_test=True,
                space={"optimizer": "adamw", "augment": "none"})
    result = tune_image_classifier(train, **args)
    path = tmp_path / "image_classifier" / "lr_range_test.json"
    base = json.loads(path.read_text())
    assert list(base) == ["adamw"] and 1e-6 < base["adamw"] < 1.0
    scale = result.best_hp.values["learning_rate_scale"]
    assert 1 / 3 <= scale <= 3.0
    assert result.best_hyperparameters["learning_rate"] == pytest.approx(
        scale * base["adamw"])
    stamp = os.stat(path).st_mtime_ns
    tune_image_classifier(train, **args)
    assert os.stat(path).st_mtime_ns == stamp
