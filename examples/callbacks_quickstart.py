"""Quickstart: train a small CNN on 5,000 real MNIST digits with
keras-recipes callbacks (LR range test, one-cycle, early stopping).

    python examples/callbacks_quickstart.py [--epochs 6] \
        [--output-dir outputs/callbacks_quickstart]

Prints the suggested learning rate and the validation accuracy, and saves
the LR-finder curve, the schedule and the training curves as PNG files.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# `recipes` first: it imports TensorFlow with its start-up lines held to
# the level above.
import recipes  # noqa: E402, F401, I001
import keras  # noqa: E402
import matplotlib  # noqa: E402

import callbacks  # noqa: E402
from recipes.datasets import load_mnist_5k  # noqa: E402

matplotlib.use("Agg")


def build_model():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(10, activation="softmax"),
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output-dir",
                        default="outputs/callbacks_quickstart")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    (x, y), (x_val, y_val) = load_mnist_5k(seed=args.seed)
    model = build_model()
    model.compile(keras.optimizers.AdamW(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"], steps_per_execution=8)

    print("LR range test ...")
    finder = callbacks.find_learning_rate(model, x, y,
                                          batch_size=args.batch_size)
    lr = finder.suggestion()
    print(f"suggested learning rate: {lr:.2e}")
    finder.plot().figure.savefig(os.path.join(args.output_dir,
                                              "lr_finder.png"))

    steps = args.epochs * -(-len(x) // args.batch_size)
    one_cycle = callbacks.OneCycleLR(lr, total_steps=steps)
    callbacks.plot_schedule(one_cycle.schedule, steps).figure.savefig(
        os.path.join(args.output_dir, "schedule.png"))
    stopper = callbacks.EarlyStopping(monitor="val_accuracy", patience=3,
                                      restore_best_weights=True, verbose=1)
    history = model.fit(
        x, y, validation_data=(x_val, y_val), epochs=args.epochs,
        batch_size=args.batch_size,
        callbacks=[one_cycle, stopper, callbacks.LearningRateMonitor()])
    axes = callbacks.plot_history(history,
                                  metrics=["loss", "accuracy",
                                           "learning_rate"])
    axes[0].figure.savefig(os.path.join(args.output_dir, "history.png"))

    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    print(f"validation accuracy: {accuracy:.4f} "
          f"(1,000 held-out real MNIST digits)")
    print(f"plots saved in {args.output_dir}/")


if __name__ == "__main__":
    main()
