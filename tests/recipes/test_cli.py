import csv
import os
import subprocess
import sys

import numpy as np
import pytest

import recipes
from recipes._cli_common import cli_wording, registered_names
from recipes.augmentations import list_augmentations
from recipes.backbones import list_backbones
from recipes.cli import build_parser, main
from recipes.image_plan import UNFREEZE
from recipes.optimizers import list_optimizers
from recipes.schedules import list_schedules
from recipes.tuning.hypermodel import BUDGETS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
# Parsed names that dispatch the command rather than set a keyword.
_DISPATCH = {"command", "run", "check"}


def _run(*args, python=False):
    """`python -m recipes ARGS` (or `python ARGS`), without a log level set:
    the command line must quiet TensorFlow itself."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    command = [sys.executable, *args] if python else [
        sys.executable, "-m", "recipes", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def _imported_modules(importtime_stderr):
    """Top-level package names in `python -X importtime` output."""
    return {line.rsplit("|", 1)[1].strip().split(".")[0]
            for line in importtime_stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("args", [
    ("--help",), ("fit-image-classifier", "--help"), ("tune", "--help")])
def test_help_answers_without_tensorflow_or_log_lines(args):
    done = _run("-X", "importtime", "-m", "recipes", *args, python=True)
    assert done.returncode == 0
    modules = _imported_modules(done.stderr)
    assert "recipes" in modules
    assert not modules & {"tensorflow", "keras", "keras_tuner"}
    # Nothing but the import timings on stderr: no TensorFlow log lines.
    assert [line for line in done.stderr.splitlines()
            if not line.startswith("import time:")] == []


def test_every_option_has_help_showing_its_default():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in ("fit-image-classifier", "tune"):
        for action in commands[name]._actions:
            if not action.option_strings or action.dest == "help":
                continue
            assert action.help, (name, action.dest)
            assert "default" in action.help, (name, action.dest)
    text = " ".join(commands["fit-image-classifier"].format_help().split())
    assert "--dropout DROPOUT dropout rate before the classification " \
        "layer (default: 0.2)" in text


def test_list_command_prints_the_registries(capsys):
    assert main(["list"]) == 0
    rows = dict(line.split(None, 1) for line in
                capsys.readouterr().out.splitlines())
    assert {"small_cnn", "resnet50"} <= set(rows["backbones"].split(", "))
    assert {"adamw", "lion"} <= set(rows["optimizers"].split(", "))
    assert rows["schedules"].split(", ") == list_schedules()
    assert rows["augmentations"].split(", ") == list_augmentations()


def _option(command, dest):
    commands = build_parser()._subparsers._group_actions[0].choices
    (action,) = [a for a in commands[command]._actions if a.dest == dest]
    return action


def test_names_the_options_offer_are_the_registries():
    # Read from the registries' source (no TensorFlow for `--help`): the
    # same names, in the same order, as the imported registries list.
    assert _option("fit-image-classifier", "schedule").choices == (
        list_schedules())
    assert _option("fit-image-classifier", "augment").choices == (
        "auto", *list_augmentations())
    assert sorted(registered_names("recipes.optimizers.registry",
                                   "register_optimizer")) == list_optimizers()
    assert sorted(registered_names("recipes.backbones",
                                   "register_backbone")) == list_backbones()
    optimizer_help = _option("fit-image-classifier", "optimizer").help
    backbone_help = _option("fit-image-classifier", "backbone").help
    assert all(name in optimizer_help for name in list_optimizers())
    assert all(name in backbone_help for name in list_backbones())
    assert _option("fit-image-classifier", "unfreeze").choices == UNFREEZE
    assert _option("tune", "budget").choices == BUDGETS
    assert "auto, cpu, mirrored, multi_worker or tpu" in _option(
        "fit-image-classifier", "strategy").help


def test_errors_use_the_flags_names():
    message = ("Argument `output_dir` holds a finished run; pass "
               "`overwrite=True` to replace it. Received: "
               "output_dir='runs/x' (max_epochs=3, fine_tune_epochs=2)")
    assert cli_wording(message, {"output_dir", "overwrite", "epochs"}) == (
        "Argument `--output-dir` holds a finished run; pass `--overwrite` "
        "to replace it. Received: --output-dir='runs/x' (max_epochs=3, "
        "fine_tune_epochs=2)")


def test_missing_path_is_one_line_before_tensorflow(tmp_path):
    missing = str(tmp_path / "no" / "photoz")
    done = _run("-X", "importtime", "-m", "recipes", "fit-image-classifier",
                missing, python=True)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines()
             if not line.startswith("import time:")]
    assert lines == [
        "error: Argument `data` must be an existing directory of class "
        "sub-folders, a .npz file or a TensorFlow Datasets name. Received: "
        f"{missing!r}, which does not exist"]
    assert "tensorflow" not in _imported_modules(done.stderr)


def test_fit_from_npz_prints_summary(tmp_path, capsys, digits_8x8):
    (x, y), (xv, yv) = digits_8x8
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "val.npz", x=xv, y=yv)
    code = main(["fit-image-classifier", str(tmp_path / "train.npz"),
                 "--validation-data", str(tmp_path / "val.npz"),
                 "--epochs", "4", "--seed", "0", "--verbose", "0",
                 "--output-dir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0
    rows = dict(line.split(None, 1) for line in out.splitlines()
                if line.startswith(("val_accuracy", "backbone")))
    assert float(rows["val_accuracy"]) > 0.8
    assert rows["backbone"].startswith("small_cnn")
    assert os.path.isfile(tmp_path / "run" / "model.keras")
    # The reloaded model names its predictions (class names travel with it).
    model = recipes.load_model(tmp_path / "run" / "best.keras")
    names = model.layers[-1].class_names
    predicted = recipes.predict_classes(model, xv)
    assert np.mean(predicted == np.asarray(names)[yv]) > 0.8
    # history.csv counts epochs from 1, like the console.
    with open(tmp_path / "run" / "history.csv", newline="") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == list(range(1, len(epochs) + 1)) and epochs
    # A rerun is refused in the command line's words.
    assert main(["fit-image-classifier", str(tmp_path / "train.npz"),
                 "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "pass `--overwrite`" in err and "Argument `--output-dir`" in err
    assert len(err.strip().splitlines()) == 1


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys,
                                                   digits_8x8):
    (x, y), _ = digits_8x8
    np.savez(tmp_path / "train.npz", x=x, y=y)
    out = tmp_path / "run"
    code = main(["fit-image-classifier", str(tmp_path / "train.npz"),
                 "--batch-size", "32", "--output-dir", str(out),
                 "--dry-run"])
    assert code == 0
    rows = dict(line.split(None, 1) for line in
                capsys.readouterr().out.splitlines() if line.strip())
    # 1,200 training digits at batch 32: 38 steps per epoch, and the
    # step budget ceil(1000 / 38) = 27 epochs.
    assert rows["backbone"] == "small_cnn"
    assert rows["steps_per_epoch"] == "38" and rows["epochs"] == "27"
    assert rows["augment"] == "none"
    assert not out.exists()
    assert main(["fit-image-classifier", str(tmp_path / "train.npz"),
                 "--dry-run", "--find-batch-size"]) == 2
    err = capsys.readouterr().err
    assert "`--dry-run`" in err and len(err.strip().splitlines()) == 1


def test_bad_npz_and_bad_option(tmp_path, capsys):
    np.savez(tmp_path / "only_x.npz", x=np.zeros((4, 8, 8)))
    assert main(["fit-image-classifier", str(tmp_path / "only_x.npz")]) == 2
    assert "arrays `x` and `y`" in capsys.readouterr().err
    # One array saved by np.save under a .npz name, and a file that is not
    # an archive at all: one-line errors, no traceback.
    with open(tmp_path / "single.npz", "wb") as f:
        np.save(f, np.zeros((4, 8, 8)))
    assert main(["fit-image-classifier", str(tmp_path / "single.npz")]) == 2
    err = capsys.readouterr().err
    assert "single array" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "text.npz").write_text("not an archive")
    assert main(["fit-image-classifier", str(tmp_path / "text.npz")]) == 2
    err = capsys.readouterr().err
    assert "cannot be read" in err and len(err.strip().splitlines()) == 1
    np.savez(tmp_path / "ok.npz", x=np.zeros((4, 8, 8)), y=np.arange(4) % 2)
    assert main(["fit-image-classifier", str(tmp_path / "ok.npz"),
                 "--optimizer", "nope"]) == 2
    assert "optimizer" in capsys.readouterr().err


def test_option_defaults_are_the_functions_defaults():
    import inspect

    from recipes import fit_image_classifier

    args = vars(build_parser().parse_args(["fit-image-classifier", "x.npz"]))
    signature = inspect.signature(fit_image_classifier).parameters
    # Shown per epoch on a terminal; the function defaults to progress bars.
    cli_only = {"verbose", "data"}
    shared = sorted(set(args) & set(signature) - cli_only)
    assert {"augment", "ema_momentum", "dropout", "epochs"} <= set(shared)
    # Every other option is a keyword of the recipe, so it gets its default
    # (and the check above) from there.
    assert set(args) - set(signature) == {"find_batch_size", "dry_run",
                                          *_DISPATCH}
    differ = {name: (args[name], signature[name].default) for name in shared
              if args[name] != signature[name].default}
    assert differ == {}
    none = build_parser().parse_args(
        ["fit-image-classifier", "x.npz", "--ema-momentum", "None"])
    assert none.ema_momentum is None


def test_epochs_take_auto_or_an_integer(capsys):
    parse = build_parser().parse_args
    assert parse(["fit-image-classifier", "x.npz"]).epochs == "auto"
    assert parse(["fit-image-classifier", "x.npz", "--epochs",
                  "auto"]).epochs == "auto"
    assert parse(["fit-image-classifier", "x.npz", "--epochs",
                  "7"]).epochs == 7
    with pytest.raises(SystemExit) as stopped:
        parse(["fit-image-classifier", "x.npz", "--epochs", "many"])
    assert stopped.value.code == 2
    assert ("--epochs: must be 'auto' or an integer. Received: 'many'"
            in capsys.readouterr().err)


def test_tune_defaults_are_the_functions_defaults():
    import inspect

    from recipes import fit_image_classifier, tune_image_classifier

    args = vars(build_parser().parse_args(["tune", "x.npz"]))
    expected = {**{k: v.default for k, v in inspect.signature(
        fit_image_classifier).parameters.items()},
        **{k: v.default for k, v in inspect.signature(
            tune_image_classifier).parameters.items()}}
    shared = set(args) & set(expected) - {"data"}
    assert {"tuner", "max_trials", "seed", "backbone"} <= shared
    assert set(args) - set(expected) == {"fix", "save_model", *_DISPATCH}
    assert {k: args[k] for k in shared} == {k: expected[k] for k in shared}
