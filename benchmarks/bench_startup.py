"""Start-up cost of `fit_image_classifier` by `steps_per_execution`.

On small data the recipe's fixed cost before its first epoch ends (model
building, compiling, and above all tracing the train and evaluation
`tf.function`s) decides how fast it reaches an accuracy. Keras traces a
`steps_per_execution=N > 1` step inside a `tf.while_loop`, which costs more
to trace than a single step; in exchange each call runs N steps without
returning to Python. This script measures both sides on the four data sets
of `benchmarks/suite.py`, for each `steps_per_execution` given (`auto` is
the recipe's current rule), interleaved, in one run:

* `first epoch`: seconds from the call to the end of epoch 1 (data check,
  model, compile, traces, one epoch, one validation pass);
* `later epoch`: median seconds of epochs 2 onwards (train + validation);
* `model.jit_compile`, to show whether XLA is part of the cost;

and the ratio of each to the first setting's (the baseline).

Usage:

    python benchmarks/bench_startup.py                    # 32 vs auto
    python benchmarks/bench_startup.py --spe 32 1 4 auto --epochs 4
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import keras  # noqa: E402
from suite import DATA  # noqa: E402  (this folder is on sys.path)

from recipes import fit_image_classifier  # noqa: E402


class EpochEnds(keras.callbacks.Callback):
    """Seconds since `start` at each epoch end."""

    def __init__(self, start):
        super().__init__()
        self.start = start
        self.ends = []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter() - self.start)


def measure(data, spe, epochs, seed):
    (x, y), (xv, yv) = data
    keras.backend.clear_session()
    start = time.perf_counter()
    clock = EpochEnds(start)
    result = fit_image_classifier(
        (x, y), validation_data=(xv, yv), epochs=epochs, seed=seed,
        early_stopping=False, steps_per_execution=spe, callbacks=[clock],
        verbose=0)
    later = [b - a for a, b in zip(clock.ends[:-1], clock.ends[1:],
                                   strict=True)]
    return dict(first=clock.ends[0], later=statistics.median(later),
                spe=result.config["steps_per_execution"],
                jit=result.model.jit_compile)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spe", nargs="+", default=["32", "auto"],
                        help="settings; the first is the baseline")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", nargs="+", choices=sorted(DATA),
                        default=list(DATA))
    args = parser.parse_args()
    settings = [s if s == "auto" else int(s) for s in args.spe]
    data = {name: DATA[name]() for name in args.data}
    # One untimed run first: the process's first trace pays one-time
    # TensorFlow initialization that no setting should be charged with.
    measure(data[args.data[0]], settings[0], 2, 0)
    rows = {(n, s): [] for n in args.data for s in settings}
    for repeat in range(args.repeats):
        for name in args.data:
            for spe in settings:
                rows[name, spe].append(measure(data[name], spe, args.epochs,
                                               repeat))
    print(f"\nmedians of {args.repeats} runs, {args.epochs} epochs each, "
          f"{os.cpu_count()} CPUs\n")
    print("| data set | steps_per_execution | resolved | jit_compile | "
          "first epoch s | ratio | later epoch s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.data:
        base = None
        for spe in settings:
            runs = rows[name, spe]
            first = statistics.median(r["first"] for r in runs)
            later = statistics.median(r["later"] for r in runs)
            base = base or (first, later)
            print(f"| {name} | {spe} | {runs[0]['spe']} | {runs[0]['jit']} "
                  f"| {first:.2f} | {first / base[0]:.2f}x | {later:.2f} | "
                  f"{later / base[1]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
