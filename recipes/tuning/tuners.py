"""Keras Tuner tuners whose state files survive a crash mid-write.

Keras Tuner writes `oracle.json`, each `trial_*/trial.json` and the tuner's
own JSON in place: a process killed during a write leaves a truncated file
that the next run cannot reload. The oracles and tuners here write the same
JSON to a temporary file in the same directory, flush it to disk and rename
it over the old one (`os.replace` is atomic on POSIX and Windows), so a file
is always either the previous or the new state. For this they subclass
Keras Tuner's classes and override their save methods (and `reload`, see
`AtomicStateOracle`).

On reload Keras Tuner resumes the search: completed trials are kept, the
trial that was running is retried under its own id, and the search stops
at `max_trials`.

Every oracle here starts from the declared defaults (`DefaultsFirstOracle`):
its first trial takes each hyperparameter's default, so a search always
scores the configuration it would be compared with. Under Hyperband that
first trial trains the full `max_epochs`, outside the brackets
(`AtomicHyperbandOracle`), so a cheap first round cannot discard it.

Tested with keras-tuner 1.4.8. Defaults first relies on two of its
internals, each pinned by a canary test in
`tests/recipes/test_tuning_defaults.py`: `Oracle._random_values` (every
oracle draws a new configuration through it) and the `tuner/epochs` and
`tuner/initial_epoch` values a Hyperband trial carries (what
`Tuner.run_trial` trains).
"""

import json
import os

import keras_tuner
from keras_tuner import oracles
from keras_tuner.engine.trial import TrialStatus

from callbacks._internal import check_choice, ownership

TUNERS = ("hyperband", "bayesian", "random", "grid")
"""Names `tune_image_classifier(tuner=...)` accepts."""


def atomic_write_json(path, state):
    """Write `state` as JSON to `path` atomically (write, fsync, rename).

    Args:
        path: Destination file (its directory must exist).
        state: A JSON-serializable object.
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_owned_json(project_dir, name, path, state):
    """`atomic_write_json`, after listing `name` (the entry of `project_dir`
    that holds `path`) in the project's ownership manifest, so that only
    what the search created is ever deleted (see
    `callbacks._internal.ownership`)."""
    ownership.claim(project_dir, name)
    atomic_write_json(path, state)


class AtomicStateOracle:
    """Mixin: an oracle with atomic state files and exact resume.

    Besides writing `oracle.json` and `trial.json` atomically, `reload`
    reconciles the two files, whose writes a kill can separate. Keras Tuner
    writes a new trial's `trial.json` before `oracle.json` lists it as
    running (a kill between them would lose the trial), and ends a trial by
    saving `oracle.json` while it is still listed as running (a kill after
    that would run the completed trial again). A trial's own file is
    written first in both cases, so its status decides: running trials are
    retried, finished ones are not.
    """

    def reload(self):
        super().reload()
        finished = (TrialStatus.COMPLETED, TrialStatus.FAILED)
        self._retry_queue = [
            trial_id for trial_id in self._retry_queue
            if self.trials[trial_id].status not in finished]
        for trial_id in sorted(self.trials):
            status = self.trials[trial_id].status
            if trial_id not in self.start_order:
                self.start_order.append(trial_id)
            if status in finished and trial_id not in self.end_order:
                self.end_order.append(trial_id)
            if (status == TrialStatus.RUNNING
                    and trial_id not in self._retry_queue):
                self._retry_queue.append(trial_id)

    def save(self):
        write_owned_json(self._project_dir, "oracle.json",
                         self._get_oracle_fname(), self.get_state())

    def _get_trial_dir(self, trial_id):
        # Listed before Keras Tuner creates it, so a kill in between leaves
        # no folder of ours unlisted (which a resume would refuse).
        ownership.claim(self._project_dir, f"trial_{trial_id}")
        return super()._get_trial_dir(trial_id)

    def _save_trial(self, trial):
        path = os.path.join(self._get_trial_dir(trial.trial_id),
                            "trial.json")
        atomic_write_json(path, trial.get_state())


class DefaultsFirstOracle:
    """Mixin: an oracle whose first trial takes every default value.

    Random search, Bayesian optimization (its first random point) and
    Hyperband draw their configurations through `Oracle._random_values`
    (Keras Tuner has no public hook for this); the first call, made when
    the oracle holds no trial yet, returns each active hyperparameter's
    `default` instead. Grid search already starts from the defaults. The
    defaults trial is an ordinary trial: it is saved, counts against
    `max_trials`, and a resumed search, which reloads its trials, does
    not run it again (a run killed mid-trial is retried under its id).
    Its values are recorded like any trial's, so the oracle never draws
    them again.

    Random, Bayesian and grid trials all train the full budget, so the
    defaults trial scores what not tuning would, and the best trial is
    never worse on the objective. Hyperband needs more
    (`AtomicHyperbandOracle`): its first round would train them a
    fraction of the budget and could drop them.
    """

    def _random_values(self):
        if self.trials:
            return super()._random_values()
        return self.default_values()

    def default_values(self):
        """Each active hyperparameter's default, as a dict of values."""
        space = self.get_space()
        return {hp.name: hp.default for hp in space.space
                if space.is_active(hp)}

    @property
    def defaults_trial_id(self):
        """Id of the trial that ran the defaults (the first started)."""
        order = self.start_order or sorted(self.trials)
        return order[0] if order else None


class AtomicRandomSearchOracle(DefaultsFirstOracle, AtomicStateOracle,
                               oracles.RandomSearchOracle):
    """`RandomSearchOracle` from the defaults, crash-safe state files."""


class AtomicBayesianOptimizationOracle(DefaultsFirstOracle,
                                       AtomicStateOracle,
                                       oracles.BayesianOptimizationOracle):
    """`BayesianOptimizationOracle` from the defaults, crash-safe files."""


class AtomicHyperbandOracle(DefaultsFirstOracle, AtomicStateOracle,
                            oracles.HyperbandOracle):
    """`HyperbandOracle` with the defaults at full budget, crash-safe files.

    The first trial trains the defaults for `max_epochs` epochs
    (`tuner/epochs=max_epochs`, `tuner/initial_epoch=0`), ahead of and
    outside Hyperband's brackets: no round ranks it, so however the
    defaults do after a few epochs they are scored at the full budget, and
    the best trial is never worse on the objective than not tuning. The
    brackets then run exactly as Keras Tuner's `HyperbandOracle` runs them
    (the same sizes, epochs and promotions; their random draws skip the
    defaults, already tried).

    Cost: one trial more than Hyperband's brackets (it counts against
    `max_trials`, which caps the brackets' trials to `max_trials - 1`) and
    `max_epochs` epochs more. Putting the defaults in the first bracket
    instead costs one of its cheapest trials, but a first round that
    misranks them then never trains them further, and the search can
    return a model below the defaults (it did on digits, see the tuning
    section of `benchmarks/RESULTS.md`).

    Only `populate_space`, the public hook, is overridden; the defaults
    trial is created when the oracle holds no trial yet, so a resumed
    search, which reloads its trials, never creates it again.
    """

    def populate_space(self, trial_id):
        if self.trials:
            return super().populate_space(trial_id)
        values = self.default_values()
        values.update({"tuner/epochs": self.max_epochs,
                       "tuner/initial_epoch": 0})
        return {"status": "RUNNING", "values": values}


class AtomicGridSearchOracle(DefaultsFirstOracle, AtomicStateOracle,
                             oracles.GridSearchOracle):
    """`GridSearchOracle` (defaults first, as always), crash-safe files."""


class RecipeTuner(keras_tuner.Tuner):
    """A `keras_tuner.Tuner` with an atomic state file and Hyperband's reuse.

    Epochs per trial come from `search(epochs=...)`, or from the Hyperband
    bracket when the oracle is a Hyperband oracle. As with Keras Tuner's own
    `Hyperband` tuner, a trial that Hyperband promotes (its hyperparameters
    hold `tuner/trial_id`, the parent trial) starts from the parent's best
    checkpoint and gets `initial_epoch=tuner/initial_epoch`, so the
    hypermodel trains only the remaining epochs.
    """

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        if "tuner/epochs" in values:
            kwargs["epochs"] = values["tuner/epochs"]
            kwargs["initial_epoch"] = values["tuner/initial_epoch"]
        return super().run_trial(trial, *args, **kwargs)

    def _build_hypermodel(self, hp):
        # The hook `keras_tuner.Hyperband` overrides for the same purpose;
        # the checkpoint is the one the base class's `SaveBestEpoch` wrote
        # for the parent trial.
        model = super()._build_hypermodel(hp)
        parent = hp.values.get("tuner/trial_id")
        if parent is not None:
            model.load_weights(self._get_checkpoint_fname(parent))
        return model

    def get_trial_dir(self, trial_id):
        # See `AtomicStateOracle._get_trial_dir`.
        ownership.claim(self.project_dir, f"trial_{trial_id}")
        return super().get_trial_dir(trial_id)

    def save(self):
        if isinstance(self.oracle, AtomicStateOracle):
            self.oracle.save()
        name = f"{self.tuner_id}.json"
        write_owned_json(self.project_dir, name,
                         os.path.join(self.project_dir, name),
                         self.get_state())


def make_oracle(tuner, *, objective, max_trials, max_epochs, seed,
                factor=3, hyperband_iterations=1, hyperparameters=None,
                max_consecutive_failed_trials=3):
    """The crash-safe oracle of a tuner kind.

    Args:
        tuner: `"hyperband"`, `"bayesian"`, `"random"` or `"grid"`.
        objective: Objective name or `keras_tuner.Objective`.
        max_trials: Most trials, the defaults trial included (Hyperband:
            a cap on top of its brackets, `None` for none).
        max_epochs: Hyperband's largest epoch budget per trial.
        seed: Random seed of the oracle (`None` for a random one). Keras
            Tuner's oracles read 0 as "no seed" and draw a random one, so
            each seed is passed on as `seed + 1`: every seed, 0 included,
            draws the same trials on every run.
        factor: Hyperband's reduction factor. Defaults to `3`.
        hyperband_iterations: Hyperband iterations. Defaults to `1`.
        hyperparameters: Predefined `HyperParameters` (user ranges).
            Defaults to `None`.
        max_consecutive_failed_trials: Failed trials in a row that end the
            search. Defaults to `3`.

    Returns:
        A Keras Tuner oracle.
    """
    check_choice("tuner", tuner, TUNERS)
    common = dict(objective=objective,
                  seed=None if seed is None else int(seed) + 1,
                  hyperparameters=hyperparameters,
                  max_consecutive_failed_trials=max_consecutive_failed_trials)
    if tuner == "hyperband":
        oracle = AtomicHyperbandOracle(
            max_epochs=max_epochs, factor=factor,
            hyperband_iterations=hyperband_iterations, **common)
        oracle.max_trials = max_trials
        return oracle
    cls = {"bayesian": AtomicBayesianOptimizationOracle,
           "random": AtomicRandomSearchOracle,
           "grid": AtomicGridSearchOracle}[tuner]
    return cls(max_trials=max_trials, **common)
