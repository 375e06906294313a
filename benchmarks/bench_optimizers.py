"""Accuracy after a small fixed budget, and step time relative to Adam.

For every optimizer of `recipes.optimizers.list_optimizers()` (plus SAM
around Adam) at its registry default learning rate: train a small network on
MNIST-5k (4,000 train / 1,000 validation) for `--epochs` epochs with batch
size `--batch-size`, over `--seeds` seeds, and report the mean and spread of
the validation accuracy. The step time (CPU time of the process per step,
robust to other jobs on a shared machine) is measured apart, after tracing:
epochs of the optimizer and of Adam alternate `--repeats` times and each
keeps its fastest; the ratio compares these adjacent measurements.

Usage:
    python benchmarks/bench_optimizers.py --epochs 3 --seeds 3
"""

import argparse
import time

import keras
import numpy as np

import recipes.optimizers as ro
from recipes.datasets import load_mnist_5k


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


class _EpochTimer(keras.callbacks.Callback):
    """CPU time of this process over one epoch, without `fit`'s set-up.

    CPU time rather than wall time: on a machine shared with other jobs the
    wall time mostly measures their load, the process's CPU time the work
    of the step.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.elapsed = time.process_time() - self.start


def _compile(name, seed, args):
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
    return model


def accuracy(name, seed, data, args):
    """Validation accuracy after `args.epochs` epochs."""
    (x, y), (x_val, y_val) = data
    model = _compile(name, seed, args)
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs,
              verbose=0)
    return float(model.evaluate(x_val, y_val, verbose=0)[1])


def step_time_ratio(name, data, args):
    """Best-of-`repeats` step time of `name` and of Adam, interleaved.

    The machine may be shared: alternating short timed epochs of the two
    models and keeping each one's fastest cancels most of the other jobs'
    load (the minimum is the run least disturbed).
    """
    (x, y), _ = data
    x, y = x[:args.timing_examples], y[:args.timing_examples]
    models = {n: _compile(n, 0, args) for n in (name, "adam")}
    best = {}
    for model in models.values():
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
    steps = int(np.ceil(len(x) / args.batch_size))
    timer = _EpochTimer()
    for _ in range(args.repeats):
        for n, model in models.items():
            model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0,
                      callbacks=[timer])
            elapsed = timer.elapsed / steps
            best[n] = min(best.get(n, elapsed), elapsed)
    return best[name], best[name] / best["adam"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved timing repeats (best of)")
    parser.add_argument("--timing-examples", type=int, default=4000)
    parser.add_argument("--only", nargs="*", default=None,
                        help="restrict to these registry names")
    args = parser.parse_args(argv)
    for key in ("epochs", "seeds", "batch_size", "repeats",
                "timing_examples"):
        if getattr(args, key) < 1:
            parser.error(f"Argument `--{key.replace('_', '-')}` must be >= 1."
                         f" Received: {getattr(args, key)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    data = load_mnist_5k()
    names = args.only or [*ro.list_optimizers(), "sam_adam"]
    results = {}
    for name in names:
        accuracies = [accuracy(name, seed, data, args)
                      for seed in range(args.seeds)]
        step, ratio = step_time_ratio(name, data, args)
        results[name] = (accuracies, step, ratio)
        print(f"{name:<16} acc={np.mean(accuracies):.3f} "
              f"step={step * 1e3:.2f} ms ratio={ratio:.2f}", flush=True)
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
