"""Gradual unfreezing against the two-phase default, on the transfer-learning
example's data (MNIST-5k backbone, few labels of sklearn's digits).

Same runs as `examples/transfer_learning.py` (transfer arm), except that
phase 2 fine-tunes every backbone layer, unfrozen at once (default) or
gradually (`unfreeze="gradual"`). Prints test accuracy per labels per class
and seed.

    python benchmarks/bench_gradual_unfreezing.py
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import numpy as np  # noqa: E402

import recipes  # noqa: E402
from examples.transfer_learning import few_labels, mnist_layout  # noqa: E402
from recipes.datasets import load_digits_8x8, load_mnist_5k  # noqa: E402


def main(output_dir="runs/gradual", shots=(10, 25), seeds=(0, 1)):
    (x, y), (xv, yv) = load_mnist_5k(validation_size=1000)
    backbone = f"{output_dir}/mnist/model.keras"
    if not os.path.isfile(backbone):
        recipes.fit_image_classifier(
            (x, y), validation_data=(xv, yv),
            output_dir=f"{output_dir}/mnist", seed=0, verbose=0)
    (dx, dy), (dxv, dyv) = load_digits_8x8(validation_size=297)
    digits_x = mnist_layout(np.concatenate([dx, dxv]))
    digits_y = np.concatenate([dy, dyv])
    print("| labels per class | seed | at once | gradual |")
    print("| --- | --- | --- | --- |")
    for per_class in shots:
        for seed in seeds:
            train, test = few_labels(digits_x, digits_y, per_class, seed)
            epochs = max(1, 200 * 16 // (10 * per_class))
            common = dict(validation_split=0.0, test_data=test, seed=seed,
                          verbose=0, early_stopping=False, batch_size=16,
                          learning_rate=5e-3, augment="none",
                          backbone=backbone, epochs=epochs // 2,
                          fine_tune_epochs=epochs - epochs // 2,
                          # All four layers with weights, so that gradual
                          # unfreezing has stages (the example's "auto"
                          # unfreezes one layer: both arms would be equal).
                          fine_tune_layers="all")
            row = [recipes.fit_image_classifier(
                train, unfreeze=mode, **common).metrics["test_accuracy"]
                for mode in ("at_once", "gradual")]
            print(f"| {per_class} | {seed} | {row[0]:.4f} | {row[1]:.4f} |",
                  flush=True)


if __name__ == "__main__":
    main()
