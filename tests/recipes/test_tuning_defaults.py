"""Defaults first, step budgets and centred ranges of `recipes.tuning`."""

import math

import keras
import keras_tuner
import numpy as np
import pytest
from keras_tuner import oracles

from recipes.datasets import load_digits_8x8, load_textures
from recipes.image_classifier import fit_image_classifier
from recipes.tuning import (
    DEFAULT_SPACE,
    TUNERS,
    ImageClassifierHyperModel,
    RecipeTuner,
    ResultsTable,
    TuningResult,
    make_oracle,
    tune_image_classifier,
)

# `fit_image_classifier`'s documented defaults for a backbone trained from
# scratch: AdamW at the base rate (scale 1), warmup-cosine, weight decay
# 0.05, dropout 0.2, label smoothing 0.1, `augment="auto"` = no
# augmentation, no MixUp/CutMix, batch 32.
SCRATCH_DEFAULTS = {
    "optimizer": "adamw", "learning_rate_scale": 1.0,
    "schedule": "warmup_cosine", "weight_decay": 0.05, "dropout": 0.2,
    "label_smoothing": 0.1, "augment": "none", "mix": "none",
    "batch_size": 32}


@pytest.fixture(scope="module")
def digits(digits_8x8):
    (x, y), (xv, yv) = digits_8x8
    return (x[:600], y[:600]), (xv[:200], yv[:200])


def knobs(trial):
    return {k: v for k, v in trial.hyperparameters.values.items()
            if not k.startswith("tuner/")}


def search_oracle(hypermodel, tuner, directory, max_trials=3):
    oracle = make_oracle(tuner, objective="val_accuracy",
                         max_trials=max_trials, max_epochs=3, seed=0)
    RecipeTuner(oracle=oracle, hypermodel=hypermodel, directory=directory,
                project_name="search")
    return oracle


def finish(oracle, trial, score):
    oracle.update_trial(trial.trial_id, {"val_accuracy": score})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


@pytest.mark.parametrize("tuner", TUNERS)
def test_first_trial_is_the_recipe_defaults(digits, tmp_path, tuner):
    train, val = digits
    hypermodel = ImageClassifierHyperModel(train, validation_data=val)
    oracle = search_oracle(hypermodel, tuner, tmp_path)
    first = oracle.create_trial("tuner0")
    assert knobs(first) == SCRATCH_DEFAULTS == hypermodel.recipe_defaults()
    assert oracle.defaults_trial_id == first.trial_id
    finish(oracle, first, 0.5)
    second = oracle.create_trial("tuner0")
    assert knobs(second) != SCRATCH_DEFAULTS
    if tuner == "hyperband":
        # The defaults train the full max_epochs=3, outside the brackets;
        # the brackets start as Keras Tuner's: with factor 3, the first
        # (bracket 1) trains 1 epoch in its first round.
        assert first.hyperparameters.values["tuner/epochs"] == 3
        assert first.hyperparameters.values["tuner/initial_epoch"] == 0
        assert "tuner/bracket" not in first.hyperparameters.values
        values = second.hyperparameters.values
        assert (values["tuner/bracket"], values["tuner/round"],
                values["tuner/epochs"]) == (1, 0, 1)


def test_defaults_trial_trains_what_the_recipe_trains(digits):
    # The recipe's own resolved configuration, from a real run, against
    # the configuration of the first trial.
    train, val = digits
    hypermodel = ImageClassifierHyperModel(train, validation_data=val,
                                           seed=0)
    hp = keras_tuner.HyperParameters()
    hypermodel.declare(hp)
    config = hypermodel.recipe_config(hp, epochs=1)
    ran = fit_image_classifier(train, validation_data=val, epochs=1,
                               verbose=0, seed=0).config
    for name in ("backbone", "optimizer", "learning_rate", "schedule",
                 "weight_decay", "dropout", "label_smoothing", "augment",
                 "mixup", "cutmix", "batch_size", "epochs"):
        assert config[name] == pytest.approx(ran[name]), name


def test_pretrained_defaults_resolve_auto(digits):
    train, val = digits
    # Declaring the space builds nothing: no weights are downloaded.
    defaults = ImageClassifierHyperModel(
        train, validation_data=val,
        backbone="mobilenet_v3_small").recipe_defaults()
    # `augment="auto"` is "default" for a pretrained backbone, and the
    # fine-tune depth is the backbone's own ("auto").
    assert defaults["augment"] == "default"
    assert defaults["fine_tune_layers"] == "auto"


def test_photographs_from_scratch_default_to_mirror_first():
    (x, y), (xv, yv) = load_textures(train_per_class=20, val_per_class=10)
    hypermodel = ImageClassifierHyperModel((x, y), validation_data=(xv, yv))
    # The recipe would mirror these grayscale texture photographs, so the
    # tuner's first value of the knob is "mirror", which the space holds.
    assert hypermodel.plan.augment == "mirror"
    assert hypermodel.recipe_defaults()["augment"] == "mirror"
    hp = keras_tuner.HyperParameters()
    assert hypermodel.declare(hp)["augment"] == "mirror"


def test_user_space_keeps_the_defaults_it_holds(digits, tmp_path):
    train, val = digits
    hypermodel = ImageClassifierHyperModel(
        train, validation_data=val,
        space={"optimizer": ["lion", "radam"], "dropout": (0.3, 0.4),
               "weight_decay": (0.01, 0.1)})
    first = search_oracle(hypermodel, "random", tmp_path).create_trial("t")
    # Outside the user's choices and ranges: Keras Tuner's first choice
    # and the low end; inside: the recipe's default.
    assert knobs(first) == {**SCRATCH_DEFAULTS, "optimizer": "lion",
                            "dropout": 0.3, "weight_decay": 0.05}


@pytest.mark.parametrize("tuner", ["random", "hyperband"])
def test_resumed_search_does_not_rerun_the_defaults(digits, tmp_path,
                                                    tuner):
    train, val = digits
    hypermodel = ImageClassifierHyperModel(train, validation_data=val)

    def search():
        oracle = make_oracle(tuner, objective="val_accuracy", max_trials=3,
                             max_epochs=3, seed=0)
        return RecipeTuner(oracle=oracle, hypermodel=hypermodel,
                           directory=tmp_path, project_name="search")

    # Killed while the defaults trial ran (before the tuner saved any
    # state): the restarted search runs it again, under the same id.
    started = search().oracle.create_trial("tuner0")
    resumed = search()
    retried = resumed.oracle.create_trial("tuner0")
    assert retried.trial_id == started.trial_id == "0"
    assert knobs(retried) == SCRATCH_DEFAULTS
    assert retried.hyperparameters.values.get("tuner/epochs", 3) == 3
    # It finishes as in `Tuner.run_trial`; a search resumed after that
    # keeps it and goes on with a new configuration.
    resumed.oracle.update_trial("0", {"val_accuracy": 0.5})
    retried.status = "COMPLETED"
    resumed.on_trial_end(retried)
    again = search().oracle
    assert again.trials["0"].status == "COMPLETED"
    assert knobs(again.trials["0"]) == SCRATCH_DEFAULTS
    following = again.create_trial("tuner0")
    assert following.trial_id == "1"
    assert knobs(following) != SCRATCH_DEFAULTS
    assert again.defaults_trial_id == "0"


def test_search_ranges_are_centred_on_the_recipe_defaults():
    for knob in DEFAULT_SPACE.values():
        if knob.kind != "float" or knob.keyword is None:
            continue
        low, high = knob.values
        middle = math.sqrt(low * high) if knob.log else (low + high) / 2
        assert middle == pytest.approx(SCRATCH_DEFAULTS[knob.name])
    scale = DEFAULT_SPACE["learning_rate_scale"].values
    assert math.sqrt(scale[0] * scale[1]) == pytest.approx(1.0)
    sizes = sorted(DEFAULT_SPACE["batch_size"].values)
    assert sizes[len(sizes) // 2] == SCRATCH_DEFAULTS["batch_size"]


def test_step_budget_scales_epochs_to_the_batch_size(digits):
    train, val = digits
    steps = ImageClassifierHyperModel(train, validation_data=val)
    epochs = ImageClassifierHyperModel(train, validation_data=val,
                                       budget="epochs")
    # 600 examples: 4 epochs of ceil(600 / 32) = 19 steps = 76 steps;
    # ceil(600 / 64) = 10 steps per epoch -> 7.6 -> 8 epochs;
    # ceil(600 / 16) = 38 -> 2 epochs.
    assert steps.trial_epochs(4, 32) == 4
    assert steps.trial_epochs(4, 64) == 8
    assert steps.trial_epochs(4, 16) == 2
    assert steps.trial_epochs(1, 16) == 1  # at least one epoch
    assert epochs.trial_epochs(4, 64) == 4
    with pytest.raises(ValueError, match="`budget`.*budget='time'"):
        ImageClassifierHyperModel(train, validation_data=val,
                                  budget="time")


class Scripted(keras_tuner.HyperModel):
    """One knob `x` (default 0: the "defaults") with a scripted objective.

    The defaults rank last after 1 epoch (0.1, against 0.5 + x / 10 for
    any other `x`) and first after 3 (0.9, against 0.6 + x / 10): a cheap
    first round misranks them. Each epoch logs its score as
    `val_accuracy` for Keras Tuner's best-epoch checkpoint, which Hyperband
    promotions load. `runs` records `(x, initial_epoch, epochs)` of every
    training.
    """

    def __init__(self):
        super().__init__()
        self.runs = []

    def build(self, hp):
        hp.Float("x", 0.0, 1.0, default=0.0)
        inputs = keras.Input((1,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        # Eager: a tiny model's training is quicker than its tracing.
        model.compile("sgd", "mse", run_eagerly=True)
        return model

    @staticmethod
    def score(x, epochs):
        if x == 0.0:
            return 0.1 if epochs < 3 else 0.9
        return (0.5 if epochs < 3 else 0.6) + x / 10

    def fit(self, hp, model, epochs=1, initial_epoch=0, callbacks=(),
            **kwargs):
        x = hp.values["x"]
        self.runs.append((x, initial_epoch, epochs))
        score = self.score

        class Log(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs["val_accuracy"] = score(x, epoch + 1)

        model.fit(np.zeros((4, 1)), np.zeros((4, 1)), epochs=epochs,
                  initial_epoch=initial_epoch, verbose=0,
                  callbacks=[Log(), *callbacks])
        return {"val_accuracy": score(x, epochs)}


def drive(oracle, score):
    """Run `oracle` to its end, scoring each trial with `score(trial)`."""
    trials = []
    while True:
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            return trials
        finish(oracle, trial, score(trial))
        trials.append(trial)


def bookkeeping(trial):
    values = trial.hyperparameters.values
    return tuple(values.get(f"tuner/{k}")
                 for k in ("epochs", "initial_epoch", "bracket", "round"))


def test_hyperband_brackets_are_keras_tuners_after_the_defaults(tmp_path):
    # Reference: Keras Tuner's own HyperbandOracle on the same space,
    # max_epochs=9, factor 3 (three brackets, 9 + 3 + 1, 5 + 1 and 3
    # trials), driven with the same scores.
    def score(trial):
        x = trial.hyperparameters.values["x"]
        return Scripted.score(x, trial.hyperparameters.values["tuner/epochs"])

    ours = make_oracle("hyperband", objective="val_accuracy",
                       max_trials=None, max_epochs=9, seed=0)
    RecipeTuner(oracle=ours, hypermodel=Scripted(), directory=tmp_path,
                project_name="ours")
    plain = oracles.HyperbandOracle(objective="val_accuracy", max_epochs=9,
                                    seed=1)
    keras_tuner.Tuner(oracle=plain, hypermodel=Scripted(),
                      directory=tmp_path, project_name="plain")
    ran, reference = drive(ours, score), drive(plain, score)
    assert len(reference) == 9 + 3 + 1 + 5 + 2 + 3
    # One trial more: the defaults, at the full budget, first; then the
    # brackets' trials with Keras Tuner's epochs, brackets and rounds.
    assert len(ran) == len(reference) + 1
    assert ran[0].hyperparameters.values == {
        "x": 0.0, "tuner/epochs": 9, "tuner/initial_epoch": 0}
    assert [bookkeeping(t) for t in ran[1:]] == [
        bookkeeping(t) for t in reference]
    # The brackets never draw the defaults again.
    assert all(t.hyperparameters.values["x"] != 0.0 for t in ran[1:])
    assert ours.get_best_trials(1)[0].trial_id == ran[0].trial_id
    # `max_trials` counts the defaults trial.
    capped = make_oracle("hyperband", objective="val_accuracy",
                         max_trials=4, max_epochs=9, seed=0)
    RecipeTuner(oracle=capped, hypermodel=Scripted(), directory=tmp_path,
                project_name="capped")
    assert len(drive(capped, score)) == 4


@pytest.mark.slow
def test_hyperband_trains_misranked_defaults_to_the_full_budget(tmp_path):
    # A real (tiny) search whose defaults rank last after 1 epoch: they
    # still train all 3 epochs, win, and a resumed search never runs
    # them again.
    hypermodel = Scripted()

    def search(max_trials):
        oracle = make_oracle("hyperband", objective="val_accuracy",
                             max_trials=max_trials, max_epochs=3, seed=0)
        tuner = RecipeTuner(oracle=oracle, hypermodel=hypermodel,
                            directory=tmp_path, project_name="search")
        tuner.search(epochs=3, verbose=0)
        return tuner

    first = search(max_trials=2)
    assert hypermodel.runs[0] == (0.0, 0, 3)
    assert [run[1:] for run in hypermodel.runs] == [(0, 3), (0, 1)]
    # Resumed with a larger cap: the first bracket's 3 trials and its
    # promotion follow, and the defaults are not trained again.
    tuner = search(max_trials=5)
    assert len(tuner.oracle.trials) == 5
    assert [run[0] for run in hypermodel.runs].count(0.0) == 1
    assert len(hypermodel.runs) == 5
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.trial_id == first.oracle.defaults_trial_id
    assert best.score == pytest.approx(0.9)
    # Hyperband's own promotion (1 -> 3 epochs, from the parent's
    # checkpoint) still happens.
    assert (0, 1) in [run[1:] for run in hypermodel.runs]
    assert (1, 3) in [run[1:] for run in hypermodel.runs]


def test_keras_tuner_internals_the_oracles_rely_on(tmp_path):
    # Canary for keras-tuner (1.4.8 tested): `DefaultsFirstOracle`
    # replaces the draw of `Oracle._random_values`, through which random,
    # Bayesian and Hyperband oracles get each new configuration, and
    # `RecipeTuner` trains what `tuner/epochs` and `tuner/initial_epoch`
    # of a Hyperband trial say. If this fails, recipes/tuning/tuners.py
    # must follow keras-tuner's change.
    for base in (oracles.RandomSearchOracle,
                 oracles.BayesianOptimizationOracle,
                 oracles.HyperbandOracle):
        class Marked(base):
            def _random_values(self):
                return {"x": 0.25}

        budget = {"max_epochs": 3} if base is oracles.HyperbandOracle \
            else {"max_trials": 2}
        oracle = Marked(objective="val_accuracy", seed=1, **budget)
        keras_tuner.Tuner(oracle=oracle, hypermodel=Scripted(),
                          directory=tmp_path, project_name=base.__name__)
        values = oracle.create_trial("tuner0").hyperparameters.values
        assert values["x"] == 0.25, (
            f"keras-tuner's {base.__name__} no longer draws through "
            "`_random_values`; `DefaultsFirstOracle` depends on it")
        if base is oracles.HyperbandOracle:
            assert {"tuner/epochs", "tuner/initial_epoch"} <= set(values), (
                "keras-tuner's Hyperband trials no longer carry "
                "`tuner/epochs` and `tuner/initial_epoch`")


@pytest.mark.parametrize("objective, best, defaults, gain", [
    ("val_accuracy", 0.95, 0.90, 0.05), ("val_loss", 0.20, 0.30, 0.10),
    ("val_accuracy", 0.90, 0.90, 0.0)])
def test_result_reports_the_gain_over_the_defaults(objective, best,
                                                    defaults, gain):
    rows = [{"trial_id": "0", "status": "COMPLETED", "score": defaults,
             "epochs_run": 2, "defaults": True}]
    result = TuningResult(None, {}, None, best,
                          ResultsTable(rows, objective), None,
                          defaults_score=defaults, defaults_trial_id="0")
    assert result.gain_over_defaults == pytest.approx(gain)
    summary = result.summary()
    assert f"defaults (trial 0): {defaults:.4f}" in summary
    assert (f"{gain:+.4f}" if gain else "the defaults were best") in summary


@pytest.mark.slow
def test_two_trial_search_is_at_least_the_defaults_on_held_out_digits(
        tmp_path):
    # 800 real digits train, 200 validate the search, 797 are held out.
    (x, y), held_out = load_digits_8x8(validation_size=797)
    train, val = (x[:800], y[:800]), (x[800:], y[800:])
    found = tune_image_classifier(
        train, validation_data=val, tuner="random", max_trials=2,
        max_epochs=2, directory=tmp_path, seed=0)
    assert found.gain_over_defaults >= 0.0
    assert found.table[0]["defaults"]
    defaults = fit_image_classifier(train, validation_data=val, epochs=2,
                                    verbose=0, seed=0)

    def accuracy(model):
        predicted = model.predict(held_out[0], verbose=0).argmax(-1)
        return np.mean(predicted == held_out[1])

    assert accuracy(found.best_model) >= accuracy(defaults.model)
