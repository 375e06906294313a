"""Helpers shared by the command-line modules (`cli`, `tuning_cli`).

Argument types for `argparse`, the reading of `.npz` data arguments, and
the run-and-report step every command ends with.
"""

import sys
import time

import numpy as np

EXIT_BAD_INPUT = 2


def float_or_auto(value):
    """`"auto"` or a float."""
    return value if value == "auto" else float(value)


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


def run_command(args):
    """Run a parsed command (`args.run(args)` returns summary rows).

    Prints the rows and the wall time; bad input (`ValueError`,
    `TypeError`, `OSError`) becomes a one-line error on stderr.

    Returns:
        0 on success, `EXIT_BAD_INPUT` (2) on bad input.
    """
    start = time.monotonic()
    try:
        rows = args.run(args)
    except (ValueError, TypeError, OSError) as e:
        message = " ".join(str(e).split())
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rows.append(("wall time", f"{time.monotonic() - start:.1f} s"))
    print(format_table(rows))
    return 0
