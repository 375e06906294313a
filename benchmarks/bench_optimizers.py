"""Accuracy after a small fixed budget, and step time relative to Adam.

For every optimizer of `recipes.optimizers.list_optimizers()` (plus SAM
around Adam) at its registry default learning rate: train a small network on
MNIST-5k (4,000 train / 1,000 validation) for `--epochs` epochs with batch
size `--batch-size`, over `--seeds` seeds, and report the mean and spread of
the validation accuracy. The step time is the median time of the epochs
after the first (the first includes tracing) divided by the steps per epoch;
the ratio is taken against an Adam run timed right after each optimizer
(the adjacent measurement, so a shared machine's varying load cancels).

Usage:
    python benchmarks/bench_optimizers.py --epochs 3 --seeds 3
"""

import argparse
import statistics
import time

import keras
import numpy as np

import recipes.optimizers as ro
from recipes.datasets import load_mnist_5k


class _EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def build_model(kind):
    if kind == "cnn":
        body = [
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
        ]
    else:
        body = [keras.layers.Flatten(),
                keras.layers.Dense(128, activation="relu")]
    return keras.Sequential(
        [keras.Input((28, 28, 1)), *body, keras.layers.Dense(10)]
    )


def measure(name, seed, data, args):
    (x, y), (x_val, y_val) = data
    keras.utils.set_random_seed(seed)
    model = build_model(args.model)
    sam = name == "sam_adam"
    if sam:
        model = ro.SAM(model, rho=0.05)
    model.compile(
        optimizer=ro.get("adam" if sam else name),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    timer = _EpochTimer()
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs,
              verbose=0, callbacks=[timer])
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    steps_per_epoch = int(np.ceil(len(x) / args.batch_size))
    step_time = statistics.median(timer.times[1:] or timer.times)
    return float(accuracy), step_time / steps_per_epoch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--only", nargs="*", default=None,
                        help="restrict to these registry names")
    args = parser.parse_args(argv)
    for key in ("epochs", "seeds", "batch_size"):
        if getattr(args, key) < 1:
            parser.error(f"Argument `--{key.replace('_', '-')}` must be >= 1."
                         f" Received: {getattr(args, key)}")
    if args.epochs < 2:
        parser.error("Argument `--epochs` must be >= 2 (the first epoch "
                     f"includes tracing). Received: {args.epochs}")
    return args


def main(argv=None):
    args = parse_args(argv)
    data = load_mnist_5k()
    names = args.only or [*ro.list_optimizers(), "sam_adam"]
    results = {}
    for name in names:
        runs = [measure(name, seed, data, args) for seed in range(args.seeds)]
        accuracies = [a for a, _ in runs]
        step = statistics.median(t for _, t in runs)
        # The machine may be shared: time Adam right after, under the same
        # load, and take the ratio of the two adjacent measurements.
        _, adam_step = measure("adam", 0, data, args)
        results[name] = (accuracies, step, step / adam_step)
        print(f"{name:<16} acc={np.mean(accuracies):.3f} "
              f"step={step * 1e3:.2f} ms ratio={step / adam_step:.2f}",
              flush=True)
    print()
    print(f"MNIST-5k, {args.model}, {args.epochs} epochs, batch "
          f"{args.batch_size}, {args.seeds} seeds, default learning rates")
    print()
    print("| optimizer | default LR | val accuracy (mean ± std) | min | "
          "step time (ms) | vs Adam |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (accuracies, step, ratio) in results.items():
        lr = ro.default_learning_rate("adam" if name == "sam_adam" else name)
        print(f"| {name} | {lr:g} | {np.mean(accuracies):.3f} ± "
              f"{np.std(accuracies):.3f} | {min(accuracies):.3f} | "
              f"{step * 1e3:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
