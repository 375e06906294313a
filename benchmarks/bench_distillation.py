"""Does `recipes.distill` at its defaults beat the student trained alone?

For each real data set of `recipes.datasets` and each seed (seeds
interleaved: all data sets for seed 0, then seed 1, ...), one teacher (a
small CNN) is trained, then each student starts from the same initial
weights and is trained three ways through `recipes.distill`:

* alone: `alpha=1.0` (labels only, the teacher is not run);
* defaults: `recipes.distill` at its defaults;
* old defaults: `temperature=4, alpha=0.1, epochs=5` (the defaults before
  issue 20).

Each run passes `compare_alone=False` (it changes nothing in the student's
training; the alone run is the explicit first column).

It prints validation accuracies and `defaults - alone` in points, then a
summary per student. Everything is measured in one run.

    PYTHONPATH=. python benchmarks/bench_distillation.py --seeds 2
"""

import argparse
import math
import time

import keras
import numpy as np

import recipes
from recipes import datasets

DATA = {
    "digits8x8": datasets.load_digits_8x8,
    "mnist5k": datasets.load_mnist_5k,
    "textures": datasets.load_textures,
    "scenes": datasets.load_scene_patches,
}

OLD_DEFAULTS = {"temperature": 4.0, "alpha": 0.1, "epochs": 5}


def classifier(input_shape, num_classes, filters=(), units=None):
    """Conv(3x3, same, relu) + max-pool per filter count, optional Dense
    relu, then Dense logits."""
    layers = [keras.Input(input_shape)]
    for count in filters:
        layers += [keras.layers.Conv2D(count, 3, padding="same",
                                       activation="relu"),
                   keras.layers.MaxPooling2D()]
    layers.append(keras.layers.Flatten())
    if units:
        layers.append(keras.layers.Dense(units, activation="relu"))
    layers.append(keras.layers.Dense(num_classes))
    return keras.Sequential(layers)


STUDENTS = {
    "mlp16": lambda shape, k: classifier(shape, k, units=16),
    "tiny_cnn": lambda shape, k: classifier(shape, k, filters=(4, 8)),
}


def train_teacher(x, y, num_classes):
    teacher = classifier(x.shape[1:], num_classes, (16, 32), 64)
    teacher.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    epochs = math.ceil(1000 / math.ceil(len(x) / 32))
    teacher.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    return teacher


def confidence(model, x):
    logits = model.predict(x, verbose=0)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    return float(np.mean(probs.max(axis=-1)))


def parse_config(text):
    """`name:key=value,key=value` -> (name, kwargs)."""
    name, _, rest = text.partition(":")
    kwargs = {}
    for item in filter(None, rest.split(",")):
        key, value = item.split("=")
        kwargs[key] = value if value == "auto" else float(value)
        if key == "epochs" and value != "auto":
            kwargs[key] = int(value)
    return name, kwargs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--datasets", nargs="+", default=list(DATA))
    parser.add_argument("--students", nargs="+", default=list(STUDENTS))
    parser.add_argument(
        "--configs", nargs="+",
        default=["alone:alpha=1", "defaults:",
                 "old:" + ",".join(f"{k}={v}"
                                   for k, v in OLD_DEFAULTS.items())],
        help="name:key=value,... passed to distill; the first is the "
             "reference, the second is compared with it")
    args = parser.parse_args()
    configs = [parse_config(c) for c in args.configs]
    names = [name for name, _ in configs]
    rows = []
    print("| data set | seed | teacher (train conf.) | student | "
          + " | ".join(names) + f" | {names[1]} - {names[0]} | s |")
    print("|---|---:|---|---|" + "---:|" * len(names) + "---:|---:|")
    for seed in range(args.seeds):
        for data_name in args.datasets:
            (x, y), (x_val, y_val) = DATA[data_name](seed=seed)
            num_classes = int(y.max()) + 1
            keras.utils.set_random_seed(seed)
            teacher = train_teacher(x, y, num_classes)
            t_acc = float(np.mean(np.argmax(
                teacher.predict(x_val, verbose=0), -1) == y_val))
            t_conf = confidence(teacher, x)
            for student_name in args.students:
                keras.utils.set_random_seed(seed + 100)
                initial = STUDENTS[student_name](x.shape[1:], num_classes)
                accs = []
                start = time.perf_counter()
                for _, kwargs in configs:
                    student = keras.models.clone_model(initial)
                    student.set_weights(initial.get_weights())
                    keras.utils.set_random_seed(seed + 200)
                    result = recipes.distill(
                        teacher, student, (x, y),
                        validation_data=(x_val, y_val), compare_alone=False,
                        **kwargs)
                    accs.append(result.metrics["student_accuracy"])
                seconds = time.perf_counter() - start
                diff = 100 * (accs[1] - accs[0])
                rows.append((data_name, student_name, diff))
                print(f"| {data_name} | {seed} | {t_acc:.4f} ({t_conf:.3f}) "
                      f"| {student_name} | "
                      + " | ".join(f"{a:.4f}" for a in accs)
                      + f" | {diff:+.2f} | {seconds:.0f} |", flush=True)
    print()
    for student_name in args.students:
        diffs = [d for _, s, d in rows if s == student_name]
        print(f"{student_name}: {names[1]} >= {names[0]} - 1 point in "
              f"{sum(d >= -1 for d in diffs)}/{len(diffs)} runs, "
              f"mean {np.mean(diffs):+.2f}, worst {min(diffs):+.2f} points")


if __name__ == "__main__":
    main()
