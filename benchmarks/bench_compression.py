"""Compression benchmark on MNIST-5k: pruning, TFLite export, distillation.

Prints three markdown tables measured in one run:

1. Validation accuracy of a small CNN pruned to 50/80/90% sparsity (and
   2:4), against the dense model trained for the same number of epochs.
2. Size, accuracy and per-example latency of its TFLite exports (float32,
   dynamic range, float16, full-integer int8), measured by running the files
   in the TFLite interpreter, plus Keras's own int8 `model.quantize`.
3. Small students trained alone vs distilled from the CNN teacher.

Run from the repository root:
`PYTHONPATH=. TF_NUM_INTRAOP_THREADS=1 python benchmarks/bench_compression.py`
"""

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import recipes  # noqa: E402
from recipes.compress import (  # noqa: E402
    evaluate_tflite,
    sparsity_report,
    weight_bytes,
)
from recipes.datasets import load_mnist_5k  # noqa: E402
from tests.recipes.compress.models import (  # noqa: E402
    compile_classifier,
    copy_of,
    mlp,
    small_cnn,
    tiny_cnn,
)

PRETRAIN_EPOCHS = 5
FINETUNE_EPOCHS = 3
BATCH_SIZE = 32
FINETUNE_LR = 5e-4


def fits_2_4(layer):
    return (isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))
            and layer.kernel.shape[-2] % 4 == 0)


def accuracy(model, x, y):
    return model.evaluate(x, y, verbose=0)[1]


def pruning_table(pretrained, x, y, x_val, y_val):
    steps_per_epoch = int(np.ceil(len(x) / BATCH_SIZE))
    end_step = 2 * steps_per_epoch
    rows = []
    dense = copy_of(pretrained, FINETUNE_LR)
    dense.fit(x, y, batch_size=BATCH_SIZE, epochs=FINETUNE_EPOCHS,
              verbose=0)
    rows.append(("dense baseline", sparsity_report(dense).sparsity,
                 accuracy(dense, x_val, y_val)))
    settings = [
        ("50%", {"target_sparsity": 0.5}),
        ("80%", {"target_sparsity": 0.8}),
        ("90%", {"target_sparsity": 0.9}),
        ("90% global", {"target_sparsity": 0.9, "scope": "global"}),
        ("2:4 (all but the 1-channel first conv)",
         {"target_sparsity": 0.5, "structure": "2:4", "layers": fits_2_4}),
    ]
    for name, kwargs in settings:
        model = recipes.prune(copy_of(pretrained, FINETUNE_LR), begin_step=0,
                              end_step=end_step, frequency=25, **kwargs)
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=FINETUNE_EPOCHS,
                  verbose=0)
        recipes.strip_pruning(model)
        rows.append((name, sparsity_report(model).sparsity,
                     accuracy(model, x_val, y_val)))
    lines = ["| pruning | kernel sparsity | val accuracy |",
             "|---|---:|---:|"]
    lines += [f"| {n} | {s:.1%} | {a:.2%} |" for n, s, a in rows]
    return "\n".join(lines)


def tflite_table(model, x, x_val, y_val, directory):
    rows = [("Keras float32", weight_bytes(model),
             accuracy(model, x_val, y_val), None)]
    for mode in ("none", "dynamic", "float16", "int8"):
        report = recipes.export_tflite(
            model, os.path.join(directory, f"{mode}.tflite"),
            quantization=mode, representative_data=x,
            validation_data=(x_val, y_val),
        )
        label = "float32" if mode == "none" else mode
        rows.append((f"TFLite {label}", report.size_bytes, report.accuracy,
                     report.latency_ms))
    # A second timing pass of the float file, as the first includes warmup.
    _, float_latency = evaluate_tflite(
        os.path.join(directory, "none.tflite"), x_val, y_val)
    rows[1] = rows[1][:3] + (float_latency,)
    quantized = recipes.quantize(copy_of(model, FINETUNE_LR), "int8")
    rows.append(("Keras int8 (model.quantize)", weight_bytes(quantized),
                 accuracy(quantized, x_val, y_val), None))
    base = rows[1][1]
    lines = ["| format | size (KB) | vs TFLite float32 | val accuracy "
             "| latency (ms/example) |", "|---|---:|---:|---:|---:|"]
    for name, size, acc, latency in rows:
        lat = "-" if latency is None else f"{latency:.3f}"
        lines.append(f"| {name} | {size / 1024:.1f} | {base / size:.2f}x | "
                     f"{acc:.2%} | {lat} |")
    lines.append("")
    lines.append("Keras rows give the bytes of the weights in memory; TFLite "
                 "rows the file size. Latency: TFLite interpreter, 1 thread, "
                 "batch of 1, mean over the 1,000 validation examples.")
    return "\n".join(lines)


STUDENTS = [("MLP 784-16-10", lambda: mlp(units=16)),
            ("tiny CNN (4 and 8 filters)", tiny_cnn)]


def distillation_table(teacher, x, y, x_val, y_val):
    rows = []
    for student_name, make_student in STUDENTS:
        for how, alpha in [("alone", 1.0), ("distilled", 0.1)]:
            keras.utils.set_random_seed(0)
            result = recipes.distill(
                teacher, make_student(), (x[:1000], y[:1000]),
                validation_data=(x_val, y_val), temperature=4.0,
                alpha=alpha, epochs=30, batch_size=128, learning_rate=1e-2,
                compare_alone=False,  # the "alone" row is its own run
            )
            m = result.metrics
            rows.append((f"{student_name}, {how}", m["student_params"],
                         m["student_accuracy"], m["agreement"]))
    rows.append(("teacher (small CNN)", teacher.count_params(),
                 accuracy(teacher, x_val, y_val), 1.0))
    lines = ["| model | params | val accuracy | agreement with teacher |",
             "|---|---:|---:|---:|"]
    lines += [f"| {n} | {p:,} | {a:.2%} | {g:.2%} |" for n, p, a, g in rows]
    lines.append("")
    lines.append("Students trained on 1,000 of the 4,000 training labels, 30 "
                 "epochs, batch 128, warmup-cosine Adam 1e-2; 'alone' is "
                 "alpha=1 (labels only), 'distilled' T=4, alpha=0.1 (weight "
                 "of the label loss). Teacher trained on all 4,000.")
    return "\n".join(lines)


def main():
    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    (x, y), (x_val, y_val) = load_mnist_5k()
    pretrained = compile_classifier(small_cnn())
    pretrained.fit(x, y, batch_size=BATCH_SIZE, epochs=PRETRAIN_EPOCHS,
                   verbose=0)
    print(f"Small CNN ({pretrained.count_params():,} params) pretrained "
          f"{PRETRAIN_EPOCHS} epochs on MNIST-5k; each row then trains "
          f"{FINETUNE_EPOCHS} more epochs (pruning ramps over the first 2, "
          "cubic schedule, masks updated every 25 steps).\n")
    print(pruning_table(pretrained, x, y, x_val, y_val))
    print()
    with tempfile.TemporaryDirectory() as directory:
        print(tflite_table(pretrained, x, x_val, y_val, directory))
    print()
    print(distillation_table(pretrained, x, y, x_val, y_val))
    print(f"\nTotal time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
