"""Draw the documentation's pictures from real runs; commit the PNGs.

Run from the repository root (about two minutes on two CPU cores):

    PYTHONPATH=. python docs/make_figures.py            # all figures
    PYTHONPATH=. python docs/make_figures.py history    # some of them

Figures (in `docs/images/`):

* `schedules.png`: the named schedules of `callbacks.schedules`, drawn
  from their own values over 1,000 steps.
* `lr_range_test.png`: `callbacks.find_learning_rate` on an MLP and 2,000
  real MNIST digits, with the suggested learning rate marked.
* `history.png`: that MLP trained 6 epochs with `callbacks.OneCycleLR` at
  the suggested rate, learning rate logged by `LearningRateMonitor`.
* `tuning.png` and `tuning_table.md`: a small random search of
  `recipes.tune_image_classifier` (4 trials of up to 2 epochs, 1,000
  digits): every trial's configuration and score, and the best so far.

Runs are seeded, but timings and thread scheduling make the last digits of
the training figures vary between machines.
"""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "images")


def _save(fig, name):
    os.makedirs(IMAGES, exist_ok=True)
    path = os.path.join(IMAGES, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print("wrote", os.path.relpath(path))


def schedules():
    import callbacks

    steps = 1000
    named = [
        callbacks.OneCycleSchedule(1e-2, total_steps=steps),
        callbacks.WarmupCosineDecay(1e-2, total_steps=steps,
                                    warmup_steps=100),
        callbacks.CyclicalLearningRate(1e-3, 1e-2, step_size=125,
                                       mode="triangular2"),
        callbacks.StepDecay(1e-2, factor=0.5, step_size=250),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(9, 5.5), sharex=True)
    for schedule, ax in zip(named, axes.flat, strict=True):
        callbacks.plot_schedule(schedule, steps, ax=ax)
        ax.set_title(type(schedule).__name__)
        ax.legend().remove()
    _save(fig, "schedules.png")


def _mlp():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-3),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def lr_range_test_and_history():
    import callbacks
    from recipes.datasets import load_mnist_5k

    (x, y), (x_val, y_val) = load_mnist_5k()
    x, y = x[:2000], y[:2000]
    model = _mlp()
    found = callbacks.find_learning_rate(model, x, y, verbose=0)
    lr = found.suggestion()
    ax = found.plot()
    ax.set_title(f"LR range test, 2,000 MNIST digits: suggestion {lr:.2e}")
    _save(ax.figure, "lr_range_test.png")

    epochs = 6
    history = model.fit(
        x, y, validation_data=(x_val, y_val), epochs=epochs, verbose=0,
        callbacks=[callbacks.OneCycleLR(lr, total_steps=epochs * len(x) // 32),
                   callbacks.LearningRateMonitor()])
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
    callbacks.plot_history(history, ["loss", "accuracy", "learning_rate"],
                           ax=axes)
    fig.suptitle(f"OneCycleLR at {lr:.2e}, MLP on 2,000 MNIST digits")
    _save(fig, "history.png")


def tuning():
    import recipes
    from recipes.datasets import load_mnist_5k

    (x, y), val = load_mnist_5k()
    with tempfile.TemporaryDirectory() as directory:
        found = recipes.tune_image_classifier(
            (x[:1000], y[:1000]), validation_data=val, tuner="random",
            max_trials=4, max_epochs=2, directory=directory,
            project_name="figures", seed=0)
    columns = ["trial_id", "score", "epochs_run", "optimizer",
               "learning_rate_scale", "schedule", "batch_size"]

    def cell(value):
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    rows = [[cell(row.get(c)) for c in columns] for row in found.table]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 5.5), gridspec_kw={"height_ratios": [1, 1.2]})
    top.axis("off")
    table = top.table(cellText=rows, colLabels=columns, loc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    found.table.plot(bottom)
    bottom.set_title("random search, 1,000 MNIST digits, val_accuracy")
    _save(fig, "tuning.png")
    lines = ["| " + " | ".join(columns) + " |",
             "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    with open(os.path.join(IMAGES, "tuning_table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", os.path.relpath(os.path.join(IMAGES, "tuning_table.md")))


FIGURES = {"schedules": schedules, "history": lr_range_test_and_history,
           "tuning": tuning}


def main(names):
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        raise SystemExit(f"Unknown figures {unknown}; choose from "
                         f"{sorted(FIGURES)}.")
    for name in names or FIGURES:
        FIGURES[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
