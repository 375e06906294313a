"""Average vs max pooling in `small_cnn`, by the recipe on four data sets.

Runs `recipes.fit_image_classifier` at its defaults with `small_cnn`
built with `pooling="average"` and with `pooling="max"` (the default since
this comparison), against the keras.io "Simple MNIST convnet" textbook of
`benchmarks/suite.py`, on the suite's four real data sets. Each variant is
registered as a backbone (`"small_cnn_average"`, `"small_cnn_max"`) with
the registry settings of `"small_cnn"` (trained from scratch, same
preprocessing, fine-tune point, learning-rate scale and augmentation), so
the runs' plans differ from the default plan only in the backbone's name;
the script checks that with `recipes.plan_image_classifier` before
training.

Per seed (interleaved) and data set: the textbook once (30 epochs), then the
recipe with each backbone, so every ratio is taken within one run. Per data
set it prints, for each variant, the medians over seeds and the per-seed
values of:

* the final validation accuracy;
* the time ratio: wall time to first reach the textbook's final accuracy
  (same seed) / the textbook's own time to it;
* the epochs to reach it;
* seconds per epoch after the first (validation included) and the first
  epoch's seconds (tracing included).

Usage:

    python benchmarks/bench_small_cnn.py                 # 3 seeds, all sets
    python benchmarks/bench_small_cnn.py --seeds 1 --data textures
    python benchmarks/bench_small_cnn.py --seeds 2 --first-seed 3
"""

import argparse
import dataclasses
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import keras  # noqa: E402
from suite import DATA, EpochClock, first_reach, run_textbook  # noqa: E402

from recipes import (  # noqa: E402
    backbones,
    fit_image_classifier,
    plan_image_classifier,
)

POOLINGS = ("average", "max")
VARIANTS = tuple(f"small_cnn_{pooling}" for pooling in POOLINGS)


def register_variants():
    """Registers `"small_cnn_<pooling>"` for each pooling: `small_cnn` with
    that pooling and the registry settings of `"small_cnn"`."""
    base = backbones.get_backbone_info("small_cnn")
    for pooling, variant in zip(POOLINGS, VARIANTS, strict=True):
        backbones.register_backbone(
            variant,
            lambda shape, weights, pooling=pooling: backbones.small_cnn(
                shape, pooling=pooling),
            native_size=base.native_size, preprocessing=base.preprocessing,
            fine_tune_from=base.fine_tune_from,
            pretrained_weights=base.pretrained_weights,
            channels=base.channels)


def check_plans(name, data):
    """Raises unless each variant's plan differs from the default plan
    only in the backbone."""
    (x, y), (xv, yv) = data
    default = plan_image_classifier((x, y), validation_data=(xv, yv))
    if default.backbone != "small_cnn":
        raise RuntimeError(f"{name}: default backbone is {default.backbone}")
    for variant in VARIANTS:
        plan = plan_image_classifier((x, y), validation_data=(xv, yv),
                                     backbone=variant)
        if dataclasses.replace(plan, backbone="small_cnn") != default:
            raise RuntimeError(f"{name}: plans differ: {plan} vs {default}")
    print(f"  {name}: plans equal but for the backbone "
          f"({default.epochs} epochs, {default.steps_per_epoch} steps "
          f"per epoch, augment {default.augment!r}, learning-rate scale "
          f"{default.learning_rate_scale})", flush=True)


def run_recipe(data, seed, backbone):
    (x, y), (xv, yv) = data
    keras.backend.clear_session()
    start = time.perf_counter()
    clock = EpochClock(start)
    result = fit_image_classifier((x, y), validation_data=(xv, yv),
                                  backbone=backbone, callbacks=[clock],
                                  seed=seed, verbose=0)
    return clock.points, result.metrics["val_accuracy"]


def first_epoch(points, threshold):
    """1-based epoch when `threshold` is first reached, else `inf`."""
    for epoch, (_, accuracy) in enumerate(points, start=1):
        if accuracy >= threshold - 1e-9:
            return epoch
    return math.inf


def per_epoch(points):
    """(seconds per epoch after the first, seconds of the first)."""
    later = ((points[-1][0] - points[0][0]) / (len(points) - 1)
             if len(points) > 1 else math.nan)
    return later, points[0][0]


def run_seed(name, data, seed, epochs):
    book_points = run_textbook(data, seed, epochs)
    book_final = book_points[-1][1]
    book_time = first_reach(book_points, book_final)
    book_epoch, _ = per_epoch(book_points)
    print(f"  {name:9s} seed {seed}: textbook final {book_final:.4f}, "
          f"reached in {book_time:.1f} s (epoch "
          f"{first_epoch(book_points, book_final)}), {book_epoch:.2f} s per "
          "epoch", flush=True)
    rows = {}
    for variant in VARIANTS:
        points, final = run_recipe(data, seed, variant)
        later, first = per_epoch(points)
        row = dict(final=final,
                   ratio=first_reach(points, book_final) / book_time,
                   epochs=first_epoch(points, book_final),
                   epoch_s=later, first_s=first, run_epochs=len(points))
        rows[variant] = row
        print(f"    {variant:17s}: final {final:.4f} after {len(points)} "
              f"epochs; textbook final at epoch {row['epochs']}, "
              f"{row['ratio']:.2f}x; {later:.2f} s per epoch, first "
              f"{first:.1f} s", flush=True)
    return rows


def fmt(values, spec):
    return ", ".join(format(v, spec) if math.isfinite(v) else "never"
                     for v in values)


def summarize(rows):
    print("\nMedians over seeds (per seed in brackets):\n")
    print("| data set | backbone | final val accuracy | time ratio | "
          "epochs to textbook final | s per epoch (first) |")
    print("|---|---|---|---|---|---|")
    for name, seeds in rows.items():
        for variant in VARIANTS:
            column = {key: [seed[variant][key] for seed in seeds]
                      for key in seeds[0][variant]}
            med = {key: statistics.median(values)
                   for key, values in column.items()}
            print(f"| {name} | {variant} | {med['final']:.4f} "
                  f"({fmt(column['final'], '.4f')}) | {med['ratio']:.2f}x "
                  f"({fmt(column['ratio'], '.2f')}) | {med['epochs']:g} "
                  f"({fmt(column['epochs'], 'g')}) | {med['epoch_s']:.2f} "
                  f"({med['first_s']:.1f}) |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds run are first-seed .. first-seed+seeds-1")
    parser.add_argument("--epochs", type=int, default=30,
                        help="epochs of the textbook recipe")
    parser.add_argument("--data", nargs="+", choices=sorted(DATA),
                        default=list(DATA))
    args = parser.parse_args()
    register_variants()
    data = {name: DATA[name]() for name in args.data}
    for name in args.data:
        check_plans(name, data[name])
    rows = {name: [] for name in args.data}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name in args.data:
            rows[name].append(run_seed(name, data[name], seed, args.epochs))
    summarize(rows)


if __name__ == "__main__":
    main()
