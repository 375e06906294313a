"""Per-step cost of learning-rate callbacks in `model.fit` on MNIST-5k.

Measures, in one run, the median step time of:
  (a) a constant learning rate,
  (b) our in-graph `callbacks.CyclicalLR`,
  (c) the old pattern: a Python callback that sets the LR every batch,
at steps_per_execution 1 and 8, and prints the ratios (b)/(a) and (c)/(a).
Goal: (b)/(a) <= 1.05.

Usage: python benchmarks/bench_lr_callbacks.py [--epochs 6] [--repeats 3]
"""

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import callbacks  # noqa: E402
from recipes.datasets import load_mnist_5k  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._t)


class PythonCyclicalLR(keras.callbacks.Callback):
    """The pattern we replace: set the LR from Python every batch."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule
        self.step = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = float(self.schedule(self.step))
        self.step += 1


def build():
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax")])
    return model


def step_time(kind, spe, x, y, epochs, batch_size):
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(keras.optimizers.SGD(0.01),
                  "sparse_categorical_crossentropy", steps_per_execution=spe)
    schedule = callbacks.CyclicalLearningRate(1e-3, 1e-2, step_size=100)
    extra = {"constant": [],
             "ours": [callbacks.ScheduleLR(schedule)],
             "python": [PythonCyclicalLR(schedule)]}[kind]
    timer = EpochTimer()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0,
              callbacks=[*extra, timer])
    steps = int(np.ceil(len(x) / batch_size))
    # The first epoch includes tracing.
    return float(np.median(timer.times[1:])) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    (x, y), _ = load_mnist_5k()
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; keras {keras.__version__}")
    print(f"MNIST-5k train (4000), MLP 784-128-10, batch {args.batch_size}, "
          f"median over epochs 2..{args.epochs}, best of {args.repeats}")
    print(f"{'spe':>4} {'constant ms':>12} {'ours ms':>9} {'python ms':>10}"
          f" {'ours/const':>11} {'python/const':>13}")
    for spe in (1, 8):
        best = {}
        # Interleave the three kinds so machine noise hits them alike.
        for _ in range(args.repeats):
            for kind in ("constant", "ours", "python"):
                t = step_time(kind, spe, x, y, args.epochs, args.batch_size)
                best[kind] = min(best.get(kind, np.inf), t)
        a, b, c = best["constant"], best["ours"], best["python"]
        print(f"{spe:>4} {a * 1e3:>12.3f} {b * 1e3:>9.3f} {c * 1e3:>10.3f}"
              f" {b / a:>11.3f} {c / a:>13.3f}")


if __name__ == "__main__":
    main()
