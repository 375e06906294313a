"""The classic optimizer tour, measured on real MNIST-5k.

Same data, same model, same initial weights: batch gradient descent,
mini-batch SGD, SGD with batch size 1 (on a subset), momentum, Nesterov,
AdaGrad, RMSProp, Adam, AdamW and the optimizers of `recipes.optimizers`
(RAdam, AdaBelief, Yogi, LARS, Lookahead, Ranger, SAM). Saves the training
loss curves of every run in one PNG and prints a table of final validation
accuracy and wall time.

Usage:
    python examples/compare_optimizers.py --epochs 5 --output tour.png

Each run starts from the same initial weights. Batch GD takes one step per
epoch, mini-batch SGD `train_size / batch_size` steps, and SGD with batch
size 1 `sgd1_size` steps, so the loss is plotted against epochs (passes over
the data), the unit of compute here.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# `recipes` first: it imports TensorFlow with its start-up lines held to
# the level above.
import recipes  # noqa: E402, F401, I001
import keras  # noqa: E402
import numpy as np  # noqa: E402

import recipes.optimizers as ro  # noqa: E402
from recipes.datasets import load_mnist_5k  # noqa: E402


def build_model(kind):
    """A small MLP (fast) or CNN on 28x28x1 inputs, logits out."""
    if kind == "cnn":
        layers = [
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
        ]
    else:
        layers = [keras.layers.Flatten(),
                  keras.layers.Dense(128, activation="relu")]
    return keras.Sequential(
        [keras.Input((28, 28, 1)), *layers, keras.layers.Dense(10)]
    )


def runs(train_size, batch_size, sgd1_size):
    """(label, optimizer name, learning rate, batch size, examples, sam)."""
    tour = [
        ("batch GD", "sgd", 0.5, train_size, train_size, False),
        (f"mini-batch SGD (bs={batch_size})", "sgd", 0.05, batch_size,
         train_size, False),
        (f"SGD bs=1 ({sgd1_size} ex.)", "sgd", 0.01, 1, sgd1_size, False),
    ]
    for name in ["momentum", "nesterov", "adagrad", "rmsprop", "adam",
                 "adamw", "radam", "adabelief", "yogi", "lars",
                 "lookahead_adam", "ranger"]:
        tour.append((name, name, None, batch_size, train_size, False))
    tour.append(("SAM(adam)", "adam", None, batch_size, train_size, True))
    return tour


def run_one(label, name, learning_rate, batch_size, n, sam, data, args,
            initial_weights):
    (x, y), (x_val, y_val) = data
    keras.utils.set_random_seed(args.seed)
    model = build_model(args.model)
    model.set_weights(initial_weights)
    if sam:
        model = ro.SAM(model, rho=0.05)
    model.compile(
        optimizer=ro.get(name, learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = model.fit(x[:n], y[:n], batch_size=batch_size,
                        epochs=args.epochs, verbose=0)
    wall = time.perf_counter() - start
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    return {
        "label": label,
        "loss": history.history["loss"],
        "accuracy": float(accuracy),
        "wall": wall,
        "steps": int(model.optimizer.iterations.numpy()),
    }


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6))
    colors = plt.get_cmap("tab20").colors
    for i, r in enumerate(results):
        epochs = np.arange(1, len(r["loss"]) + 1)
        ax.plot(epochs, r["loss"], marker="o", color=colors[i % 20],
                linestyle="-" if i < 9 else "--", label=r["label"])
    ax.set_xticks(np.arange(1, len(results[0]["loss"]) + 1))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (mean over the epoch)")
    ax.set_yscale("log")
    ax.set_title("MNIST-5k: training loss by optimizer "
                 "(dashed: recipes.optimizers)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(results):
    lines = [
        "| run | steps | final train loss | val accuracy | wall time (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['label']} | {r['steps']} | {r['loss'][-1]:.3f} | "
            f"{r['accuracy']:.3f} | {r['wall']:.1f} |"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sgd1-size", type=int, default=500,
                        help="examples used by SGD with batch size 1")
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="compare_optimizers.png")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --output file")
    args = parser.parse_args(argv)
    for key in ("epochs", "train_size", "batch_size", "sgd1_size"):
        if getattr(args, key) < 1:
            parser.error(f"Argument `--{key.replace('_', '-')}` must be >= 1."
                         f" Received: {getattr(args, key)}")
    if os.path.exists(args.output) and not args.overwrite:
        parser.error(f"Argument `--output` names an existing file; pass "
                     f"--overwrite to replace it. Received: {args.output}")
    return args


def main(argv=None):
    args = parse_args(argv)
    (x, y), val = load_mnist_5k()
    data = ((x[:args.train_size], y[:args.train_size]), val)
    train_size = len(data[0][0])
    keras.utils.set_random_seed(args.seed)
    initial_weights = build_model(args.model).get_weights()
    results = []
    for spec in runs(train_size, args.batch_size,
                     min(args.sgd1_size, train_size)):
        result = run_one(*spec, data, args, initial_weights)
        print(f"{result['label']:<28} acc={result['accuracy']:.3f} "
              f"wall={result['wall']:.1f}s", flush=True)
        results.append(result)
    plot(results, args.output)
    print()
    print(table(results))
    print(f"\nLoss curves saved to {args.output}")
    return results


if __name__ == "__main__":
    main()
