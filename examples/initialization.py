"""Initialization on a deep plain network: bad init vs He vs LSUV.

A 16-layer plain ReLU MLP (no normalization, no shortcuts) is trained for a
few epochs on real MNIST-5k (4,000 train / 1,000 validation digits) from
three initializations, with Adam(1e-3), batch 64:

* "bad": `RandomNormal(stddev=0.01)`: the signal shrinks ~100x per layer
  and vanishes, so gradients vanish too;
* "he": `he_normal`, the table's choice for ReLU (`initializer_for`);
* "lsuv": the bad model re-initialized by `recipes.initializers.lsuv`
  on 512 training images (orthogonal, then unit variance per layer).

It prints the training loss after each epoch, the validation accuracy and
the standard deviation of the last hidden layer's output at initialization.

Run: python examples/initialization.py [--epochs 3] [--depth 16]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# `recipes` first: it imports TensorFlow with its start-up lines held to
# the level above.
import recipes  # noqa: E402, F401, I001
import keras  # noqa: E402
import numpy as np  # noqa: E402

from recipes.datasets import load_mnist_5k  # noqa: E402
from recipes.initializers import initializer_for, lsuv  # noqa: E402


def plain_mlp(depth, width, kernel_initializer):
    """`depth` Dense+ReLU layers then a linear classifier (depth+1 kernels)."""
    layers = [keras.Input((28, 28, 1)), keras.layers.Flatten()]
    layers += [
        keras.layers.Dense(width, activation="relu",
                           kernel_initializer=kernel_initializer)
        for _ in range(depth)
    ]
    layers.append(keras.layers.Dense(10,
                                     kernel_initializer=kernel_initializer))
    return keras.Sequential(layers)


def last_hidden_std(model, x):
    probe = keras.Model(model.inputs, model.layers[-2].output)
    return float(np.std(probe.predict(x, verbose=0)))


def run(name, model, data, epochs, seed):
    (x, y), (x_val, y_val) = data
    std = last_hidden_std(model, x[:512])
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    keras.utils.set_random_seed(seed)
    history = model.fit(x, y, batch_size=64, epochs=epochs, verbose=0,
                        validation_data=(x_val, y_val))
    losses = history.history["loss"]
    accuracy = history.history["val_accuracy"][-1]
    print(f"{name:<6} init std {std:9.3g}  loss/epoch "
          + " ".join(f"{v:.3f}" for v in losses)
          + f"  val acc {accuracy:.3f}")
    return losses, accuracy


def main(epochs=3, depth=16, width=64, seed=0):
    data = load_mnist_5k()
    (x, _), _ = data
    keras.utils.set_random_seed(seed)
    bad = keras.initializers.RandomNormal(stddev=0.01, seed=seed)
    results = {"bad": run("bad", plain_mlp(depth, width, bad), data,
                          epochs, seed)}
    keras.utils.set_random_seed(seed)
    he = initializer_for("relu", seed=seed)
    results["he"] = run("he", plain_mlp(depth, width, he), data, epochs,
                        seed)
    keras.utils.set_random_seed(seed)
    model = plain_mlp(depth, width, bad)
    report = lsuv(model, x[:512], tol=0.1, max_iter=10, seed=seed)
    results["lsuv"] = run("lsuv", model, data, epochs, seed)
    print(f"LSUV: {len(report.layers)} layers, all converged: "
          f"{report.converged}, max |var - 1| = "
          f"{max(abs(r.final_variance - 1) for r in report.layers):.3f}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(epochs=args.epochs, depth=args.depth, seed=args.seed)
