"""Defaults on data they were not tuned on: the image recipe vs a textbook.

One command runs `recipes.fit_image_classifier` at its defaults (no
per-data-set argument; `epochs="auto"` sets the epochs from the data
set's size) against the keras.io "Simple MNIST convnet" recipe
(conv 32 - pool - conv 64 - pool - dropout 0.5 - softmax; Adam 1e-3, batch
32, 30 epochs, inputs scaled to [0, 1]) on four real image data sets that
ship inside Python packages (`recipes.datasets`):

* `mnist5k`: 4,000 / 1,000 real MNIST digits (28x28, 10 classes);
* `digits8x8`: 1,500 / 297 real 8x8 digits (10 classes);
* `textures`: 480 / 240 grayscale 32x32 patches of brick, grass and gravel;
* `scenes`: 384 / 168 RGB 32x32 patches of eight photographs.

The texture and scene sets take their validation patches from regions of
each image that no training patch touches.

Seeds are interleaved (recipe then textbook for one seed, then the next
seed) so machine load hits both sides alike, and every ratio is taken
within one run. Per data set it prints the medians over seeds of:

* the textbook's final accuracy (epoch 30) and its best over the 30 epochs;
* the recipe's final accuracy and its number of optimizer steps;
* the wall time of each to first reach the textbook's final accuracy (of
  the same seed) and their ratio (recipe / textbook);

and whether the goals hold: recipe final accuracy >= textbook best, and
time ratio <= 0.5.

Usage:

    python benchmarks/suite.py                  # 3 seeds, all data sets
    python benchmarks/suite.py --seeds 1 --data scenes textures
    python benchmarks/suite.py --first-seed 3   # seeds 3-5
"""

import argparse
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import keras  # noqa: E402

from recipes import datasets, fit_image_classifier  # noqa: E402

DATA = {
    "mnist5k": datasets.load_mnist_5k,
    "digits8x8": datasets.load_digits_8x8,
    "textures": datasets.load_textures,
    "scenes": datasets.load_scene_patches,
}


class EpochClock(keras.callbacks.Callback):
    """Records (seconds since `start`, val_accuracy) at each epoch end."""

    def __init__(self, start):
        super().__init__()
        self.start = start
        self.points = []

    def on_epoch_end(self, epoch, logs=None):
        self.points.append((time.perf_counter() - self.start,
                            float(logs["val_accuracy"])))


def keras_io_convnet(input_shape, num_classes):
    """The keras.io "Simple MNIST convnet" architecture. Its two 3x3
    convolutions and pools need at least 10x10 inputs, so 8x8 digits get
    'same' padding (the only change)."""
    padding = "same" if min(input_shape[:2]) < 10 else "valid"
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(32, 3, activation="relu", padding=padding),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu", padding=padding),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])


def run_textbook(data, seed, epochs):
    (x, y), (xv, yv) = data
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model = keras_io_convnet(x.shape[1:], int(y.max()) + 1)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])
    clock = EpochClock(start)
    model.fit(x, y, batch_size=32, epochs=epochs, validation_data=(xv, yv),
              verbose=0, callbacks=[clock])
    return clock.points


def run_recipe(data, seed):
    (x, y), (xv, yv) = data
    keras.backend.clear_session()
    start = time.perf_counter()
    clock = EpochClock(start)
    result = fit_image_classifier((x, y), validation_data=(xv, yv),
                                  callbacks=[clock], seed=seed, verbose=0)
    seconds = time.perf_counter() - start
    steps = len(result.history["loss"]) * math.ceil(
        len(x) / result.config["batch_size"])
    return (clock.points, result.metrics["val_accuracy"], steps, seconds,
            result.config["epochs"])


def first_reach(points, threshold):
    """Seconds when `threshold` is first reached, else `inf`."""
    for seconds, accuracy in points:
        if accuracy >= threshold - 1e-9:
            return seconds
    return math.inf


def run_seed(name, data, seed, epochs):
    recipe_points, recipe_final, steps, recipe_seconds, epochs = run_recipe(
        data, seed)
    book_points = run_textbook(data, seed, epochs)
    book_final = book_points[-1][1]
    book_time = first_reach(book_points, book_final)
    recipe_time = first_reach(recipe_points, book_final)
    row = dict(book_final=book_final,
               book_best=max(a for _, a in book_points),
               book_seconds=book_points[-1][0], recipe_final=recipe_final,
               recipe_steps=steps, recipe_seconds=recipe_seconds,
               ratio=recipe_time / book_time)
    print(f"  {name:9s} seed {seed}: textbook final {book_final:.4f} "
          f"(best {row['book_best']:.4f}, {row['book_seconds']:.1f} s); "
          f"recipe final {recipe_final:.4f} in {steps} steps "
          f"({epochs} epochs planned), "
          f"{recipe_seconds:.1f} s; time to textbook final: recipe "
          f"{recipe_time:.1f} s / textbook {book_time:.1f} s = "
          f"{row['ratio']:.2f}x", flush=True)
    return row


def summarize(rows):
    print("\n| data set | textbook final | textbook best | recipe final | "
          "recipe steps | time ratio | accuracy goal | time goal |")
    print("|---|---|---|---|---|---|---|---|")
    for name, seeds in rows.items():
        med = {key: statistics.median(row[key] for row in seeds)
               for key in seeds[0]}
        wins = sum(row["recipe_final"] >= row["book_best"] for row in seeds)
        fast = sum(row["ratio"] <= 0.5 for row in seeds)
        accurate = med["recipe_final"] >= med["book_best"]
        print(f"| {name} | {med['book_final']:.4f} | {med['book_best']:.4f} "
              f"| {med['recipe_final']:.4f} | {med['recipe_steps']:.0f} | "
              f"{med['ratio']:.2f}x | "
              f"{'met' if accurate else 'MISSED'}"
              f" ({wins}/{len(seeds)} seeds) | "
              f"{'met' if med['ratio'] <= 0.5 else 'MISSED'} "
              f"({fast}/{len(seeds)} seeds) |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30,
                        help="epochs of the textbook recipe")
    parser.add_argument("--data", nargs="+", choices=sorted(DATA),
                        default=list(DATA))
    args = parser.parse_args()
    data = {name: DATA[name]() for name in args.data}
    rows = {name: [] for name in args.data}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name in args.data:
            rows[name].append(run_seed(name, data[name], seed, args.epochs))
    summarize(rows)


if __name__ == "__main__":
    main()
