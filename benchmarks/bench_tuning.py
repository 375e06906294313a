"""Hyperband vs random search over the whole image recipe, on MNIST-5k.

Both searches use `recipes.tune_image_classifier` with the same default
search space and the same largest epoch budget per trial on real MNIST-5k
(4,000 train / 1,000 validation images). Random search runs `--random-trials`
trials of `--max-epochs` epochs each; Hyperband (Li et al., 2018) one
iteration with `--factor`. Each trial trains from scratch, and early
stopping may end a trial sooner: epochs are counted from what ran.

Prints one table: best validation accuracy and epochs spent by each search,
the accuracy gap in points, and the epoch ratio (goal from the issue: within
0.5 points of the random best using <= 1/3 of its epochs).

Usage:
    python benchmarks/bench_tuning.py --random-trials 30 --max-epochs 9
"""

import argparse
import tempfile
import time

from recipes.datasets import load_mnist_5k
from recipes.tuning import tune_image_classifier


def run(tuner, data, validation, directory, **kwargs):
    start = time.monotonic()
    result = tune_image_classifier(
        data, validation_data=validation, tuner=tuner, directory=directory,
        project_name=tuner, overwrite=True, **kwargs)
    seconds = time.monotonic() - start
    epochs = sum(row["epochs_run"] or 0 for row in result.table)
    return {"search": tuner, "trials": len(result.table),
            "best_val_accuracy": result.best_score, "epochs": epochs,
            "seconds": seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random-trials", type=int, default=30)
    parser.add_argument("--max-epochs", type=int, default=9)
    parser.add_argument("--factor", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    (x, y), validation = load_mnist_5k()
    with tempfile.TemporaryDirectory() as directory:
        rows = []
        for tuner, max_trials in (("hyperband", None),
                                  ("random", args.random_trials)):
            rows.append(run(tuner, (x, y), validation, directory,
                            max_trials=max_trials,
                            max_epochs=args.max_epochs,
                            factor=args.factor, seed=args.seed))
            print(rows[-1], flush=True)
    print(f"MNIST-5k, max_epochs={args.max_epochs}, factor={args.factor}, "
          f"random trials={args.random_trials}, seed={args.seed}")
    print("| search | trials | best val accuracy | epochs | wall s |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['search']} | {row['trials']} | "
              f"{100 * row['best_val_accuracy']:.2f}% | {row['epochs']} | "
              f"{row['seconds']:.0f} |")
    hyperband, random = rows
    gap = 100 * (random["best_val_accuracy"] - hyperband["best_val_accuracy"])
    ratio = hyperband["epochs"] / max(random["epochs"], 1)
    print(f"Hyperband - random: {-gap:+.2f} points, epochs ratio "
          f"{ratio:.2f} (goal: >= -0.50 points at <= 0.33)")


if __name__ == "__main__":
    main()
