"""Benchmarks of `recipes.fit_image_classifier` on real MNIST-5k (CPU).

Three measurements, each a ratio taken within one run:

1. Overhead: the recipe (small_cnn, fixed epochs, no early stopping, no
   output_dir) against a hand-written `model.fit` of the same model,
   optimizer, schedule and data pipeline, in alternating order. Goal:
   <= 1.03. Run-to-run noise on a shared 2-core machine is several
   percent, so the script also reports the share of the recipe's time
   spent outside compile + fit (its own work), timed within each run.
2. Time to accuracy on MNIST-5k (4,000 train / 1,000 validation): wall time
   from the call until validation accuracy first reaches 97.5%, recipe
   defaults against textbook Keras CNNs with Keras defaults (Adam 1e-3
   constant, batch 32, up to 30 epochs); median over seeds. Goal: <= 0.33x,
   and 98% reached in >= 4 of 5 seeds. Two textbooks: the keras.io "Simple
   MNIST convnet" architecture (conv 32 - pool - conv 64 - pool - dropout
   0.5 - softmax), the one Keras users start from, and the smaller CNN of
   our test suite (conv 16 - pool - conv 32 - pool - dense 64), a
   stronger, cheaper baseline at this data size.
3. Input pipeline: epochs fed by the recipe's `tf.data` pipeline against the
   same epochs fed from in-memory NumPy arrays. Goal: <= 1.10. Also the
   feeding cost alone: the same comparison for a linear model, where the
   input dominates.

Usage:

    python benchmarks/bench_image_classifier.py --seeds 5
    python benchmarks/bench_image_classifier.py --seeds 0   # parts 1, 3
    python benchmarks/bench_image_classifier.py --repeats 0  # part 2
"""

import argparse
import inspect
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from recipes import _optimization, _phases, fit_image_classifier  # noqa: E402
from recipes.backbones import small_cnn  # noqa: E402
from recipes.data import make_pipeline  # noqa: E402
from recipes.datasets import load_mnist_5k  # noqa: E402
from recipes.image_classifier import (  # noqa: E402
    _EVAL_BATCH,
    SCRATCH_LR_SCALE,
    build_image_classifier,
)

# The test suite's small CNN (softmax output, no BatchNormalization).
from tests.helpers import small_cnn as test_suite_cnn  # noqa: E402

# The recipe's defaults, read from its signature so the hand-written
# comparisons below follow them.
_DEFAULTS = {name: parameter.default for name, parameter in
             inspect.signature(fit_image_classifier).parameters.items()}
BATCH = _DEFAULTS["batch_size"]

THRESHOLDS = (0.975, 0.98)


class EpochClock(keras.callbacks.Callback):
    """Records (seconds since `start`, val_accuracy) at each epoch end."""

    def __init__(self, start):
        super().__init__()
        self.start = start
        self.points = []

    def on_epoch_end(self, epoch, logs=None):
        self.points.append((time.perf_counter() - self.start,
                            float(logs["val_accuracy"])))


def first_reach(points, threshold):
    """(epoch, seconds) when `threshold` is first reached, else None."""
    for epoch, (seconds, accuracy) in enumerate(points, start=1):
        if accuracy >= threshold:
            return epoch, seconds
    return None


def keras_io_convnet(num_classes=10, input_shape=(28, 28, 1)):
    """The architecture of keras.io's "Simple MNIST convnet" example."""
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])


TEXTBOOKS = {"keras_io_convnet": keras_io_convnet,
             "test_suite_cnn": test_suite_cnn}


def run_textbook(data, seed, max_epochs, builder):
    (x, y), (xv, yv) = data
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model = builder()
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])
    clock = EpochClock(start)
    stop = _StopAt(max(THRESHOLDS))
    model.fit(x, y, batch_size=32, epochs=max_epochs,
              validation_data=(xv, yv), verbose=0, callbacks=[clock, stop])
    return clock.points


class _StopAt(keras.callbacks.Callback):
    """Ends the textbook run once the highest threshold is reached."""

    def __init__(self, threshold):
        super().__init__()
        self.threshold = threshold

    def on_epoch_end(self, epoch, logs=None):
        if logs["val_accuracy"] >= self.threshold:
            self.model.stop_training = True


def run_recipe(data, seed):
    (x, y), (xv, yv) = data
    keras.backend.clear_session()
    start = time.perf_counter()
    clock = EpochClock(start)
    result = fit_image_classifier((x, y), validation_data=(xv, yv),
                                  callbacks=[clock], seed=seed, verbose=0)
    return clock.points, result


def time_to_accuracy(data, seeds, max_epochs):
    rows = []
    for seed in seeds:
        runs = [("recipe", run_recipe(data, seed)[0])] + [
            (name, run_textbook(data, seed, max_epochs, builder))
            for name, builder in TEXTBOOKS.items()]
        for name, points in runs:
            rows.append((name, seed, points))
            hit = first_reach(points, THRESHOLDS[0])
            print(f"  {name:16s} seed {seed}: 97.5% at "
                  f"{'-' if hit is None else f'epoch {hit[0]}, {hit[1]:.1f} s'}"
                  f"; 98% {'yes' if first_reach(points, 0.98) else 'no'}; "
                  f"best {max(a for _, a in points):.4f} "
                  f"in {len(points)} epochs, {points[-1][0]:.1f} s",
                  flush=True)
    return rows


def _same_setup(data, epochs, seed):
    """The recipe's model, optimizer (with its weight average) and
    pipeline, wired by hand."""
    (x, y), (xv, yv) = data
    keras.utils.set_random_seed(seed)
    model = build_image_classifier(small_cnn((28, 28, 1)), "unit",
                                   input_shape=(28, 28, 1), value_range=1.0,
                                   num_classes=10)
    steps = int(np.ceil(len(x) / BATCH))
    total = epochs * steps
    peak = _optimization.default_learning_rate(_DEFAULTS["optimizer"],
                                           BATCH) * SCRATCH_LR_SCALE
    schedule = _optimization.make_schedule(
        _DEFAULTS["schedule"], peak, total,
        round(_DEFAULTS["warmup_fraction"] * total))
    model.compile(_optimization.make_optimizer(_DEFAULTS["optimizer"], schedule,
                                           _DEFAULTS["weight_decay"],
                                           _DEFAULTS["ema_momentum"]),
                  keras.losses.CategoricalCrossentropy(
                      label_smoothing=_DEFAULTS["label_smoothing"]),
                  metrics=[keras.metrics.CategoricalAccuracy(
                      name="accuracy")],
                  steps_per_execution=min(32, steps))
    return model


class _FitTimer:
    """Times the recipe's `fit` (its `_phases.fit_phase`) from outside."""

    def __init__(self):
        self.seconds = 0.0
        self._fit_phase = _phases.fit_phase

    def __enter__(self):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return self._fit_phase(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        _phases.fit_phase = timed
        return self

    def __exit__(self, *exc):
        _phases.fit_phase = self._fit_phase


def _run_recipe_fixed(data, epochs, seed):
    """(total seconds, seconds inside compile + fit) of a fixed-epoch run."""
    (x, y), (xv, yv) = data
    keras.backend.clear_session()
    with _FitTimer() as timer:
        start = time.perf_counter()
        fit_image_classifier((x, y), validation_data=(xv, yv),
                             epochs=epochs, early_stopping=False, seed=seed,
                             verbose=0)
        total = time.perf_counter() - start
    return total, timer.seconds


def _pipeline(x, y, *, training, seed=None):
    """The recipe's `tf.data` pipeline of one split, no caching (validation
    in the recipe's evaluation batches)."""
    batch = BATCH if training else max(BATCH, _EVAL_BATCH)
    return make_pipeline(tf.data.Dataset.from_tensor_slices((x, y)),
                         num_classes=10, batch_size=batch, training=training,
                         num_examples=len(x), cache=False, seed=seed)


def _run_hand_written(data, epochs, seed):
    (x, y), (xv, yv) = data
    keras.backend.clear_session()
    start = time.perf_counter()
    model = _same_setup(data, epochs, seed)
    train = _pipeline(x, y, training=True, seed=seed)
    val = _pipeline(xv, yv, training=False)
    # What a Keras user writes to validate the weight average, as the
    # recipe does.
    swap = ([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)]
            if _DEFAULTS["ema_momentum"] else [])
    model.fit(train, validation_data=val, epochs=epochs, shuffle=False,
              verbose=0, callbacks=swap)
    return time.perf_counter() - start


def overhead(data, epochs, repeats):
    """Median recipe / hand-written time, and the median share of the
    recipe's time spent outside compile + fit (data checks, model building,
    final evaluation), which machine noise between runs does not blur."""
    # Warm the process up first (TF's first graph and thread pools), and
    # alternate which side runs first: a fixed order biases the ratio by
    # a few percent on a noisy machine.
    _run_recipe_fixed(data, 1, seed=repeats)
    ratios, outside = [], []
    for repeat in range(repeats):
        if repeat % 2 == 0:
            recipe, fit = _run_recipe_fixed(data, epochs, repeat)
            hand = _run_hand_written(data, epochs, repeat)
        else:
            hand = _run_hand_written(data, epochs, repeat)
            recipe, fit = _run_recipe_fixed(data, epochs, repeat)
        ratios.append(recipe / hand)
        outside.append((recipe - fit) / fit)
        print(f"  repeat {repeat}: recipe {recipe:.2f} s ({recipe - fit:.2f} "
              f"s outside fit), hand-written {hand:.2f} s, ratio "
              f"{recipe / hand:.3f}", flush=True)
    return statistics.median(ratios), statistics.median(outside)


def pipeline_vs_memory(data, epochs, repeats):
    (x, y), (xv, yv) = data
    onehot = np.eye(10, dtype="float32")[y]
    ratios = []
    for repeat in range(repeats):
        times = {}
        kinds = ("pipeline", "memory")
        for kind in kinds if repeat % 2 == 0 else kinds[::-1]:
            keras.backend.clear_session()
            model = _same_setup(data, epochs + 1, repeat)
            if kind == "pipeline":
                feed = dict(x=_pipeline(x, y, training=True, seed=repeat))
            else:
                feed = dict(x=x, y=onehot, batch_size=BATCH, shuffle=True)
            model.fit(epochs=1, verbose=0, **feed)  # traces
            start = time.perf_counter()
            model.fit(epochs=epochs, verbose=0, **feed)
            times[kind] = time.perf_counter() - start
        ratios.append(times["pipeline"] / times["memory"])
        print(f"  repeat {repeat}: pipeline {times['pipeline']:.2f} s, "
              f"in-memory {times['memory']:.2f} s, ratio {ratios[-1]:.3f}",
              flush=True)
    return statistics.median(ratios)


def feed_only(data, repeats):
    """Pipeline / in-memory arrays for a linear model (input-bound): the
    feeding cost itself, which the noise of training runs hides."""
    (x, y), _ = data
    onehot = np.eye(10, dtype="float32")[y]
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input(x.shape[1:]),
                              keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    model.compile("sgd", "mse", steps_per_execution=min(32, len(x) // BATCH))
    feeds = dict(pipeline=dict(x=_pipeline(x, y, training=True, seed=0)),
                 memory=dict(x=x, y=onehot, batch_size=BATCH, shuffle=True))
    for feed in feeds.values():
        model.fit(epochs=1, verbose=0, **feed)  # traces
    ratios = []
    for repeat in range(repeats):
        times = {}
        for kind, feed in feeds.items():
            start = time.perf_counter()
            model.fit(epochs=3, verbose=0, **feed)
            times[kind] = time.perf_counter() - start
        ratios.append(times["pipeline"] / times["memory"])
        print(f"  repeat {repeat}: linear model, 3 epochs: pipeline "
              f"{times['pipeline']:.3f} s, in-memory {times['memory']:.3f} "
              f"s, ratio {ratios[-1]:.3f}", flush=True)
    return statistics.median(ratios)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5,
                        help="seeds of part 2 (0 skips it)")
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5,
                        help="repeats of parts 1 and 3 (0 skips them)")
    args = parser.parse_args()
    data = load_mnist_5k(validation_size=1000)

    over = pipe = outside = feed = float("nan")
    if args.repeats:
        print("1. Overhead: recipe vs hand-written fit (5 epochs)")
        over, outside = overhead(data, 5, args.repeats)
        print("3. Input pipeline vs in-memory arrays (5 epochs, traced)")
        pipe = pipeline_vs_memory(data, 5, args.repeats)
        feed = feed_only(data, args.repeats)
    if not args.seeds:
        print("\n| measurement | result | goal |")
        print("| --- | --- | --- |")
        _print_overhead_rows(args.repeats, over, outside, pipe, feed)
        return
    print("2. Time to accuracy on MNIST-5k")
    rows = time_to_accuracy(data, range(args.seeds), args.max_epochs)

    summary = {}
    for name in ("recipe", *TEXTBOOKS):
        runs = [points for n, _, points in rows if n == name]
        hits = [first_reach(p, THRESHOLDS[0]) for p in runs]
        reached = [h for h in hits if h is not None]
        # A seed that never reaches the threshold counts as infinitely slow
        # (dropping it would flatter the method that misses).
        summary[name] = dict(
            seconds=statistics.median(
                float("inf") if h is None else h[1] for h in hits),
            epochs=statistics.median(
                float("inf") if h is None else h[0] for h in hits),
            reached=len(reached),
            reached98=sum(first_reach(p, 0.98) is not None for p in runs),
            best=statistics.median(max(a for _, a in p) for p in runs),
            runs=len(runs))
    print("\n| measurement | result | goal |")
    print("| --- | --- | --- |")
    for name in ("recipe", *TEXTBOOKS):
        s = summary[name]
        print(f"| {name}: median time to 97.5% val. accuracy | "
              f"{s['seconds']:.1f} s ({s['epochs']:.0f} epochs; reached in "
              f"{s['reached']}/{s['runs']} seeds) | |")
        print(f"| {name}: seeds reaching 98% / median best accuracy | "
              f"{s['reached98']}/{s['runs']} / {s['best']:.4f} | "
              f"{'>= 4 of 5' if name == 'recipe' else ''} |")
    for name in TEXTBOOKS:
        ratio = summary["recipe"]["seconds"] / summary[name]["seconds"]
        print(f"| time-to-97.5% ratio recipe / {name} | {ratio:.2f}x | "
              "<= 0.33x |")
    _print_overhead_rows(args.repeats, over, outside, pipe, feed)


def _print_overhead_rows(repeats, over, outside, pipe, feed):
    print(f"| overhead: recipe / hand-written fit (median of {repeats}) | "
          f"{over:.3f} | <= 1.03 |")
    print(f"| recipe time outside compile + fit / fit time (median of "
          f"{repeats}) | {outside:.3f} | |")
    print(f"| input pipeline / in-memory arrays (median of {repeats}) | "
          f"{pipe:.3f} | <= 1.10 |")
    print(f"| feeding alone (linear model): pipeline / in-memory arrays "
          f"(median of {repeats}) | {feed:.3f} | |")


if __name__ == "__main__":
    main()
