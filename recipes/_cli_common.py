"""Helpers shared by the command-line modules (`cli`, `tuning_cli`).

Argument types for `argparse`, option defaults and registry names read
from the recipes' source, the reading of `.npz` data arguments, and the
run-and-report step every command ends with. Nothing here imports
TensorFlow: `--help` and argument errors answer before it is loaded.
"""

import argparse
import ast
import functools
import importlib.util
import os
import re
import sys
import time

import numpy as np

EXIT_BAD_INPUT = 2
# Parsed names that are not `--options`: positionals and dispatch.
_NOT_OPTIONS = {"data", "command", "run", "check", "topic"}


@functools.cache
def _module_tree(module):
    # Read and parsed, not imported: importing a recipe module (or, through
    # `importlib.util.find_spec`, its package) loads TensorFlow, which
    # `--help` must not wait for.
    package, *parts = module.split(".")
    root = os.path.dirname(importlib.util.find_spec(package).origin)
    with open(os.path.join(root, *parts) + ".py", encoding="utf-8") as f:
        return ast.parse(f.read())


def source_defaults(module, function):
    """The keyword defaults of `module.function`, read from its source.

    The command line shows and uses the same defaults as the Python
    function without importing it. Defaults that are not literals are
    left out.

    Args:
        module: Dotted module name, e.g. `"recipes.image_classifier"`.
        function: Name of a top-level function of that module.

    Returns:
        A dict from parameter name to default value.
    """
    for node in _module_tree(module).body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            args = node.args
            positional = args.args[len(args.args) - len(args.defaults):]
            pairs = list(zip(positional, args.defaults, strict=True))
            pairs += [(a, d) for a, d in zip(
                args.kwonlyargs, args.kw_defaults, strict=True) if d]
            defaults = {}
            for arg, default in pairs:
                try:
                    defaults[arg.arg] = ast.literal_eval(default)
                except ValueError:
                    continue
            return defaults
    raise LookupError(f"No function {function!r} in {module}")


def source_constant(module, name):
    """A module-level literal (`NAME = (...)`), read from the source.

    Args:
        module: Dotted module name.
        name: Name assigned at the module's top level.

    Returns:
        The literal's value.
    """
    for node in _module_tree(module).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name
                for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"No literal {name!r} in {module}")


def registered_names(module, register):
    """The names a registry module registers, read from its source.

    Reads the top-level calls `register(NAME, ...)` of `module`, NAME a
    string literal or a variable of a `for` loop over a literal table (as
    `recipes.backbones` registers its `keras.applications` entries), so
    the command line lists a registry's names without importing it.

    Args:
        module: Dotted module name, e.g. `"recipes.schedules"`.
        register: Name of the module's registering function.

    Returns:
        The names, in the order the source registers them.
    """
    names = []
    for node in _module_tree(module).body:
        names += _registered(node, register, {})
    if not names:
        raise LookupError(f"No {register}(...) calls in {module}")
    return names


def _registered(node, register, bound):
    if isinstance(node, ast.For):
        targets = node.target.elts if isinstance(
            node.target, ast.Tuple) else [node.target]
        names = []
        for row in ast.literal_eval(node.iter):
            row = row if isinstance(node.target, ast.Tuple) else (row,)
            values = {t.id: v for t, v in zip(targets, row, strict=True)}
            for child in node.body:
                names += _registered(child, register, {**bound, **values})
        return names
    call = node.value if isinstance(node, ast.Expr | ast.Assign) else None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            and call.func.id == register):
        return []
    first = call.args[0]
    if isinstance(first, ast.Name):
        return [bound[first.id]]
    return [ast.literal_eval(first)]


def recipe_option(parser, flag, defaults, help, **kwargs):
    """Add an option that sets the recipe keyword of the same name.

    Its default is the recipe's (`defaults`, from `source_defaults`), never
    a copy, and its help text ends with it.

    Args:
        parser: An `argparse` parser or argument group.
        flag: The option, e.g. `"--batch-size"` (keyword `batch_size`).
        defaults: The recipe's keyword defaults.
        help: Help text, without the default.
        **kwargs: Passed to `add_argument` (`type`, `choices`, ...).

    Returns:
        The `argparse` action.
    """
    dest = kwargs.pop("dest", flag[2:].replace("-", "_"))
    return parser.add_argument(flag, dest=dest, default=defaults[dest],
                               help=with_default(help), **kwargs)


def recipe_kwargs(args, *defaults):
    """The parsed options that are keywords of the recipe, as a dict.

    Args:
        args: The parsed `argparse.Namespace`.
        *defaults: The keyword defaults of the functions the command calls
            (`source_defaults`); an option whose name is one of them is
            passed on under that name.

    Returns:
        A dict from keyword to parsed value.
    """
    keywords = set().union(*defaults)
    return {name: value for name, value in vars(args).items()
            if name in keywords}


def with_default(text):
    """Help text ending in the option's default, as `--help` shows it."""
    return f"{text} (default: %(default)s)"


def cli_wording(message, names):
    """A recipe's error message with Python argument names as CLI flags.

    For each name in `names` (options, whose flag is the name with dashes),
    "pass `overwrite=True`" becomes "pass `--overwrite`", "Argument
    `output_dir`" becomes "Argument `--output-dir`" and "output_dir=..."
    becomes "--output-dir=...".
    """
    for dest in names:
        flag = "--" + dest.replace("_", "-")
        message = message.replace(f"`{dest}=True`", f"`{flag}`")
        message = message.replace(f"`{dest}`", f"`{flag}`")
        message = re.sub(rf"(?<![\w`-]){dest}(?==)", flag, message)
    return message


def check_data_path(name, value):
    """Refuse a data path that does not exist, before TensorFlow loads.

    Same rule as `recipes.data`: a value with a path separator, or naming
    something that exists, is a directory; anything else a TensorFlow
    Datasets name (checked by the recipe).
    """
    if (value is None or value.endswith(".npz") or os.sep not in value
            or os.path.isdir(value)):
        return
    raise ValueError(
        f"Argument `{name}` must be an existing directory of class "
        "sub-folders, a .npz file or a TensorFlow Datasets name. "
        f"Received: {value!r}, which does not exist")


def float_or_auto(value):
    """`"auto"` or a float."""
    return value if value == "auto" else float(value)


def int_or_auto(value):
    """`"auto"` or an integer (`--epochs`)."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be 'auto' or an integer. Received: {value!r}") from None


def float_or_none(value):
    """`None` for `"none"` (any case), else a float."""
    return None if value.lower() == "none" else float(value)


def int_or_name(value):
    """An integer, or the text itself (a layer name, `"auto"`, `"all"`)."""
    return int(value) if value.lstrip("-").isdigit() else value


def none_or(value):
    """`None` for `"none"` (any case), else the text."""
    return None if value.lower() == "none" else value


def load_images(value):
    """A CLI data argument: `.npz` (arrays `x`, `y`) or a dir/TFDS name."""
    if value is None or not value.endswith(".npz"):
        return value
    try:
        arrays = np.load(value, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"Argument `data` must be a .npz file with arrays `x` and `y`. "
            f"Received: {value!r}, which cannot be read as one ({e})"
        ) from e
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise ValueError(
            f"Argument `data` must be a .npz file with arrays `x` and `y`. "
            f"Received: {value!r}, which holds a single array (written by "
            "`np.save`); write it with `np.savez(path, x=x, y=y)`"
        )
    missing = {"x", "y"} - set(arrays.files)
    if missing:
        raise ValueError(
            f"Argument `data` must be a .npz file with arrays `x` and `y`. "
            f"Received: {value!r} without {sorted(missing)}"
        )
    return arrays["x"], arrays["y"]


def format_table(rows):
    """Two aligned columns, one row per line."""
    width = max(len(str(name)) for name, _ in rows)
    return "\n".join(f"{str(name):<{width}}  {value}" for name, value in rows)


def run_command(parser, argv=None):
    """Parse `argv` and run the command (`args.run(args)` returns rows).

    `args.check(args)`, when a command sets it, runs first: the checks
    that need no TensorFlow answer before it loads. Prints the rows and the
    wall time; bad input (`ValueError`, `TypeError`, `OSError`) becomes a
    one-line error on stderr, worded with the command's flags.

    Returns:
        0 on success, `EXIT_BAD_INPUT` (2) on bad input.
    """
    from recipes import _quiet, _serializables

    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        if getattr(args, "check", None):
            args.check(args)
        _quiet.import_tensorflow()
        # `python -m recipes` skipped this at import (see `recipes`): a
        # `.keras` file a command loads may use any registered object.
        _serializables.import_all()
        rows = args.run(args)
    except (ValueError, TypeError, OSError) as e:
        options = set(vars(args)) - _NOT_OPTIONS
        message = cli_wording(" ".join(str(e).split()), options)
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rows.append(("wall time", f"{time.monotonic() - start:.1f} s"))
    print(format_table(rows))
    return 0
