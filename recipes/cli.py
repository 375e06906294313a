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

from recipes import _training
from recipes._cli_common import (
    EXIT_BAD_INPUT,
    float_or_auto,
    float_or_none,
    format_table,
    int_or_name,
    load_images,
    none_or,
    run_command,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "add_fit_image_classifier",
    "add_training_arguments",
    "build_parser",
    "format_table",
    "main",
]


def add_training_arguments(parser):
    """Options shared by every recipe command."""
    from recipes import optimizers

    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=int, default=10,
                       help="epochs (of phase 1 for pretrained backbones)")
    group.add_argument("--batch-size", type=int, default=32,
                       help="per-replica batch size")
    group.add_argument(
        "--optimizer", default="adamw",
        help="one of: " + ", ".join(optimizers.list_optimizers()))
    group.add_argument("--learning-rate", type=float_or_auto, default=None,
                       help="peak learning rate, or 'auto' for an LR range "
                       "test (default: the optimizer's, batch-scaled)")
    group.add_argument("--schedule", default="warmup_cosine",
                       choices=_training.SCHEDULES)
    group.add_argument("--weight-decay", type=float, default=0.05)
    group.add_argument("--label-smoothing", type=float, default=0.1)
    group.add_argument("--no-early-stopping", dest="early_stopping",
                       action="store_false")
    group.add_argument("--patience", type=int, default=None)
    group.add_argument("--strategy", default="auto",
                       help="auto, cpu, mirrored, multi_worker or tpu")
    group.add_argument("--mixed-precision", default="auto",
                       help="auto, float32, mixed_float16, mixed_bfloat16")
    group.add_argument("--output-dir", default=None,
                       help="where the model, history, logs and plots go")
    group.add_argument("--overwrite", action="store_true",
                       help="replace a finished run in --output-dir")
    group.add_argument("--seed", type=int, default=None)
    group.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))


def add_fit_image_classifier(subparsers):
    """The `fit-image-classifier` command."""
    from recipes.backbones import list_backbones

    parser = subparsers.add_parser(
        "fit-image-classifier",
        help="train an image classifier (transfer learning included)",
        description="Train an image classifier with "
        "recipes.fit_image_classifier and print a summary.")
    parser.add_argument(
        "data", help="a directory of class sub-folders, a TensorFlow "
        "Datasets name, or a .npz file with arrays x (images) and y "
        "(labels)")
    parser.add_argument("--validation-data", default=None,
                        help="same kinds as DATA (or a TFDS split name)")
    parser.add_argument("--validation-split", type=float, default=0.2)
    parser.add_argument("--test-data", default=None,
                        help="same kinds as DATA (or a TFDS split name)")
    parser.add_argument("--split", default="train", help="TFDS split")
    parser.add_argument("--data-dir", default=None, help="TFDS data_dir")
    parser.add_argument(
        "--backbone", default="auto",
        help="auto, a .keras file, or one of: " + ", ".join(
            list_backbones()))
    parser.add_argument("--weights", type=none_or, default="auto",
                        help="auto, imagenet, none, or a weights file (for "
                        "a .keras backbone: auto = pretrained, two phases; "
                        "none = untrained, one phase)")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--fine-tune-epochs", type=int, default=None)
    parser.add_argument("--fine-tune-layers", type=int_or_name,
                        default="auto",
                        help="auto, all, a layer count or a layer name")
    parser.add_argument("--unfreeze", choices=["at_once", "gradual"],
                        default="at_once",
                        help="phase 2: unfreeze the layers at once or one "
                             "stage per epoch from the top")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--ema-momentum", type=float_or_none, default=0.93,
                        help="momentum of the validated and returned "
                        "weight average, or none")
    parser.add_argument("--augment", default="auto",
                        help="auto (default for pretrained backbones, none "
                        "from scratch), default, flip, randaugment or none")
    parser.add_argument("--mixup", type=float, default=0.0)
    parser.add_argument("--cutmix", type=float, default=0.0)
    add_training_arguments(parser)
    parser.set_defaults(run=_run_fit_image_classifier)
    return parser


def _run_fit_image_classifier(args):
    from recipes.image_classifier import fit_image_classifier

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
        ("epochs run", config["epochs_run"]),
        ("peak learning rate",
         f"{config['learning_rate']:.3g} ({config['learning_rate_source']})"),
        ("strategy", f"{config['strategy']} x{config['replicas']}, "
                     f"{config['mixed_precision']}"),
    ]
    rows += [(name, f"{value:.4f}") for name, value in result.metrics.items()]
    if result.output_dir:
        rows.append(("output_dir", result.output_dir))
    return rows


def build_parser():
    """The `python -m recipes` argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="python -m recipes",
        description="keras-recipes: training recipes for Keras 3.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_fit_image_classifier(subparsers)
    # Imported here: the tuning command imports the tuning stack (Keras
    # Tuner), which the other commands do not need.
    from recipes.tuning_cli import register as add_tune

    add_tune(subparsers)
    return parser


def main(argv=None):
    """Run one command; return the process exit code.

    Args:
        argv: Arguments without the program name. Defaults to `None`
            (`sys.argv[1:]`).

    Returns:
        0 on success, 2 on bad input (one-line error on stderr).
    """
    return run_command(build_parser().parse_args(argv))
