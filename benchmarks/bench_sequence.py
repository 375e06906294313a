"""Sequential MNIST: LSTM vs GRU, with and without gradient clipping.

Each MNIST-5k digit is read row by row, 28 time steps of 28 features (Le et
al., 2015). For each cell (LSTM, GRU) and clipping (`clipnorm=1.0`, the
recipe's default, and `clipnorm=None`), `recipes.fit_sequence_classifier`
trains with its defaults (bidirectional, 64 units, AdamW, warmup-cosine)
for a fixed number of epochs on the 4,000 training digits; the table gives
the validation accuracy on the 1,000 held-out digits, the best epoch's
accuracy, and the step time (median epoch time after the first, which
includes tracing, divided by the steps of an epoch; the epoch time includes
its validation pass). All runs in one process, same seed; with
`--repeats 2` the grid runs twice, the second time in reverse order, and
the table gives the median step time and the mean accuracy over repeats
(the machine may be shared: reversing the order spreads load drifts).

Usage: python benchmarks/bench_sequence.py [--epochs 6] [--repeats 2]
"""

import argparse
import math
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from recipes import fit_sequence_classifier  # noqa: E402
from recipes.datasets import load_mnist_5k  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def run(cell, clipnorm, data, args):
    timer = EpochTimer()
    start = time.perf_counter()
    result = fit_sequence_classifier(
        data[0], validation_data=data[1], cell=cell, clipnorm=clipnorm,
        units=args.units, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, early_stopping=False,
        callbacks=[timer], seed=args.seed, verbose=0)
    wall = time.perf_counter() - start
    steps = math.ceil(len(data[0][1]) / args.batch_size)
    return {
        "cell": cell, "clipnorm": clipnorm,
        "val_accuracy": result.metrics["val_accuracy"],
        "best_val_accuracy": max(result.history["val_accuracy"]),
        "ms_per_step": 1000 * float(np.median(timer.times[1:])) / steps,
        "wall_s": wall,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    (x, y), (x_val, y_val) = load_mnist_5k(validation_size=1000)
    data = ((x[..., 0], y), (x_val[..., 0], y_val))
    print(f"{platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; epochs={args.epochs}, units={args.units},"
          f" batch={args.batch_size}, learning_rate="
          f"{args.learning_rate or 'recipe default'}")
    grid = [(cell, clip) for cell in ("lstm", "gru") for clip in (1.0, None)]
    runs = {config: [] for config in grid}
    for repeat in range(args.repeats):
        for config in grid if repeat % 2 == 0 else grid[::-1]:
            runs[config].append(run(*config, data, args))
    rows = [{
        "cell": cell, "clipnorm": clip,
        **{key: float(np.mean([r[key] for r in runs[(cell, clip)]]))
           for key in ("val_accuracy", "best_val_accuracy", "wall_s")},
        "ms_per_step": float(np.median(
            [r["ms_per_step"] for r in runs[(cell, clip)]])),
    } for cell, clip in grid]
    print("| cell | clipnorm | val acc (last) | val acc (best) | ms/step |"
          " wall s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['cell']} | {r['clipnorm']} | {r['val_accuracy']:.4f} "
              f"| {r['best_val_accuracy']:.4f} | {r['ms_per_step']:.1f} "
              f"| {r['wall_s']:.0f} |")
    lstm, gru = rows[0]["ms_per_step"], rows[2]["ms_per_step"]
    print(f"GRU/LSTM step time (clipped): {gru / lstm:.2f}")
    for i, cell in ((0, "lstm"), (2, "gru")):
        ratio = rows[i]["ms_per_step"] / rows[i + 1]["ms_per_step"]
        print(f"{cell} clipped/unclipped step time: {ratio:.2f}")


if __name__ == "__main__":
    main()
