"""Training script for the distribution-strategy tests (run as a subprocess).

Usage:
  python _strategy_worker.py mirrored OUT.json
      Splits the CPU into 2 logical devices, trains the same model on the
      same batches with the default strategy and with MirroredStrategy over
      both devices, and writes the largest weight difference.
  python _strategy_worker.py multi_worker OUT.json OUTPUT_DIR
      One worker of a MultiWorkerMirroredStrategy cluster described by
      TF_CONFIG runs `fit_image_classifier` (strategy "auto") with a shared
      output_dir; writes its accuracy and training counts.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

MODE = sys.argv[1]
if MODE == "mirrored":
    # Must happen before TF initializes its devices (before any op).
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402

import recipes  # noqa: E402
from recipes.datasets import load_digits_8x8  # noqa: E402


def build(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential([
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10),
        ])
        model.compile(
            keras.optimizers.Adam(1e-2),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    return model


def mirrored(out):
    (x, y), _ = load_digits_8x8()
    x, y = x[:640], y[:640]
    results = {}
    for name in ("cpu", "mirrored"):
        strategy = recipes.get_strategy(name)
        model = build(strategy)
        batch = recipes.distribute.global_batch_size(
            64 // strategy.num_replicas_in_sync, strategy
        )
        model.fit(x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0)
        results[name] = (strategy.num_replicas_in_sync, model.get_weights())
    diff = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(results["cpu"][1], results["mirrored"][1],
                        strict=True)
    )
    scale = max(float(np.max(np.abs(w))) for w in results["cpu"][1])
    with open(out, "w") as handle:
        json.dump({"replicas": [results["cpu"][0], results["mirrored"][0]],
                   "max_abs_diff": diff, "max_abs_weight": scale}, handle)


def multi_worker(out, output_dir):
    """`fit_image_classifier` as one worker of the cluster in TF_CONFIG."""
    (x, y), (x_val, y_val) = load_digits_8x8()
    result = recipes.fit_image_classifier(
        (x, y), validation_data=(x_val, y_val), backbone="small_cnn",
        epochs=5, batch_size=32, seed=0, verbose=0, output_dir=output_dir)
    accuracy = float(np.mean(result.predict(x_val) == y_val.astype(str)))
    with open(out, "w") as handle:
        json.dump({"strategy": result.config["strategy"],
                   "replicas": result.config["replicas"],
                   "global_batch_size": result.config["global_batch_size"],
                   "val_accuracy": result.metrics["val_accuracy"],
                   "accuracy": accuracy,
                   "history_epochs": len(result.history["loss"]),
                   "iterations": int(
                       result.model.optimizer.iterations.numpy())}, handle)


if __name__ == "__main__":
    if MODE == "mirrored":
        mirrored(sys.argv[2])
    else:
        multi_worker(sys.argv[2], sys.argv[3])
