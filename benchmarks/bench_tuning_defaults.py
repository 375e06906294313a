"""Tuning vs not tuning: the best trial against the recipe's defaults.

For each data set and tuner, one search of `--trials` trials runs with
`recipes.tune_image_classifier` (defaults first, step budget). The 2- and
5-trial budgets are the first 2 and 5 trials of that search: the oracle
draws the same sequence for the same seed whatever `max_trials` is, so a
search capped at k trials runs exactly those k. For each budget the best
trial (by the tuning objective, validation accuracy, as the tuner picks it)
is evaluated on held-out data the search never saw, next to
`fit_image_classifier(train, epochs=E)` at its defaults, where E is the
best trial's epoch budget (max_epochs, or its Hyperband bracket's).

Data sets (real, shipped in packages):
- digits: sklearn's 8x8 digits, `--train` training and 200 validation
  examples, the other 797 held out;
- mnist5k: MNIST-5k, `--train` training and 200 validation examples from
  its 4,000-image training split, its 1,000-image split held out.

Prints one Markdown table; "ok" when the best trial's held-out accuracy is
at least the defaults'.

Usage:
    python benchmarks/bench_tuning_defaults.py --datasets digits,mnist5k
"""

import argparse
import platform
import tempfile
import time

import numpy as np

from recipes.datasets import load_digits_8x8, load_mnist_5k
from recipes.image_classifier import fit_image_classifier
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


def search_rows(name, tuner, data, args, defaults_cache):
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
        rows = []
        for budget in BUDGETS:
            trials = [oracle.trials[t] for t in order[:budget]]
            done = [t for t in trials if t.score is not None]
            if len(trials) < budget:
                continue
            best = max(done, key=lambda t: t.score)
            epochs = best.hyperparameters.values.get("tuner/epochs",
                                                     args.max_epochs)
            tuned = accuracy(result.tuner.load_model(best), held_out)
            # The defaults trial at this budget is the recipe at its
            # defaults (same seed); else (Hyperband did not promote it this
            # far) the recipe is run.
            ran = [t for t in trials
                   if _same(t, first) and t.score is not None
                   and t.hyperparameters.values.get(
                       "tuner/epochs", args.max_epochs) == epochs]
            if ran:
                default = accuracy(result.tuner.load_model(ran[-1]),
                                   held_out)
            else:
                if epochs not in defaults_cache:
                    fitted = fit_image_classifier(
                        train, validation_data=val, epochs=epochs,
                        verbose=0, seed=args.seed)
                    defaults_cache[epochs] = accuracy(fitted.model,
                                                      held_out)
                default = defaults_cache[epochs]
            rows.append({
                "data": name, "tuner": tuner, "trials": budget,
                "best_trial": best.trial_id,
                "defaults_best": _same(best, first),
                "epochs": epochs, "tuned": tuned, "defaults": default,
                "seconds": seconds})
            print(rows[-1], flush=True)
    return rows


def _same(trial, other):
    def knobs(t):
        return {k: v for k, v in t.hyperparameters.values.items()
                if not k.startswith("tuner/")}
    return knobs(trial) == knobs(other)


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
        cache = {}
        for tuner in args.tuners.split(","):
            rows += search_rows(name, tuner, data, args, cache)
    print(f"\n{platform.processor() or platform.machine()}, "
          f"train={args.train}, max_epochs={args.max_epochs}, "
          f"seed={args.seed}")
    print("| data | tuner | trials | best trial | budget epochs | "
          "held-out acc. tuned | defaults | difference | |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        diff = 100 * (r["tuned"] - r["defaults"])
        best = f"{r['best_trial']}" + (" (defaults)" if r["defaults_best"]
                                       else "")
        print(f"| {r['data']} | {r['tuner']} | {r['trials']} | {best} | "
              f"{r['epochs']} | {100 * r['tuned']:.2f}% | "
              f"{100 * r['defaults']:.2f}% | {diff:+.2f} | "
              f"{'ok' if diff >= 0 else 'LOWER'} |")


if __name__ == "__main__":
    main()
