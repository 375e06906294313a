"""Compress a small MNIST classifier: prune, export int8 TFLite, distill.

Run from the repository root: `python examples/compress.py`
(about a minute on 2 CPU cores).
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# `recipes` first: it imports TensorFlow with its start-up lines held to
# the level above.
import recipes  # noqa: E402, F401, I001
import keras  # noqa: E402

from recipes.datasets import load_mnist_5k  # noqa: E402


def classifier(filters=16, units=64):
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(filters, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dense(10),
    ])


def main():
    keras.utils.set_random_seed(0)
    (x, y), (x_val, y_val) = load_mnist_5k()
    model = classifier()
    model.compile("adam",
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    print("dense accuracy:", model.evaluate(x_val, y_val, verbose=0)[1])

    # 1. Prune to 80% (global threshold) while fine-tuning 2 epochs.
    recipes.prune(model, target_sparsity=0.8, scope="global",
                  end_step=125, frequency=25)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    recipes.strip_pruning(model)
    print(recipes.sparsity_report(model))
    print("pruned accuracy:", model.evaluate(x_val, y_val, verbose=0)[1])

    # 2. Full-integer TFLite export, measured by running the file.
    with tempfile.TemporaryDirectory() as directory:
        report = recipes.export_tflite(
            model, os.path.join(directory, "model.tflite"),
            quantization="int8", representative_data=x,
            validation_data=(x_val, y_val),
        )
    print(f"int8 TFLite: {report.size_bytes / 1024:.1f} KB, accuracy "
          f"{report.accuracy:.3f}, {report.latency_ms:.3f} ms/example")

    # 3. Distill the pruned model into a student 10x smaller.
    result = recipes.distill(model, classifier(filters=4, units=16),
                             (x, y), validation_data=(x_val, y_val),
                             epochs=3)
    print("distillation:", result.metrics)


if __name__ == "__main__":
    main()
