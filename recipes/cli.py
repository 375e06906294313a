"""Command line of keras-recipes: `python -m recipes COMMAND ...`.

Each command is one `argparse` sub-parser added by a small function; the
training options shared by every recipe (optimizer, schedule, strategy,
output directory, ...) come from `add_training_arguments`, so a new recipe
command reuses them. Bad input ends the process with a one-line error and
exit code 2; a finished run prints a summary table.

Example:

```bash
python -m recipes fit-image-classifier digits.npz --epochs 5 \\
    --output-dir runs/digits
```
"""

import argparse

from recipes._cli_common import (
    EXIT_BAD_INPUT,
    check_data_path,
    float_or_auto,
    float_or_none,
    format_table,
    int_or_auto,
    int_or_name,
    load_images,
    none_or,
    run_command,
    source_constant,
    source_defaults,
    with_default,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "add_fit_image_classifier",
    "add_list",
    "add_training_arguments",
    "build_parser",
    "format_table",
    "main",
]

_LIST_HINT = "`python -m recipes list` shows the names"


def add_training_arguments(parser, defaults):
    """Options shared by every recipe command.

    Args:
        parser: The command's `argparse` parser.
        defaults: The recipe function's keyword defaults
            (`source_defaults`), which the options show and use.
    """
    d = defaults
    group = parser.add_argument_group("training")
    group.add_argument(
        "--epochs", type=int_or_auto, default=d["epochs"],
        help=with_default("epochs (of phase 1 for pretrained backbones), or "
                          "'auto': a budget of about 1,000 optimizer steps "
                          "(at least 10 epochs, at most 60)"))
    group.add_argument("--batch-size", type=int, default=d["batch_size"],
                       help=with_default("per-replica batch size"))
    group.add_argument(
        "--optimizer", default=d["optimizer"],
        help=with_default(f"optimizer name ({_LIST_HINT})"))
    group.add_argument(
        "--learning-rate", type=float_or_auto, default=d["learning_rate"],
        help=with_default("peak learning rate, 'auto' for an LR range test, "
                          "or None for the optimizer's, batch-scaled"))
    group.add_argument(
        "--schedule", default=d["schedule"],
        choices=source_constant("recipes._training", "SCHEDULES"),
        help=with_default("learning-rate schedule"))
    group.add_argument("--weight-decay", type=float,
                       default=d["weight_decay"],
                       help=with_default("decoupled weight decay"))
    group.add_argument("--label-smoothing", type=float,
                       default=d["label_smoothing"],
                       help=with_default("label smoothing of the loss"))
    group.add_argument(
        "--no-early-stopping", dest="early_stopping", action="store_false",
        default=d["early_stopping"],
        help="train every epoch: no early stopping on the validation loss "
        "(early stopping is on by default)")
    group.add_argument(
        "--patience", type=int, default=d["patience"],
        help=with_default("early-stopping patience in epochs; None picks "
                          "one from the number of epochs"))
    group.add_argument(
        "--strategy", default=d["strategy"],
        help=with_default("auto, cpu, mirrored, multi_worker or tpu"))
    group.add_argument(
        "--mixed-precision", default=d["mixed_precision"],
        help=with_default("auto, float32, mixed_float16 or mixed_bfloat16"))
    group.add_argument(
        "--output-dir", default=d["output_dir"],
        help=with_default("where the model, history, logs and plots go"))
    group.add_argument(
        "--overwrite", action="store_true", default=d["overwrite"],
        help=with_default("replace a finished run in --output-dir"))
    group.add_argument("--seed", type=int, default=d["seed"],
                       help=with_default("random seed; None draws one"))
    # Unlike the function's progress bar, one line per epoch reads well in
    # a log file as well as a terminal.
    group.add_argument(
        "--verbose", type=int, default=2, choices=(0, 1, 2),
        help=with_default("0 silent, 1 progress bar, 2 one line per epoch"))


def add_fit_image_classifier(subparsers):
    """The `fit-image-classifier` command."""
    d = source_defaults("recipes.image_classifier", "fit_image_classifier")
    parser = subparsers.add_parser(
        "fit-image-classifier",
        help="train an image classifier (transfer learning included)",
        description="Train an image classifier with "
        "recipes.fit_image_classifier and print a summary.")
    parser.add_argument(
        "data", help="a directory of class sub-folders, a TensorFlow "
        "Datasets name, or a .npz file with arrays x (images) and y "
        "(labels)")
    parser.add_argument(
        "--validation-data", default=d["validation_data"],
        help=with_default("same kinds as DATA (or a TFDS split name)"))
    parser.add_argument(
        "--validation-split", type=float, default=d["validation_split"],
        help=with_default("fraction of DATA held out for validation when "
                          "--validation-data is not given"))
    parser.add_argument(
        "--test-data", default=d["test_data"],
        help=with_default("same kinds as DATA (or a TFDS split name)"))
    parser.add_argument("--split", default=d["split"],
                        help=with_default("TFDS split"))
    parser.add_argument("--data-dir", default=d["data_dir"],
                        help=with_default("TFDS data_dir"))
    parser.add_argument(
        "--backbone", default=d["backbone"],
        help=with_default(f"auto, a .keras file, a backbone name "
                          f"({_LIST_HINT}), or hub:PRESET (a KerasHub "
                          "preset name or save_to_preset directory; needs "
                          "the hub extra)"))
    parser.add_argument(
        "--weights", type=none_or, default=d["weights"],
        help=with_default("auto, imagenet, preset (hub:), none, or a "
                          "weights file (for a "
                          ".keras backbone: auto = pretrained, two phases; "
                          "none = untrained, one phase)"))
    parser.add_argument(
        "--image-size", type=int, default=d["image_size"],
        help=with_default("side of the square model input in pixels; None "
                          "uses the backbone's or the data's size"))
    parser.add_argument(
        "--fine-tune-epochs", type=int, default=d["fine_tune_epochs"],
        help=with_default("epochs of phase 2 (pretrained backbones); None "
                          "picks from --epochs"))
    parser.add_argument(
        "--fine-tune-layers", type=int_or_name,
        default=d["fine_tune_layers"],
        help=with_default("auto, all, a layer count or a layer name"))
    parser.add_argument(
        "--unfreeze", choices=("at_once", "gradual"), default=d["unfreeze"],
        help=with_default("phase 2: unfreeze the layers at once, or one "
                          "stage per epoch from the top"))
    parser.add_argument(
        "--dropout", type=float, default=d["dropout"],
        help=with_default("dropout rate before the classification layer"))
    parser.add_argument(
        "--ema-momentum", type=float_or_none, default=d["ema_momentum"],
        help=with_default("momentum of the validated and returned weight "
                          "average, or none"))
    parser.add_argument(
        "--augment", default=d["augment"],
        help=with_default("auto (default for pretrained backbones, none "
                          "from scratch), default, flip, randaugment or "
                          "none"))
    parser.add_argument("--mixup", type=float, default=d["mixup"],
                        help=with_default("MixUp probability"))
    parser.add_argument("--cutmix", type=float, default=d["cutmix"],
                        help=with_default("CutMix probability"))
    parser.add_argument(
        "--find-batch-size", nargs="?", type=int, const=0, default=None,
        metavar="MAX",
        help="before training, find the batch size (largest that fits on "
        "a GPU, fastest on CPU; at most MAX, default 8192 on GPU, 1024 on "
        "CPU) and train with it instead of --batch-size")
    add_training_arguments(parser, d)
    parser.set_defaults(run=_run_fit_image_classifier,
                        check=_check_fit_image_classifier)
    return parser


def _check_fit_image_classifier(args):
    check_data_path("data", args.data)
    check_data_path("validation_data", args.validation_data)
    check_data_path("test_data", args.test_data)


def _run_fit_image_classifier(args):
    from recipes.image_classifier import fit_image_classifier

    found = None
    if args.find_batch_size is not None:
        from recipes.batch_size import find_image_classifier_batch_size

        found = find_image_classifier_batch_size(
            load_images(args.data), backbone=args.backbone,
            weights=args.weights, image_size=args.image_size,
            optimizer=args.optimizer, verbose=int(args.verbose > 0),
            max_batch_size=args.find_batch_size or None)
        print(found.table())
        args.batch_size = found.batch_size
    result = fit_image_classifier(
        load_images(args.data),
        validation_data=load_images(args.validation_data),
        validation_split=args.validation_split,
        test_data=load_images(args.test_data), split=args.split,
        data_dir=args.data_dir, backbone=args.backbone,
        weights=args.weights, image_size=args.image_size,
        epochs=args.epochs, fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_layers=args.fine_tune_layers, unfreeze=args.unfreeze,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate, schedule=args.schedule,
        label_smoothing=args.label_smoothing, dropout=args.dropout,
        weight_decay=args.weight_decay, ema_momentum=args.ema_momentum,
        augment=args.augment,
        mixup=args.mixup, cutmix=args.cutmix, batch_size=args.batch_size,
        early_stopping=args.early_stopping, patience=args.patience,
        strategy=args.strategy, mixed_precision=args.mixed_precision,
        output_dir=args.output_dir, overwrite=args.overwrite,
        seed=args.seed, verbose=args.verbose)
    config = result.config
    rows = [
        ("backbone", f"{config['backbone']} (weights: {config['weights']})"),
        ("data", f"{config['data_source']}: {config['num_train']} train / "
                 f"{config['num_validation']} validation, "
                 f"{len(config['class_names'])} classes"),
        ("epochs run", f"{config['epochs_run']} of {config['epochs']}"),
        ("peak learning rate",
         f"{config['learning_rate']:.3g} ({config['learning_rate_source']})"),
        ("strategy", f"{config['strategy']} x{config['replicas']}, "
                     f"{config['mixed_precision']}"),
    ]
    if found is not None:
        rows.append(("batch size", f"{found.batch_size} (found, "
                     f"{found.mode})"))
    rows += [(name, f"{value:.4f}") for name, value in result.metrics.items()]
    if result.output_dir:
        rows.append(("output_dir", result.output_dir))
    return rows


def add_list(subparsers):
    """The `list` command: the names the registries accept."""
    parser = subparsers.add_parser(
        "list", help="list optimizers, backbones, schedules, tuners and "
        "tuning knobs", description="Print the names each registry "
        "accepts (importing them loads TensorFlow).")
    parser.set_defaults(run=_run_list)
    return parser


def _run_list(args):
    from recipes import _training
    from recipes.backbones import list_backbones
    from recipes.optimizers import list_optimizers
    from recipes.tuning.space import DEFAULT_SPACE
    from recipes.tuning.tuners import TUNERS

    return [("optimizers", ", ".join(list_optimizers())),
            ("backbones", ", ".join([*list_backbones(),
                                     "hub:<KerasHub preset>"])),
            ("schedules", ", ".join(_training.SCHEDULES)),
            ("tuners", ", ".join(TUNERS)),
            ("tuning knobs", ", ".join(DEFAULT_SPACE))]


def build_parser():
    """The `python -m recipes` argument parser with every command."""
    from recipes.tuning_cli import register as add_tune

    parser = argparse.ArgumentParser(
        prog="python -m recipes",
        description="keras-recipes: training recipes for Keras 3.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_fit_image_classifier(subparsers)
    add_tune(subparsers)
    add_list(subparsers)
    return parser


def main(argv=None):
    """Run one command; return the process exit code.

    Args:
        argv: Arguments without the program name. Defaults to `None`
            (`sys.argv[1:]`).

    Returns:
        0 on success, 2 on bad input (one-line error on stderr).
    """
    return run_command(build_parser(), argv)
