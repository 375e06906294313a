"""`tune` command: `python -m recipes tune DATA --tuner hyperband ...`.

`register(subparsers)` adds the command to the `python -m recipes` parser
(`recipes.cli.build_parser`); `python -m recipes.tuning_cli tune ...` runs
it on its own. It searches the image recipe with `tune_image_classifier`
and prints the results table and the best configuration.

Example:

```bash
python -m recipes tune digits.npz --tuner hyperband --max-epochs 9 \\
    --directory runs/tuning --fix optimizer=adamw --save-model best.keras
```
"""

import argparse
import json
import os
import sys

from recipes._cli_common import (
    check_data_path,
    load_images,
    none_or,
    recipe_kwargs,
    recipe_option,
    run_command,
    source_constant,
    source_defaults,
    with_default,
)


def _knob(text):
    """`NAME=VALUE` or `NAME=V1,V2,...` with JSON-ish values."""
    # Imported when a `--fix` is parsed, that is when the command runs.
    from recipes.tuning.space import DEFAULT_SPACE

    name, sep, value = text.partition("=")
    if not sep or name not in DEFAULT_SPACE:
        raise argparse.ArgumentTypeError(
            f"expected KNOB=VALUE with KNOB one of {sorted(DEFAULT_SPACE)}, "
            f"got {text!r}")
    values = [_parse(v) for v in value.split(",")]
    return name, values[0] if len(values) == 1 else values


def _parse(value):
    try:
        return json.loads(value)
    except ValueError:
        return value


def register(subparsers):
    """Add the `tune` command to a `python -m recipes` sub-parser set."""
    parser = subparsers.add_parser(
        "tune", help="search the image recipe's hyperparameters",
        description="Search the whole image recipe (optimizer, learning "
        "rate, schedule, regularization, augmentation, batch size) with "
        "Keras Tuner; resumes a search found in --directory.")
    parser.add_argument(
        "data", help="a directory of class sub-folders, a TensorFlow "
        "Datasets name, or a .npz file with arrays x and y")
    d = source_defaults("recipes.tuning.search", "tune_image_classifier")
    recipe = source_defaults("recipes.image_classifier",
                             "fit_image_classifier")
    recipe_option(parser, "--validation-data", recipe,
                  help="same kinds as DATA")
    recipe_option(
        parser, "--validation-split", recipe, type=float,
        help="fraction of DATA held out for validation when "
        "--validation-data is not given")
    recipe_option(
        parser, "--tuner", d,
        choices=source_constant("recipes.tuning.tuners", "TUNERS"),
        help="Keras Tuner search algorithm")
    recipe_option(
        parser, "--max-trials", d, type=int,
        help="trials to run (bayesian, random, grid); hyperband sets its "
        "own")
    recipe_option(parser, "--max-epochs", d, type=int,
                  help="most epochs one trial trains")
    recipe_option(parser, "--directory", d,
                  help="folder of the search state, resumed if found")
    recipe_option(parser, "--project-name", d,
                  help="sub-folder of --directory for this search")
    recipe_option(parser, "--overwrite", d, action="store_true",
                  help="start over instead of resuming")
    recipe_option(
        parser, "--objective", d,
        help="metric the search maximizes (val_accuracy) or minimizes "
        "(val_loss)")
    parser.add_argument(
        "--fix", type=_knob, action="append", default=[],
        metavar="KNOB=VALUE[,VALUE...]",
        help="fix a knob, or search a list of values; repeatable "
        "(`python -m recipes list` shows the knobs; default: search "
        "them all)")
    recipe_option(
        parser, "--budget", d,
        choices=source_constant("recipes.tuning.hypermodel", "BUDGETS"),
        help="give every trial the same optimizer steps, or the same "
        "epochs")
    recipe_option(parser, "--lr-range-test", d, action="store_true",
                  help="set base learning rates with an LR range test")
    recipe_option(
        parser, "--backbone", recipe,
        help="auto, a .keras file or a backbone name (`python -m recipes "
        "list` shows them)")
    recipe_option(parser, "--weights", recipe, type=none_or,
                  help="auto, imagenet, none, or a weights file")
    recipe_option(parser, "--seed", d, type=int,
                  help="random seed of the search")
    parser.add_argument(
        "--save-model", default=None,
        help=with_default("save the best model to this new .keras file "
                          "(checked before the search; an existing file is "
                          "not overwritten)"))
    parser.set_defaults(run=_run_tune, check=_check_tune)
    return parser


def _check_save_model(path):
    """Refuse a `--save-model` path before the search, not after it."""
    if path is None:
        return
    if not path.endswith(".keras"):
        raise ValueError(
            "Argument `--save-model` must be a path ending in `.keras`. "
            f"Received: {path!r}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(
            "Argument `--save-model` must be in an existing directory. "
            f"Received: {path!r} (no directory {parent!r})")
    if os.path.exists(path):
        raise ValueError(
            "Argument `--save-model` names an existing file, which the "
            "command does not overwrite; delete it or choose another path. "
            f"Received: {path!r}")


def _check_tune(args):
    check_data_path("data", args.data)
    check_data_path("validation_data", args.validation_data)
    _check_save_model(args.save_model)


def _run_tune(args):
    from recipes.tuning.search import tune_image_classifier

    kwargs = recipe_kwargs(
        args, source_defaults("recipes.tuning.search",
                              "tune_image_classifier"),
        source_defaults("recipes.image_classifier", "fit_image_classifier"))
    kwargs["validation_data"] = load_images(kwargs["validation_data"])
    result = tune_image_classifier(load_images(args.data), **kwargs,
                                   space=dict(args.fix))
    if result is None:
        return [("worker", "finished")]
    rows = [(f"trial {row['trial_id']}",
             f"{row['status']:<9} score={row['score']} "
             f"epochs={row['epochs_run']}") for row in result.table]
    rows.append((f"best {result.table.objective}",
                 f"{result.best_score:.4f}"))
    gain = result.gain_over_defaults
    rows.append(("defaults", "failed" if gain is None else
                 f"{result.defaults_score:.4f} (trial "
                 f"{result.defaults_trial_id}), gain {gain:+.4f}"))
    rows += [(f"best {name}", value)
             for name, value in result.best_hyperparameters.items()
             if name not in ("validation_data",)]
    if args.save_model:
        result.best_model.save(args.save_model)
        rows.append(("saved", args.save_model))
    return rows


def main(argv=None):
    """Run `tune` on its own; same exit codes as `recipes.cli.main`."""
    parser = argparse.ArgumentParser(prog="python -m recipes.tuning_cli")
    register(parser.add_subparsers(dest="command", required=True))
    return run_command(parser, argv)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
