"""Tuning vs not tuning: the best trial against the recipe's defaults.

For each data set and tuner, one search of `--trials` trials runs with
`recipes.tune_image_classifier` (defaults first, step budget). The 2- and
5-trial budgets are the first 2 and 5 trials of that search: the oracle
draws the same sequence for the same seed whatever `max_trials` is, so a
search capped at k trials runs exactly those k (Hyperband with
`--max-epochs 3` stops after 7 trials, so its 10-trial budget runs 7).
For each budget the best trial (by the tuning objective, validation
accuracy, as the tuner picks it) is evaluated on held-out data the search
never saw, next to the defaults trial: the recipe at its defaults trained
`--max-epochs` epochs (under every tuner, Hyperband included), which is
what `fit_image_classifier(train, epochs=max_epochs)` trains, i.e. what not
tuning gives for the same epochs.

Data sets (real, shipped in packages):
- digits: sklearn's 8x8 digits, `--train` training and 200 validation
  examples, the other 797 held out;
- mnist5k: MNIST-5k, `--train` training and 200 validation examples from
  its 4,000-image training split, its 1,000-image split held out.

Prints one Markdown table: the validation accuracy (the objective) and the
held-out accuracy of the best trial and of the defaults; "ok" when the best
trial's held-out accuracy is at least the defaults'.

Usage:
    python benchmarks/bench_tuning_defaults.py --datasets digits,mnist5k
"""

import argparse
import platform
import tempfile
import time

import numpy as np

from recipes.datasets import load_digits_8x8, load_mnist_5k
from recipes.tuning import tune_image_classifier

TUNERS = ("random", "bayesian", "hyperband")
BUDGETS = (2, 5, 10)


def load(name, train):
    if name == "digits":
        (x, y), held_out = load_digits_8x8(validation_size=797)
    else:
        (x, y), held_out = load_mnist_5k()
    # Stratified by construction of the loaders' shuffle; the first `train`
    # train, the next 200 validate the search.
    return ((x[:train], y[:train]), (x[train:train + 200],
                                     y[train:train + 200]), held_out)


def accuracy(model, data):
    x, y = data
    predicted = np.argmax(model.predict(x, batch_size=256, verbose=0), -1)
    return float(np.mean(predicted == y))


def search_rows(name, tuner, data, args):
    train, val, held_out = data
    with tempfile.TemporaryDirectory() as directory:
        start = time.monotonic()
        result = tune_image_classifier(
            train, validation_data=val, tuner=tuner, max_trials=args.trials,
            max_epochs=args.max_epochs, directory=directory,
            overwrite=True, seed=args.seed)
        seconds = time.monotonic() - start
        oracle = result.tuner.oracle
        order = oracle.start_order
        first = oracle.trials[oracle.defaults_trial_id]
        first_epochs = _epochs(first, args)
        if first_epochs != args.max_epochs:
            raise RuntimeError(f"The defaults trained {first_epochs} epochs, "
                               f"not {args.max_epochs}")
        default = accuracy(result.tuner.load_model(first), held_out)
        rows = []
        for budget in BUDGETS:
            trials = [oracle.trials[t] for t in order[:budget]]
            if len(trials) < budget and budget != args.trials:
                continue
            best = max((t for t in trials if t.score is not None),
                       key=lambda t: t.score)
            tuned = accuracy(result.tuner.load_model(best), held_out)
            rows.append({
                "data": name, "tuner": tuner, "trials": budget,
                "run": len(trials), "best_trial": best.trial_id,
                "defaults_best": best.trial_id == first.trial_id,
                "epochs": _epochs(best, args), "val_tuned": best.score,
                "val_defaults": first.score, "tuned": tuned,
                "defaults": default, "seconds": seconds})
            print(rows[-1], flush=True)
    return rows


def _epochs(trial, args):
    return trial.hyperparameters.values.get("tuner/epochs", args.max_epochs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,mnist5k")
    parser.add_argument("--tuners", default=",".join(TUNERS))
    parser.add_argument("--trials", type=int, default=max(BUDGETS))
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for name in args.datasets.split(","):
        data = load(name, args.train)
        for tuner in args.tuners.split(","):
            rows += search_rows(name, tuner, data, args)
    print(f"\n{platform.processor() or platform.machine()}, "
          f"train={args.train}, max_epochs={args.max_epochs}, "
          f"seed={args.seed}")
    print("| data | tuner | trials | best trial | its epochs | val. tuned | "
          "val. defaults | held-out tuned | held-out defaults | difference "
          "| search s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        diff = 100 * (r["tuned"] - r["defaults"])
        best = f"{r['best_trial']}" + (" (defaults)" if r["defaults_best"]
                                       else "")
        trials = f"{r['trials']}" + (f" ({r['run']} run)"
                                     if r["run"] < r["trials"] else "")
        print(f"| {r['data']} | {r['tuner']} | {trials} | {best} | "
              f"{r['epochs']} | {100 * r['val_tuned']:.2f}% | "
              f"{100 * r['val_defaults']:.2f}% | {100 * r['tuned']:.2f}% | "
              f"{100 * r['defaults']:.2f}% | {diff:+.2f} | "
              f"{r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
