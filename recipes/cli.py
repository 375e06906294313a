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
    recipe_kwargs,
    recipe_option,
    registered_names,
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


def _listed(names):
    """`"a, b or c"`: names as the help texts list them."""
    names = list(names)
    return f"{', '.join(names[:-1])} or {names[-1]}"


def add_training_arguments(parser, defaults):
    """Options shared by every recipe command.

    Args:
        parser: The command's `argparse` parser.
        defaults: The recipe function's keyword defaults
            (`source_defaults`), which the options show and use.
    """
    d = defaults
    group = parser.add_argument_group("training")
    steps, low, high = (source_constant("recipes.image_plan", name) for name
                        in ("AUTO_EPOCHS_STEPS", "AUTO_EPOCHS_MIN",
                            "AUTO_EPOCHS_MAX"))
    recipe_option(
        group, "--epochs", d, type=int_or_auto,
        help="epochs (of phase 1 for pretrained backbones), or 'auto': a "
        f"budget of about {steps:,} optimizer steps (at least {low} epochs, "
        f"at most {high})")
    recipe_option(group, "--batch-size", d, type=int,
                  help="per-replica batch size")
    optimizers = sorted(registered_names("recipes.optimizers.registry",
                                         "register_optimizer"))
    recipe_option(group, "--optimizer", d,
                  help=f"optimizer name: {_listed(optimizers)}")
    recipe_option(
        group, "--learning-rate", d, type=float_or_auto,
        help="peak learning rate, 'auto' for an LR range test, or None for "
        "the optimizer's, batch-scaled")
    recipe_option(
        group, "--schedule", d,
        choices=registered_names("recipes.schedules", "register_schedule"),
        help="learning-rate schedule")
    recipe_option(group, "--weight-decay", d, type=float,
                  help="decoupled weight decay")
    recipe_option(group, "--label-smoothing", d, type=float,
                  help="label smoothing of the loss")
    group.add_argument(
        "--no-early-stopping", dest="early_stopping", action="store_false",
        default=d["early_stopping"],
        help="train every epoch: no early stopping on the validation loss "
        "(early stopping is on by default)")
    recipe_option(
        group, "--patience", d, type=int,
        help="early-stopping patience in epochs; None picks one from the "
        "number of epochs")
    recipe_option(
        group, "--strategy", d,
        help=_listed(source_constant("recipes.distribute", "STRATEGIES")))
    recipe_option(
        group, "--mixed-precision", d,
        help=_listed(source_constant("recipes.distribute", "PRECISIONS")))
    recipe_option(group, "--output-dir", d,
                  help="where the model, history, logs and plots go")
    recipe_option(group, "--overwrite", d, action="store_true",
                  help="replace a finished run in --output-dir")
    recipe_option(group, "--seed", d, type=int,
                  help="random seed; None draws one")
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
    recipe_option(parser, "--validation-data", d,
                  help="same kinds as DATA (or a TFDS split name)")
    recipe_option(
        parser, "--validation-split", d, type=float,
        help="fraction of DATA held out for validation when "
        "--validation-data is not given")
    recipe_option(parser, "--test-data", d,
                  help="same kinds as DATA (or a TFDS split name)")
    recipe_option(parser, "--split", d, help="TFDS split")
    recipe_option(parser, "--data-dir", d, help="TFDS data_dir")
    backbones = registered_names("recipes.backbones", "register_backbone")
    recipe_option(
        parser, "--backbone", d,
        help=f"auto, a .keras file, a backbone name ({', '.join(backbones)}"
        "), or hub:PRESET (a KerasHub preset name or save_to_preset "
        "directory; needs the hub extra)")
    recipe_option(
        parser, "--weights", d, type=none_or,
        help="auto, imagenet, preset (hub:), none, or a weights file (for a "
        ".keras backbone: auto = pretrained, two phases; none = untrained, "
        "one phase)")
    recipe_option(
        parser, "--image-size", d, type=int,
        help="side of the square model input in pixels; None uses the "
        "backbone's or the data's size")
    recipe_option(
        parser, "--fine-tune-epochs", d, type=int,
        help="epochs of phase 2 (pretrained backbones); None picks from "
        "--epochs")
    recipe_option(parser, "--fine-tune-layers", d, type=int_or_name,
                  help="auto, all, a layer count or a layer name")
    recipe_option(
        parser, "--unfreeze", d,
        choices=source_constant("recipes.image_plan", "UNFREEZE"),
        help="phase 2: unfreeze the layers at once, or one stage per epoch "
        "from the top")
    recipe_option(parser, "--dropout", d, type=float,
                  help="dropout rate before the classification layer")
    recipe_option(
        parser, "--ema-momentum", d, type=float_or_none,
        help="momentum of the validated and returned weight average, or "
        "none")
    augmentations = registered_names("recipes.augmentations",
                                     "register_augmentation")
    recipe_option(
        parser, "--augment", d, choices=("auto", *augmentations),
        help="auto (default for pretrained backbones; from scratch, mirror "
        "for photographs and none for digits or text), "
        + _listed(augmentations))
    recipe_option(parser, "--mixup", d, type=float, help="MixUp probability")
    recipe_option(parser, "--cutmix", d, type=float,
                  help="CutMix probability")
    parser.add_argument(
        "--find-batch-size", nargs="?", type=int, const=0, default=None,
        metavar="MAX",
        help="before training, find the batch size (largest that fits on "
        "a GPU, fastest on CPU; at most MAX, default 8192 on GPU, 1024 on "
        "CPU) and train with it instead of --batch-size")
    parser.add_argument(
        "--dry-run", action="store_true",
        help=with_default(
            "check the arguments, read the data and print the plan (what "
            "each 'auto' becomes: backbone, epochs, augmentation, ...), then "
            "exit without training or writing a file"))
    add_training_arguments(parser, d)
    parser.set_defaults(run=_run_fit_image_classifier,
                        check=_check_fit_image_classifier)
    return parser


def _check_fit_image_classifier(args):
    check_data_path("data", args.data)
    check_data_path("validation_data", args.validation_data)
    check_data_path("test_data", args.test_data)
    if args.dry_run and args.find_batch_size is not None:
        raise ValueError(
            "Argument `dry_run` plans without training, and "
            "`find_batch_size` trains to time batch sizes: pass one of "
            f"them. Received: dry_run=True, "
            f"find_batch_size={args.find_batch_size}"
        )


def _plan_rows(args):
    """`--dry-run`: the plan `fit_image_classifier` would train."""
    import dataclasses

    from recipes.image_classifier import plan_image_classifier

    plan = plan_image_classifier(load_images(args.data),
                                 **_image_recipe_kwargs(args))
    return [(field.name, getattr(plan, field.name))
            for field in dataclasses.fields(plan)]


def _image_recipe_kwargs(args):
    """The image recipe's keywords from `args`, with the validation and
    test data loaded."""
    kwargs = recipe_kwargs(args, source_defaults(
        "recipes.image_classifier", "fit_image_classifier"))
    for name in ("validation_data", "test_data"):
        kwargs[name] = load_images(kwargs[name])
    return kwargs


def _run_fit_image_classifier(args):
    from recipes.image_classifier import fit_image_classifier

    if args.dry_run:
        return _plan_rows(args)
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
    result = fit_image_classifier(load_images(args.data),
                                  **_image_recipe_kwargs(args))
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
        "list", help="list optimizers, backbones, schedules, augmentations, "
        "tuners and tuning knobs", description="Print the names each registry "
        "accepts (importing them loads TensorFlow).")
    parser.set_defaults(run=_run_list)
    return parser


def _run_list(args):
    from recipes.augmentations import list_augmentations
    from recipes.backbones import list_backbones
    from recipes.optimizers import list_optimizers
    from recipes.schedules import list_schedules
    from recipes.tuning.space import DEFAULT_SPACE
    from recipes.tuning.tuners import TUNERS

    return [("optimizers", ", ".join(list_optimizers())),
            ("backbones", ", ".join([*list_backbones(),
                                     "hub:<KerasHub preset>"])),
            ("schedules", ", ".join(list_schedules())),
            ("augmentations", ", ".join(list_augmentations())),
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
