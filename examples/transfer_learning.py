"""Transfer learning, measured: MNIST-5k features reused on sklearn digits.

1. Pretrain: `fit_image_classifier` trains the small CNN on 4,000 real MNIST
   digits and saves the model (`.keras`).
2. Transfer: sklearn's 8x8 digits (another scanner, another population of
   writers) are upsampled to MNIST's layout (20x20 digit in a 28x28 frame).
   With only a few labels per class, the saved MNIST model becomes the
   backbone (its classifier layer is dropped): phase 1 trains a new head on
   the frozen features, phase 2 fine-tunes the top of the backbone.
3. Baseline: the same small CNN trained from scratch on the same few labels.

Both arms see the same images (no augmentation), optimizer budget and peak
learning rate.

Both are evaluated on all remaining digits. Run:

    python examples/transfer_learning.py
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import recipes  # noqa: E402
from recipes.datasets import load_digits_8x8, load_mnist_5k  # noqa: E402


def mnist_layout(images):
    """8x8 digits -> 28x28: resized to 20x20 and centred, as MNIST is."""
    resized = tf.image.resize(images, (20, 20), method="bilinear").numpy()
    return np.pad(resized, ((0, 0), (4, 4), (4, 4), (0, 0)))


def few_labels(x, y, per_class, seed):
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class,
                                        replace=False) for c in range(10)])
    rest = np.setdiff1d(np.arange(len(y)), chosen)
    return (x[chosen], y[chosen]), (x[rest], y[rest])


def main(output_dir="runs/transfer", shots=(5, 10, 25), seed=0):
    (x, y), (xv, yv) = load_mnist_5k(validation_size=1000)
    pretrained = recipes.fit_image_classifier(
        (x, y), validation_data=(xv, yv), output_dir=f"{output_dir}/mnist",
        overwrite=True, seed=seed, verbose=0)
    backbone = f"{output_dir}/mnist/model.keras"
    print(f"pretrained on MNIST-5k: validation accuracy "
          f"{pretrained.metrics['val_accuracy']:.4f} -> {backbone}")

    (dx, dy), (dxv, dyv) = load_digits_8x8(validation_size=297)
    digits_x = mnist_layout(np.concatenate([dx, dxv]))
    digits_y = np.concatenate([dy, dyv])
    rows = []
    for per_class in shots:
        train, test = few_labels(digits_x, digits_y, per_class, seed)
        # A few labels make a few steps per epoch: both arms get about 200
        # optimizer steps at the same peak learning rate.
        epochs = max(1, 200 * 16 // (10 * per_class))
        # Same input pipeline for both arms: `augment="auto"` would shift,
        # rotate and zoom the transfer arm's images only (it treats the
        # backbone as pretrained), and this MNIST backbone, trained without
        # augmentation, gives off-distribution features for such images
        # (0.69 instead of 0.89 test accuracy with 25 labels per class,
        # head only).
        common = dict(validation_split=0.0, test_data=test, seed=seed,
                      verbose=0, early_stopping=False, batch_size=16,
                      learning_rate=5e-3, augment="none")
        transfer = recipes.fit_image_classifier(
            train, backbone=backbone, epochs=epochs // 2,
            fine_tune_epochs=epochs - epochs // 2, **common)
        scratch = recipes.fit_image_classifier(
            train, backbone="small_cnn", epochs=epochs, **common)
        rows.append((per_class, transfer.metrics["test_accuracy"],
                     scratch.metrics["test_accuracy"], len(test[1])))
        print(f"{per_class:>3} labels/class: transfer "
              f"{rows[-1][1]:.4f}, from scratch {rows[-1][2]:.4f} "
              f"(test on {rows[-1][3]} digits)", flush=True)
    print("\n| labels per class | transfer from MNIST-5k | from scratch |")
    print("| --- | --- | --- |")
    for per_class, transfer, scratch, _ in rows:
        print(f"| {per_class} | {transfer:.4f} | {scratch:.4f} |")
    return rows


if __name__ == "__main__":
    main()
