"""`tune_image_classifier`: search the image recipe with Keras Tuner."""

import fnmatch
import json
import math
import os

import keras_tuner

from callbacks._internal import check_choice, check_number, ownership
from recipes import _optimization
from recipes.data import make_pipeline
from recipes.tuning import space as space_module
from recipes.tuning.hypermodel import (
    BUDGETS,
    RECIPE_METRICS,
    ImageClassifierHyperModel,
)
from recipes.tuning.tuners import (
    TUNERS,
    RecipeTuner,
    make_oracle,
    write_owned_json,
)

_LR_FILE = "lr_range_test.json"
# Entries Keras Tuner and the search read and write in a project folder.
_SEARCH_FILES = ("oracle.json", "tuner*.json", "trial_*", _LR_FILE)
# Arguments that do not change which trials a search runs or how they
# train: a search resumed with other values of these is the same search
# (a larger `max_trials` extends it).
_RESUMABLE_ARGS = ("max_trials", "max_consecutive_failed_trials",
                   "callbacks", "verbose", "overwrite", "directory",
                   "project_name")
# Learning-rate scale range once an LR range test has set the base rate.
_NARROW_SCALE = (1 / 3, 3.0)


class ResultsTable(list):
    """Trials of a search as a list of dicts, in the order they started.

    Each row has `trial_id`, `status`, `score` (the objective), `epochs_run`,
    `defaults` (whether the trial ran the recipe's defaults: the first trial,
    at the full `max_epochs` under every tuner) and the trial's knob
    values.
    """

    def __init__(self, rows, objective):
        super().__init__(rows)
        self.objective = objective

    def plot(self, ax=None):
        """Plot the objective of each trial and the best so far.

        Args:
            ax: A matplotlib `Axes`. Defaults to `None` (a new figure).

        Returns:
            The `Axes`.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        scored = [(i, row["score"]) for i, row in enumerate(self)
                  if row["score"] is not None]
        if scored:
            xs, ys = zip(*scored, strict=True)
            pick = min if self.objective.endswith("loss") else max
            best = [pick(ys[:i + 1]) for i in range(len(ys))]
            ax.plot(xs, ys, "o", label="trial")
            ax.step(xs, best, where="post", label="best so far")
            ax.legend()
        defaults = [(i, row["score"]) for i, row in enumerate(self)
                    if row.get("defaults") and row["score"] is not None]
        if defaults:
            xs, ys = zip(*defaults, strict=True)
            ax.plot(xs, ys, "s", mfc="none", ms=10, label="defaults")
            ax.axhline(ys[-1], ls="--", lw=1, color="gray")
            ax.legend()
        ax.set_xlabel("trial")
        ax.set_ylabel(self.objective)
        ax.set_title("Objective per trial")
        return ax


class TuningResult:
    """What `tune_image_classifier` returns.

    Attributes:
        best_model: The best trial's trained model.
        best_hyperparameters: Dict of `fit_image_classifier` keywords of
            the best trial: `fit_image_classifier(data, **best)` re-trains
            it.
        best_hp: The best trial's `keras_tuner.HyperParameters`.
        best_score: Its objective value.
        table: `ResultsTable` of every trial (`.plot()`).
        tuner: The Keras Tuner tuner (for `results_summary()` and more).
        defaults_score: The objective of the recipe's defaults (the first
            trial, trained `max_epochs` epochs under every tuner), or
            `None` if that trial failed.
        defaults_trial_id: Id of the trial that scored them.
        gain_over_defaults: How much better the best trial scored than the
            defaults (`best_score - defaults_score`, negated for a loss, so
            it is never negative); 0 when the defaults were best; `None`
            without `defaults_score`.
    """

    def __init__(self, best_model, best_hyperparameters, best_hp,
                 best_score, table, tuner, defaults_score=None,
                 defaults_trial_id=None):
        self.best_model = best_model
        self.best_hyperparameters = best_hyperparameters
        self.best_hp = best_hp
        self.best_score = best_score
        self.table = table
        self.tuner = tuner
        self.defaults_score = defaults_score
        self.defaults_trial_id = defaults_trial_id

    @property
    def gain_over_defaults(self):
        if self.defaults_score is None:
            return None
        gain = self.best_score - self.defaults_score
        return -gain if self.table.objective.endswith("loss") else gain

    def summary(self):
        """The best score, the defaults' score and the gain, as text.

        Returns:
            A string of three lines.
        """
        objective = self.table.objective
        lines = [f"best {objective}: {self.best_score:.4f} "
                 f"({len(self.table)} trials)"]
        if self.defaults_score is None:
            lines += [f"defaults (trial {self.defaults_trial_id}): failed",
                      "gain over defaults: unknown"]
            return "\n".join(lines)
        lines.append(f"defaults (trial {self.defaults_trial_id}): "
                     f"{self.defaults_score:.4f}")
        gain = self.gain_over_defaults
        lines.append(f"gain over defaults: {gain:+.4f}" if gain > 0 else
                     "gain over defaults: none (the defaults were best)")
        return "\n".join(lines)

    def plot(self, ax=None):
        """Objective vs trial, the defaults marked (`ResultsTable.plot`)."""
        return self.table.plot(ax)

    def __repr__(self):
        gain = self.gain_over_defaults
        gain = "?" if gain is None else f"{gain:+.4f}"
        return (f"TuningResult({self.table.objective}="
                f"{self.best_score:.4f}, gain_over_defaults={gain}, "
                f"trials={len(self.table)})")


def _check_args(tuner, max_trials, max_epochs, objective, factor,
                executions_per_trial, budget):
    check_choice("tuner", tuner, TUNERS)
    check_choice("budget", budget, BUDGETS)
    check_number("max_trials", max_trials, low=1, integer=True,
                 allow_none=tuner == "hyperband")
    check_number("max_epochs", max_epochs, low=1, integer=True)
    check_number("factor", factor, low=2, integer=True)
    check_number("executions_per_trial", executions_per_trial, low=1,
                 integer=True)
    check_choice("objective", objective, RECIPE_METRICS)


def tune_image_classifier(
        data, tuner="hyperband", max_trials=10, max_epochs=10,
        directory="tuning", project_name="image_classifier",
        overwrite=False, objective="val_accuracy", space=None,
        budget="steps", lr_range_test=False, factor=3, hyperband_iterations=1,
        executions_per_trial=1, max_consecutive_failed_trials=3,
        hyperparameters=None, callbacks=None, seed=0, verbose=1,
        **recipe_kwargs):
    """Search the whole image recipe with Keras Tuner; resumable.

    Runs `ImageClassifierHyperModel` (optimizer, learning rate, schedule,
    weight decay, dropout, label smoothing, augmentation, MixUp/CutMix,
    fine-tune depth, batch size) under a Keras Tuner search, each trial a
    call of `fit_image_classifier`. State files are written atomically, so
    a search killed at any point resumes when called again with the same
    `directory` and `project_name`: completed trials are kept, the running
    one is retried, and the search stops at `max_trials`.

    Defaults first: whatever the tuner, the first trial trains the recipe's
    own defaults for `max_epochs` epochs (what
    `fit_image_classifier(data, epochs=max_epochs)` trains; under
    Hyperband too, ahead of its brackets, so that no 1-epoch round can
    drop them), so the search never returns a configuration that scored
    worse on the objective than not tuning. The defaults trial counts
    against `max_trials`. `TuningResult.defaults_score` and
    `gain_over_defaults` say by how much the search beat them.

    Budgets: `max_epochs` counts epochs at the recipe's default batch size.
    With `budget="steps"` each trial trains the epochs that give it the same
    number of optimizer steps at its own batch size, so batch size competes
    at equal steps rather than a large batch getting a fraction of them.

    Distributed search: start the same call in several processes with
    `KERASTUNER_TUNER_ID` (`"chief"` for one, `"tuner0"`, `"tuner1"`, ...
    for the others), `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`
    set; the chief serves the oracle, the workers run trials. Only the
    chief's call returns a `TuningResult` with every trial; workers return
    when the oracle has no trials left.

    Args:
        data: Training images, any kind `fit_image_classifier` takes.
        tuner: `"hyperband"`, `"bayesian"`, `"random"` or `"grid"`.
            Defaults to `"hyperband"`.
        max_trials: Most trials, the defaults trial included; for
            Hyperband, which runs the defaults trial and then its
            brackets, a cap on top of them (`None` for none). Defaults to
            `10`.
        max_epochs: Epochs of each trial (Hyperband: of its longest runs).
            Defaults to `10`.
        directory: Where the search state lives. Defaults to `"tuning"`.
        project_name: Sub-directory of this search: one folder name (no
            path separators, `.` or `..`). Defaults to
            `"image_classifier"`.
        overwrite: Whether to start over instead of resuming: what the
            search created in the project folder (listed in its
            `.keras-recipes.json`) is deleted; nothing else ever is.
            Defaults to `False`.
        objective: `"val_accuracy"`, `"val_loss"`, `"accuracy"` or `"loss"`.
            Defaults to `"val_accuracy"`.
        space: Knob overrides (see `recipes.tuning.space`). Defaults to
            `None`.
        budget: `"steps"` (the same optimizer steps per trial, see above)
            or `"epochs"` (`max_epochs` epochs at any batch size). Defaults
            to `"steps"`.
        lr_range_test: Whether to set each optimizer's base learning rate
            with an LR range test (Smith, 2017) before the search and
            narrow `learning_rate_scale` to 1/3 to 3 around it. The rates
            are saved with the search and reused on resume. Defaults to
            `False`.
        factor: Hyperband's reduction factor. Defaults to `3`.
        hyperband_iterations: Hyperband iterations. Defaults to `1`.
        executions_per_trial: Runs averaged per trial. Defaults to `1`.
        max_consecutive_failed_trials: Failed trials in a row that end the
            search. Defaults to `3`.
        hyperparameters: `keras_tuner.HyperParameters` with knobs declared
            beforehand (they take precedence). Defaults to `None`.
        callbacks: Keras callbacks for every trial's training (copied per
            trial by Keras Tuner). Defaults to `None`.
        seed: Seed of the oracle and of every trial; the same call with
            the same seed (0 included) draws the same trials. Defaults to
            `0`.
        verbose: 0 (silent), 1 (trial summaries) or 2 (also each
            training). Defaults to `1`: a search runs for minutes, in a
            terminal or a notebook, and should show where it is.
        **recipe_kwargs: Fixed `fit_image_classifier` keywords
            (`validation_data`, `backbone`, `weights`, ...).

    A search resumes only under the settings it started with: called
    again on the same project with another search space, tuner, data or
    fixed recipe keyword (anything but `max_trials`,
    `max_consecutive_failed_trials`, `callbacks` and `verbose`), it raises
    a `ValueError` listing each change instead of mixing two searches.

    Returns:
        A `TuningResult`.

    Raises:
        ValueError: For a `project_name` that is not one folder name, a
            project folder holding search files keras-recipes did not
            create, a resume under other settings, an unknown tuner or
            objective, `max_trials` or
            `max_epochs` below 1, an unknown knob, a knob value or fixed
            recipe keyword the recipe refuses, or bad data, before any
            trial runs (nothing is written to `directory`).
        TypeError: For a keyword `fit_image_classifier` does not take, or
            a value of the wrong type.

    Example:

    >>> import tempfile
    >>> from recipes.datasets import load_digits_8x8
    >>> (x, y), val = load_digits_8x8()
    >>> found = tune_image_classifier(
    ...     (x, y), validation_data=val, tuner="random", max_trials=2,
    ...     max_epochs=2, directory=tempfile.mkdtemp(), verbose=0)
    >>> len(found.table)
    2

    References:
        - [Li et al., 2018 (Hyperband)](https://arxiv.org/abs/1603.06560)
        - [Bergstra & Bengio, 2012](https://jmlr.org/papers/v13/bergstra12a.html)
        - [Smith, 2017](https://arxiv.org/abs/1506.01186)
    """
    settings = {name: value for name, value in locals().items()
                if name not in _RESUMABLE_ARGS}
    _check_args(tuner, max_trials, max_epochs, objective, factor,
                executions_per_trial, budget)
    check_choice("verbose", verbose, (0, 1, 2))
    project_name = ownership.check_path_part("project_name", project_name)
    if os.path.isfile(os.fspath(directory)):
        raise ValueError(
            "Argument `directory` must be a folder (or a path to create "
            "one at); it is an existing file. "
            f"Received: directory={os.fspath(directory)!r}"
        )
    if recipe_kwargs.get("seed") is None:
        recipe_kwargs["seed"] = seed
    hypermodel = ImageClassifierHyperModel(
        data, space=space, objective=objective, budget=budget,
        **recipe_kwargs)
    if hyperparameters is not None:
        hypermodel.check_hyperparameters(hyperparameters)
    project_dir = os.path.join(os.fspath(directory), project_name)
    if hyperparameters is not None:
        settings["hyperparameters"] = hyperparameters.get_config()
    _open_project(project_dir, ownership.describe(settings), overwrite,
                  f"directory={directory!r}, project_name={project_name!r}")
    if lr_range_test:
        _set_base_learning_rates(hypermodel, project_dir, overwrite)
    oracle = make_oracle(
        tuner, objective=objective, max_trials=max_trials,
        max_epochs=max_epochs, seed=seed, factor=factor,
        hyperband_iterations=hyperband_iterations,
        hyperparameters=hyperparameters,
        max_consecutive_failed_trials=max_consecutive_failed_trials)
    search = RecipeTuner(
        oracle=oracle, hypermodel=hypermodel,
        executions_per_trial=executions_per_trial, directory=directory,
        project_name=project_name, overwrite=False)
    search.search(epochs=max_epochs, callbacks=list(callbacks or []),
                  verbose=verbose)
    if search.tuner_id != "chief" and "KERASTUNER_ORACLE_IP" in os.environ:
        return None
    return _result(search, hypermodel, max_epochs, objective)


def _open_project(project_dir, settings, overwrite, received):
    """Check the project folder is ours and its search ours to resume;
    with `overwrite`, delete what the search created there before."""
    clash = [name for name in ownership.foreign(project_dir)
             if any(fnmatch.fnmatch(name, p) for p in _SEARCH_FILES)]
    if clash:
        # Keras Tuner would reload or write over them, and they are not
        # ours to delete, so not even `overwrite=True` may proceed.
        raise ValueError(
            "Arguments `directory` and `project_name` name a folder holding "
            f"search files keras-recipes did not create ({', '.join(clash)})"
            ", which the search would read or write over and never "
            "deletes; move them away or choose another `directory` or "
            f"`project_name`. Received: {received}"
        )
    if overwrite:
        ownership.remove_owned(project_dir)
    elif ownership.owned(project_dir):
        changes = ownership.changed_settings(
            ownership.read_manifest(project_dir).get("settings"), settings)
        if changes:
            raise ValueError(
                "Arguments `directory` and `project_name` name an earlier "
                "search run with other settings, which resuming would mix "
                f"with this one: {'; '.join(changes)}. Call again with its "
                "settings to resume it, pass `overwrite=True` to start "
                "over, or choose another `project_name`. Received: "
                f"{received}"
            )
    ownership.claim(project_dir, settings=settings)


def _set_base_learning_rates(hypermodel, project_dir, overwrite):
    path = os.path.join(project_dir, _LR_FILE)
    if os.path.isfile(path) and not overwrite:
        with open(path) as f:
            hypermodel.base_learning_rates = json.load(f)
    else:
        hypermodel.base_learning_rates = find_base_learning_rates(hypermodel)
        write_owned_json(project_dir, _LR_FILE, path,
                         hypermodel.base_learning_rates)
    if "learning_rate_scale" not in hypermodel.space:
        hypermodel.space["learning_rate_scale"] = _NARROW_SCALE


def find_base_learning_rates(hypermodel):
    """An LR range test per optimizer of the search space.

    Each optimizer trains the model of the default configuration (fresh
    weights) through `callbacks.find_learning_rate` on the training
    pipeline; its suggestion becomes that optimizer's base learning rate.

    Args:
        hypermodel: An `ImageClassifierHyperModel`.

    Returns:
        Dict of optimizer name to learning rate.
    """
    import keras

    hp = keras_tuner.HyperParameters()
    config = hypermodel.recipe_config(hp)
    spec = hypermodel.space.get("optimizer")
    names = spec if isinstance(spec, list) else (
        [config["optimizer"]] if spec is not None else list(
            space_module.DEFAULT_SPACE["optimizer"].values))
    images = hypermodel.images
    train = make_pipeline(images.train, num_classes=images.num_classes,
                          batch_size=config["batch_size"], training=True,
                          num_examples=images.num_train,
                          value_range=images.value_range,
                          image_size=config.get("image_size"))
    found = {}
    for name in names:
        keras.backend.clear_session()
        model = hypermodel.build(hp)
        model.compile(_optimization.make_optimizer(name, 1e-3, None),
                      loss=keras.losses.CategoricalCrossentropy())
        found[name], _ = _optimization.find_peak_learning_rate(model, train)
    return found


def _result(search, hypermodel, max_epochs, objective):
    trials = search.oracle.trials
    defaults_id = search.oracle.defaults_trial_id
    defaults_values = _knob_values(trials[defaults_id]) if defaults_id \
        else None
    rows = []
    for trial_id in search.oracle.start_order or sorted(trials):
        trial = trials[trial_id]
        values = _knob_values(trial)
        epochs = trial.metrics.get_last_value("epochs_run") \
            if trial.metrics.exists("epochs_run") else None
        score = trial.score
        rows.append({
            "trial_id": trial.trial_id, "status": trial.status,
            "score": None if score is None or not math.isfinite(score)
            else float(score),
            "epochs_run": None if epochs is None else int(epochs),
            "defaults": values == defaults_values,
            **values,
        })
    table = ResultsTable(rows, objective)
    best_trials = search.oracle.get_best_trials(1)
    if not best_trials:
        raise RuntimeError(
            "No trial of the search completed; see the trial errors in "
            f"{search.project_dir}"
        )
    best = best_trials[0]
    epochs = best.hyperparameters.values.get("tuner/epochs", max_epochs)
    config = hypermodel.recipe_config(best.hyperparameters, epochs=epochs)
    best_model = search.load_model(best)
    defaults = next((row for row in rows if row["trial_id"] == defaults_id),
                    {})
    return TuningResult(best_model, config, best.hyperparameters,
                        best.score, table, search,
                        defaults_score=defaults.get("score"),
                        defaults_trial_id=defaults_id)


def _knob_values(trial):
    """A trial's hyperparameter values without Hyperband's bookkeeping."""
    return {k: v for k, v in trial.hyperparameters.values.items()
            if not k.startswith("tuner/")}
