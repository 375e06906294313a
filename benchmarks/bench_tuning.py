"""Hyperband vs random search over the whole image recipe, on MNIST-5k.

Both searches use `recipes.tune_image_classifier` with the same default
search space and the same largest epoch budget per trial on real MNIST-5k
(4,000 train / 1,000 validation images). Random search runs `--random-trials`
trials of `--max-epochs` epochs each, from scratch; Hyperband (Li et al.,
2018) one iteration with `--factor`, its promoted trials continuing from
their parent's weights. Early stopping may end a trial sooner: epochs are
counted from what ran.

Prints one table: best validation accuracy and epochs spent by each search,
the accuracy gap in points, and the epoch ratio (goal from the issue: within
0.5 points of the random best using <= 1/3 of its epochs).

With `--directory`, the searches live there and resume when the script is
run again (so a long run can be stopped and continued, or the two searches
run as two processes with `--searches`); `--report` prints the table of
what the directory holds, finished or not, without training.

Usage:
    python benchmarks/bench_tuning.py --random-trials 30 --max-epochs 9
"""

import argparse
import contextlib
import json
import os
import tempfile
import time

from recipes.datasets import load_mnist_5k
from recipes.tuning import tune_image_classifier

SEARCHES = ("hyperband", "random")


def run(tuner, data, validation, directory, **kwargs):
    start = time.monotonic()
    result = tune_image_classifier(
        data, validation_data=validation, tuner=tuner, directory=directory,
        project_name=tuner, **kwargs)
    row = summarize(tuner, list(result.table))
    row["seconds"] = time.monotonic() - start
    with open(os.path.join(directory, f"{tuner}_seconds.json"), "w") as f:
        json.dump(row["seconds"], f)
    return row


def summarize(tuner, table):
    scores = [r["score"] for r in table if r["score"] is not None]
    return {"search": tuner, "trials": len(table),
            "completed": sum(r["status"] == "COMPLETED" for r in table),
            "best_val_accuracy": max(scores, default=float("nan")),
            "epochs": sum(r["epochs_run"] or 0 for r in table),
            "seconds": None}


def read_directory(tuner, directory):
    """The rows of a search directory, finished or not (trial files)."""
    project = os.path.join(directory, tuner)
    table = []
    if os.path.isdir(project):
        for name in sorted(os.listdir(project)):
            path = os.path.join(project, name, "trial.json")
            if name.startswith("trial_") and os.path.isfile(path):
                with open(path) as f:
                    trial = json.load(f)
                metrics = trial["metrics"]["metrics"]

                def last(metric, metrics=metrics):
                    found = metrics.get(metric, {}).get("observations")
                    return found[-1]["value"][0] if found else None

                epochs = last("epochs_run")
                table.append({"status": trial["status"],
                              "score": trial["score"],
                              "epochs_run": epochs and int(epochs)})
    row = summarize(tuner, table)
    seconds = os.path.join(directory, f"{tuner}_seconds.json")
    if os.path.isfile(seconds):
        with open(seconds) as f:
            row["seconds"] = json.load(f)
    return row


def print_table(rows, args):
    print(f"MNIST-5k, max_epochs={args.max_epochs}, factor={args.factor}, "
          f"random trials={args.random_trials}, seed={args.seed}")
    print("| search | trials (completed) | best val accuracy | epochs | "
          "wall s |")
    print("|---|---|---|---|---|")
    for row in rows:
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.0f}"
        print(f"| {row['search']} | {row['trials']} ({row['completed']}) | "
              f"{100 * row['best_val_accuracy']:.2f}% | {row['epochs']} | "
              f"{seconds} |")
    if len(rows) == 2:
        hyperband, random = rows
        gap = 100 * (hyperband["best_val_accuracy"]
                     - random["best_val_accuracy"])
        ratio = hyperband["epochs"] / max(random["epochs"], 1)
        print(f"Hyperband - random: {gap:+.2f} points, epochs ratio "
              f"{ratio:.2f} (goal: >= -0.50 points at <= 0.33)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random-trials", type=int, default=30)
    parser.add_argument("--max-epochs", type=int, default=9)
    parser.add_argument("--factor", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--directory", default=None,
                        help="keep (and resume) the searches here")
    parser.add_argument("--searches", default=",".join(SEARCHES),
                        help="comma-separated subset of hyperband,random")
    parser.add_argument("--report", action="store_true",
                        help="print the table of --directory, no training")
    args = parser.parse_args()
    searches = [s for s in SEARCHES if s in args.searches.split(",")]
    if args.report:
        print_table([read_directory(s, args.directory) for s in searches],
                    args)
        return
    (x, y), validation = load_mnist_5k()
    with contextlib.ExitStack() as stack:
        directory = args.directory or stack.enter_context(
            tempfile.TemporaryDirectory())
        rows = []
        for tuner in searches:
            max_trials = None if tuner == "hyperband" else args.random_trials
            rows.append(run(tuner, (x, y), validation, directory,
                            max_trials=max_trials,
                            max_epochs=args.max_epochs, factor=args.factor,
                            seed=args.seed,
                            overwrite=args.directory is None))
            print(rows[-1], flush=True)
    print_table(rows, args)


if __name__ == "__main__":
    main()
