"""Test-time augmentation with and without, on three real data sets (CPU).

For each data set and seed the image recipe trains once (its defaults,
a few epochs); the same model is then evaluated on the validation split
without TTA, with the `"shift"` views (the image and four one-step
translations) and with the `"flip"` views (those and their mirrors).
Printed: validation accuracy and cross-entropy (without label smoothing)
per setting, and the change TTA makes, per seed and on average.

Data sets:

* MNIST-5k (`recipes.datasets.load_mnist_5k`): 4,000 / 1,000 28x28 digits.
* Digits (`recipes.datasets.load_digits_8x8`): 1,500 / 297 8x8 digits.
* Photo patches: 32x32 crops of the two photographs of
  `sklearn.datasets.load_sample_images` (a temple, a flower), each photo
  cut into 4 quadrants, the class being the quadrant (8 classes); crops
  are taken at random places inside their quadrant (1,600 / 800), so a
  shifted or mirrored crop is another crop of the same class. Trained with
  `augment="flip"`, as the recipe advises for photos.

Usage:

    python benchmarks/bench_tta.py --seeds 2 --epochs 4
    python benchmarks/bench_tta.py --data "photo patches"
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import numpy as np  # noqa: E402

from recipes import fit_image_classifier  # noqa: E402
from recipes.datasets import load_digits_8x8, load_mnist_5k  # noqa: E402

PATCH = 32


def photo_patches(n_train=1600, n_val=800, seed=0):
    """Random 32x32 crops of the sklearn sample photos, labelled by the
    quadrant (of 2 photos x 4) they come from; uint8 RGB."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    regions = []
    for photo in load_sample_images().images:
        h, w = photo.shape[0] // 2, photo.shape[1] // 2
        for top in (0, h):
            for left in (0, w):
                regions.append(photo[top:top + h, left:left + w])

    def crops(n):
        labels = rng.integers(0, len(regions), n)
        images = np.empty((n, PATCH, PATCH, 3), "uint8")
        for i, label in enumerate(labels):
            region = regions[label]
            y = rng.integers(0, region.shape[0] - PATCH + 1)
            x = rng.integers(0, region.shape[1] - PATCH + 1)
            images[i] = region[y:y + PATCH, x:x + PATCH]
        return images, labels

    return crops(n_train), crops(n_val)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--data", nargs="*", default=None,
                        help="data sets to run (default: all three)")
    args = parser.parse_args()
    datasets = {
        "MNIST-5k": (lambda s: load_mnist_5k(seed=s), "auto"),
        "digits 8x8": (lambda s: load_digits_8x8(seed=s), "auto"),
        "photo patches": (lambda s: photo_patches(seed=s), "flip"),
    }
    if args.data:
        datasets = {name: datasets[name] for name in args.data}
    settings = (False, "shift", "flip")
    print(f"{'data':<14} {'seed':>4} " + " ".join(
        f"{str(s):>15}" for s in settings) + "   (val accuracy / "
        "cross-entropy)")
    summary = {}
    for name, (load, augment) in datasets.items():
        for seed in range(args.seeds):
            (x, y), (xv, yv) = load(seed)
            start = time.monotonic()
            result = fit_image_classifier(
                (x, y), validation_data=(xv, yv), epochs=args.epochs,
                augment=augment, seed=seed, verbose=0)
            trained = time.monotonic() - start
            row, times = [], []
            for tta in settings:
                start = time.monotonic()
                scores = result.evaluate((xv, yv), tta=tta)
                times.append(time.monotonic() - start)
                row.append((scores["accuracy"], scores["cross_entropy"]))
                summary.setdefault((name, tta), []).append(row[-1])
            print(f"{name:<14} {seed:>4} " + " ".join(
                f"{a:7.4f} / {c:5.3f}" for a, c in row)
                + f"   (train {trained:.0f} s; eval " + ", ".join(
                    f"{t:.1f}" for t in times) + " s)", flush=True)
    print("\nMean change against no TTA (accuracy points, cross-entropy):")
    for name in datasets:
        base = np.mean(summary[(name, False)], axis=0)
        for tta in settings[1:]:
            mean = np.mean(summary[(name, tta)], axis=0)
            print(f"{name:<14} {tta:<6} {100 * (mean[0] - base[0]):+6.2f} "
                  f"points, cross-entropy {mean[1] - base[1]:+.3f}")


if __name__ == "__main__":
    main()
