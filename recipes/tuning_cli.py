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
    parser.add_argument(
        "--validation-data", default=recipe["validation_data"],
        help=with_default("same kinds as DATA"))
    parser.add_argument(
        "--validation-split", type=float, default=recipe["validation_split"],
        help=with_default("fraction of DATA held out for validation when "
                          "--validation-data is not given"))
    parser.add_argument(
        "--tuner", default=d["tuner"],
        choices=source_constant("recipes.tuning.tuners", "TUNERS"),
        help=with_default("Keras Tuner search algorithm"))
    parser.add_argument(
        "--max-trials", type=int, default=d["max_trials"],
        help=with_default("trials to run (bayesian, random, grid); "
                          "hyperband sets its own"))
    parser.add_argument(
        "--max-epochs", type=int, default=d["max_epochs"],
        help=with_default("most epochs one trial trains"))
    parser.add_argument(
        "--directory", default=d["directory"],
        help=with_default("folder of the search state, resumed if found"))
    parser.add_argument(
        "--project-name", default=d["project_name"],
        help=with_default("sub-folder of --directory for this search"))
    parser.add_argument(
        "--overwrite", action="store_true", default=d["overwrite"],
        help=with_default("start over instead of resuming"))
    parser.add_argument(
        "--objective", default=d["objective"],
        help=with_default("metric the search maximizes (val_accuracy) or "
                          "minimizes (val_loss)"))
    parser.add_argument(
        "--fix", type=_knob, action="append", default=[],
        metavar="KNOB=VALUE[,VALUE...]",
        help="fix a knob, or search a list of values; repeatable "
        "(`python -m recipes list` shows the knobs; default: search "
        "them all)")
    parser.add_argument(
        "--budget", default=d["budget"], choices=("steps", "epochs"),
        help=with_default("give every trial the same optimizer steps, or "
                          "the same epochs"))
    parser.add_argument(
        "--lr-range-test", action="store_true", default=d["lr_range_test"],
        help=with_default("set base learning rates with an LR range test"))
    parser.add_argument(
        "--backbone", default=recipe["backbone"],
        help=with_default("auto, a .keras file or a backbone name "
                          "(`python -m recipes list` shows them)"))
    parser.add_argument(
        "--weights", type=none_or, default=recipe["weights"],
        help=with_default("auto, imagenet, none, or a weights file"))
    parser.add_argument("--seed", type=int, default=d["seed"],
                        help=with_default("random seed of the search"))
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

    result = tune_image_classifier(
        load_images(args.data),
        validation_data=load_images(args.validation_data),
        validation_split=args.validation_split, tuner=args.tuner,
        max_trials=args.max_trials, max_epochs=args.max_epochs,
        directory=args.directory, project_name=args.project_name,
        overwrite=args.overwrite, objective=args.objective,
        space=dict(args.fix), budget=args.budget,
        lr_range_test=args.lr_range_test,
        backbone=args.backbone, weights=args.weights, seed=args.seed)
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
