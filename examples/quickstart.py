"""Quickstart: train a digit classifier in one call, on CPU, in about a minute.

Fits `recipes.fit_image_classifier` with its default recipe (the small CNN
picked for 28x28 images, AdamW with warmup-cosine, label smoothing) on 4,000
real MNIST digits, evaluates it on 1,000 held-out digits and saves the model,
its history and training curves under `runs/quickstart/`.

Run:

    python examples/quickstart.py
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import recipes  # noqa: E402
from recipes.datasets import load_mnist_5k  # noqa: E402


def main(output_dir="runs/quickstart"):
    (x, y), (x_test, y_test) = load_mnist_5k(validation_size=1000)
    result = recipes.fit_image_classifier(
        (x, y), test_data=(x_test, y_test), output_dir=output_dir,
        overwrite=True, seed=0, verbose=2)
    print(f"test accuracy: {result.metrics['test_accuracy']:.4f}")
    # Both as class names; the names are saved in the model, so a reloaded
    # model predicts them too.
    print("first predictions:", result.predict(x_test[:10]).tolist())
    print("true labels:      ",
          [result.class_names[label] for label in y_test[:10]])
    reloaded = recipes.load_model(os.path.join(output_dir, "best.keras"))
    print("reloaded best.keras predicts:",
          recipes.predict_classes(reloaded, x_test[:10]).tolist())
    result.plot(os.path.join(output_dir, "quickstart_curves.png"))
    print(f"model, history, TensorBoard logs and plots in {output_dir}/")
    return result


if __name__ == "__main__":
    main()
