"""Run directories we own, and resume as a contract.

A recipe's `output_dir`, a tuning project and a checkpoint folder carry a
manifest of what the library created; the catalogue below tries the
dangerous cases: a user's own files where the recipe writes, project names
that climb out of `directory`, a restart under other settings, and what a
finished run leaves behind.
"""

import json
import os

import keras
import keras_tuner
import numpy as np
import pytest

from callbacks import _ownership
from recipes import fit_image_classifier, tune_image_classifier, tuning_cli
from recipes.tuning.tuners import make_oracle
from tests.helpers import CrashInEpoch

FAST = dict(verbose=0, seed=0)


@pytest.fixture
def tiny(digits_8x8):
    (x, y), (xv, yv) = digits_8x8
    return dict(data=(x[:320], y[:320]), validation_data=(xv[:96], yv[:96]))


def _tree(folder):
    """`{relative path: bytes}` of every file under `folder`."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


# A user's own file of a name the recipe writes: refused before any work,
# untouched; a foreign `checkpoints/` even with `overwrite=True` (training
# would resume from it).
@pytest.mark.parametrize("name, overwrite", [
    ("run.json", False),
    ("best.keras", False),
    ("history.csv", False),
    ("checkpoints/phase1/ckpt-000000000001.npz", False),
    ("checkpoints/notes.txt", True),
])
def test_users_files_in_output_dir_are_refused(tmp_path, tiny, name,
                                               overwrite):
    run = tmp_path / "run"
    (run / name).parent.mkdir(parents=True, exist_ok=True)
    (run / name).write_text('{"status": "finished"}')
    before = _tree(run)
    first = name.split("/")[0]
    with pytest.raises(ValueError, match=rf"`output_dir`.*{first}.*"
                                         r"Received: output_dir="):
        fit_image_classifier(epochs=1, output_dir=str(run),
                             overwrite=overwrite, **tiny, **FAST)
    assert _tree(run) == before


@pytest.mark.slow
def test_overwrite_writes_over_users_files_but_never_deletes_them(
        tmp_path, tiny):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.keras").write_text("my model")
    (run / "notes.txt").write_text("mine")
    fit_image_classifier(epochs=1, output_dir=str(run), overwrite=True,
                         **tiny, **FAST)
    # best.keras was written over (consented), but it is not ours, so the
    # finished run does not trim it even though it equals model.keras.
    keras.saving.load_model(str(run / "best.keras"), safe_mode=True)
    assert (run / "notes.txt").read_text() == "mine"
    assert "best.keras" not in _ownership.owned(str(run))
    # A second overwrite deletes only what the run created.
    fit_image_classifier(epochs=1, output_dir=str(run), overwrite=True,
                         **tiny, **FAST)
    assert (run / "best.keras").exists()
    assert (run / "notes.txt").read_text() == "mine"


def _raise():
    raise RuntimeError("crash")


@pytest.mark.slow
def test_resume_is_refused_under_other_settings_then_resumes(tmp_path,
                                                             tiny):
    run = tmp_path / "run"
    # Two steps per call, so the crash callback's batch hook fires mid-epoch.
    kwargs = dict(epochs=2, output_dir=str(run), steps_per_execution=2,
                  **tiny, **FAST)
    with pytest.raises(RuntimeError, match="crash"):
        fit_image_classifier(callbacks=[CrashInEpoch(1, _raise)], **kwargs)
    assert json.loads((run / "run.json").read_text())["status"] == "running"
    before = _tree(run)
    with pytest.raises(ValueError) as error:
        fit_image_classifier(**{**kwargs, "epochs": 4,
                                "learning_rate": 0.05})
    message = str(error.value)
    assert "epochs: 2 → 4" in message
    assert "learning_rate: None → 0.05" in message
    assert "overwrite=True" in message and "output_dir=" in message
    assert _tree(run) == before
    # The same settings (callbacks aside) resume: epoch 1 is read back
    # (history.csv counts epochs from 1, as the console does).
    resumed = fit_image_classifier(**kwargs)
    assert len(resumed.history["loss"]) == 2
    with open(run / "history.csv") as f:
        assert [line.split(",")[0] for line in f][1:] == ["1", "2"]
    # Finished: crash-resume checkpoints gone; early stopping restored the
    # best epoch, so best.keras is the same file as model.keras (a hard
    # link: both names, one copy on disk).
    saved = json.loads((run / "run.json").read_text())
    assert saved["status"] == "finished"
    assert not (run / "checkpoints").exists()
    assert saved["best_model"] == "best.keras" and saved["best_is_final"]
    assert os.path.samefile(run / "best.keras", run / "model.keras")
    model = keras.saving.load_model(str(run / "model.keras"),
                                    safe_mode=True)
    x = tiny["validation_data"][0]
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               resumed.model.predict(x, verbose=0),
                               atol=1e-6)
    # overwrite=True under other settings starts over.
    fit_image_classifier(**{**kwargs, "epochs": 1, "overwrite": True})
    assert json.loads((run / "run.json").read_text())["config"][
        "epochs_run"] == 1
    keras.saving.load_model(str(run / "best.keras"), safe_mode=True)


class _NudgeAtEnd(keras.callbacks.Callback):
    """Moves the weights after the last epoch: the final model then differs
    from the best epoch's, which `best.keras` holds."""

    def on_train_end(self, logs=None):
        variable = self.model.trainable_variables[-1]
        variable.assign(variable + 1.0)


def test_finished_run_links_best_to_final_only_when_they_are_equal(tmp_path,
                                                              tiny):
    run = tmp_path / "run"
    result = fit_image_classifier(epochs=1, output_dir=str(run),
                                  early_stopping=False,
                                  callbacks=[_NudgeAtEnd()], **tiny, **FAST)
    saved = json.loads((run / "run.json").read_text())
    assert saved["best_model"] == "best.keras" and not saved["best_is_final"]
    assert not os.path.samefile(run / "best.keras", run / "model.keras")
    best = keras.saving.load_model(str(run / "best.keras"), safe_mode=True)
    final = keras.saving.load_model(str(run / "model.keras"),
                                    safe_mode=True)
    np.testing.assert_array_equal(final.get_weights()[-1],
                                  result.model.get_weights()[-1])
    np.testing.assert_array_equal(best.get_weights()[-1] + 1.0,
                                  final.get_weights()[-1])
    assert not (run / "checkpoints").exists()


# Project names that are not one folder inside `directory`: refused before
# any work, so `overwrite=True` can never delete the sibling folder.
@pytest.mark.parametrize("project_name", [
    "../thesis", "..", ".", "", "a/b", "a\\b", "ABSOLUTE"])
def test_project_name_must_stay_inside_directory(tmp_path, tiny,
                                                 project_name):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    if project_name == "ABSOLUTE":
        project_name = str(thesis)
    with pytest.raises(ValueError, match="Argument `project_name` must be "
                                         "one folder name"):
        tune_image_classifier(tiny["data"], tuner="random", max_trials=1,
                              max_epochs=1, directory=tmp_path / "tuning",
                              project_name=project_name, overwrite=True)
    assert (thesis / "chapter1.tex").read_text() == "years of work"
    assert not (tmp_path / "tuning").exists()


def test_cli_project_name_is_checked_too(tmp_path, tiny, capsys):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    data = tmp_path / "train.npz"
    np.savez(data, x=tiny["data"][0], y=tiny["data"][1])
    code = tuning_cli.main(["tune", str(data), "--directory",
                            str(tmp_path / "tuning"), "--project-name",
                            "../thesis", "--overwrite"])
    assert code == 2
    assert "Argument `--project-name`" in capsys.readouterr().err
    assert (thesis / "chapter1.tex").read_text() == "years of work"


def test_search_files_not_ours_are_refused_even_with_overwrite(tmp_path,
                                                               tiny):
    project = tmp_path / "image_classifier"
    project.mkdir()
    (project / "oracle.json").write_text("{}")
    (project / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=r"oracle\.json"):
            tune_image_classifier(tiny["data"], tuner="random",
                                  max_trials=1, max_epochs=1,
                                  directory=tmp_path, overwrite=overwrite)
    assert sorted(os.listdir(project)) == ["notes.txt", "oracle.json"]


@pytest.mark.slow
def test_search_resumes_only_with_its_own_space(tmp_path, tiny):
    project = tmp_path / "image_classifier"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    args = dict(validation_data=tiny["validation_data"], tuner="random",
                max_trials=1, max_epochs=1, directory=tmp_path, seed=3)
    first = tune_image_classifier(tiny["data"], space={"augment": "none"},
                                  **args)
    assert "trial_0" in _ownership.owned(str(project))
    with pytest.raises(ValueError) as error:
        tune_image_classifier(tiny["data"], space={"augment": "flip"},
                              **args)
    assert "space: {'augment': 'none'} → {'augment': 'flip'}" in str(
        error.value)
    # The same search resumes (max_trials reached: no trial runs again).
    again = tune_image_classifier(tiny["data"], space={"augment": "none"},
                                  **args)
    assert list(again.table) == list(first.table)
    # overwrite=True deletes the old search's files, not the user's.
    stamp = os.stat(project / "trial_0" / "trial.json").st_mtime_ns
    tune_image_classifier(tiny["data"], space={"augment": "flip"},
                          overwrite=True, **args)
    assert os.stat(project / "trial_0" / "trial.json").st_mtime_ns != stamp
    assert (project / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("tuner", ["random", "bayesian", "hyperband"])
def test_default_seed_draws_the_same_trials(tmp_path, tuner):
    # Keras Tuner reads seed 0 as "no seed" and draws a random one; ours
    # must not, so two oracles of seed 0 propose the same trials.
    def proposals(name):
        oracle = make_oracle(tuner, objective="val_accuracy", max_trials=6,
                             max_epochs=9, seed=0)
        oracle._set_project_dir(str(tmp_path), name)
        hp = keras_tuner.HyperParameters()
        hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
        hp.Choice("optimizer", ["adamw", "lion", "sgd", "radam"])
        hp.Int("units", 8, 512)
        oracle.update_space(hp)
        return [oracle.create_trial(f"tuner{i}").hyperparameters.values
                for i in range(4)]

    first = proposals("a")
    assert first == proposals("b")
    assert len({json.dumps(v, sort_keys=True) for v in first}) > 1


def test_settings_record_data_by_content_without_copying_it():
    x = np.zeros((40, 8, 8, 1), "float32")
    changed = x.copy()
    changed[3, 2, 1, 0] = 1.0
    assert _ownership.describe(x) == _ownership.describe(x.copy())
    assert _ownership.describe(x) != _ownership.describe(changed)
    # A corpus goes into the manifest as a hash, not a copy.
    corpus = [f"sentence {i}" for i in range(5000)]
    assert len(json.dumps(_ownership.describe(corpus))) < 64
    assert _ownership.describe(corpus) != _ownership.describe(corpus[1:])
    assert _ownership.changed_settings(
        {"epochs": 4, "seed": 0}, {"epochs": 2, "seed": 0}) == [
            "epochs: 4 → 2"]


def test_concurrent_claims_lose_no_entry(tmp_path):
    # The chief and workers of a distributed search claim entries of one
    # project folder at once; each update must keep the others'.
    import threading

    def work(i):
        for j in range(40):
            _ownership.claim(str(tmp_path), f"trial_{i}_{j}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(_ownership.owned(str(tmp_path))) == 160
