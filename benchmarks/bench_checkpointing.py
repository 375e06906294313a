"""Cost of fault tolerance: Checkpointing, DivergenceGuard, op determinism.

Prints, measured in this one run on MNIST-5k (4,000 images, batch 32,
125 steps per epoch):

1. the cost of one call of Checkpointing's per-batch hook, and the CPU
   time per training step of a small MLP with no callback, with
   `Checkpointing` that never saves (the per-batch hook alone), with
   `Checkpointing(save_freq=100)`, with Keras's `BackupAndRestore(save_freq=
   100)` and with `DivergenceGuard()` (reads the loss every step), as
   ratios to no callback; steps of the first (tracing) epoch are excluded
   and configurations are interleaved over several rounds (median);
2. the time of one checkpoint write and of one resume (read + restore);
3. the cost of `tf.config.experimental.enable_op_determinism()` on a small
   CNN, measured in two fresh processes (it cannot be switched off).

Usage: python benchmarks/bench_checkpointing.py [--rounds 3]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from callbacks import Checkpointing, DivergenceGuard  # noqa: E402
from callbacks.checkpointing import latest_checkpoint  # noqa: E402
from recipes.datasets import load_mnist_5k  # noqa: E402

BATCH = 32
EPOCHS = 3


class EpochTimer(keras.callbacks.Callback):
    """CPU time (all threads) per epoch: unlike wall time, it does not grow
    when other processes compete for the cores."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        if epoch > 0:  # epoch 0 includes tracing
            self.times.append(time.process_time() - self._start)

    def on_train_begin(self, logs=None):
        self.times = []


def _mlp():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    return model


def _cnn():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    return model


def _seconds_per_step(build, x, y, extra):
    """Median CPU seconds per step over epochs 2..EPOCHS."""
    timer = EpochTimer()
    steps = int(np.ceil(len(x) / BATCH))
    build().fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0,
                callbacks=[*extra, timer])
    return statistics.median(timer.times) / steps


def callback_overhead(x, y, rounds):
    configs = {
        "no callback": lambda d: [],
        "Checkpointing (hook only)": lambda d: [
            Checkpointing(d, save_freq=10**9)],
        "Checkpointing(save_freq=100)": lambda d: [
            Checkpointing(d, save_freq=100)],
        "BackupAndRestore(save_freq=100)": lambda d: [
            keras.callbacks.BackupAndRestore(d, save_freq=100,
                                             delete_checkpoint=False)],
        "DivergenceGuard()": lambda d: [DivergenceGuard(verbose=0)],
    }
    times = {name: [] for name in configs}
    for _ in range(rounds):
        for name, make in configs.items():
            with tempfile.TemporaryDirectory() as directory:
                times[name].append(
                    _seconds_per_step(_mlp, x, y, make(directory)))
    base = statistics.median(times["no callback"])
    print(f"Per-step CPU time, MLP 784-128-10, batch {BATCH}, median of "
          f"{rounds} rounds (epochs 2-{EPOCHS}):")
    for name, values in times.items():
        value = statistics.median(values)
        print(f"  {name:34s} {value * 1e3:7.3f} ms/step   "
              f"x{value / base:5.2f}")


def hook_cost():
    model = _mlp()
    with tempfile.TemporaryDirectory() as directory:
        callback = Checkpointing(directory, save_freq=10**9)
        callback.set_model(model)
        callback.on_train_begin()
        callback.on_epoch_begin(0)
        calls = 200_000
        start = time.perf_counter()
        for batch in range(calls):
            callback.on_train_batch_begin(batch)
        per_call = (time.perf_counter() - start) / calls
    print(f"Checkpointing's per-batch hook alone: {per_call * 1e9:.0f} ns "
          "per call.")


def save_and_resume_cost(x, y):
    with tempfile.TemporaryDirectory() as directory:
        model = _mlp()
        callback = Checkpointing(directory, save_freq=10**9)
        model.fit(x[:320], y[:320], batch_size=BATCH, epochs=1, verbose=0,
                  callbacks=[callback])
        start = time.perf_counter()
        for _ in range(20):
            callback._save(epoch=1, step_in_epoch=0)
        save = (time.perf_counter() - start) / 20
        size = os.path.getsize(latest_checkpoint(directory)[0]["path"])
        start = time.perf_counter()
        for _ in range(20):
            callback._restore()
        restore = (time.perf_counter() - start) / 20
    params = model.count_params()
    print(f"One checkpoint of the MLP ({params:,} parameters + Adam slots, "
          f"{size / 1e6:.1f} MB): write {save * 1e3:.1f} ms (fsync + "
          f"rename), resume {restore * 1e3:.1f} ms.")


def determinism_child(deterministic):
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    (x, y), _ = load_mnist_5k()
    print(_seconds_per_step(_cnn, x, y, []))


def determinism_cost(rounds):
    results = {False: [], True: []}
    for _ in range(rounds):
        for deterministic in (False, True):
            out = subprocess.run(
                [sys.executable, __file__, "--determinism-child",
                 str(int(deterministic))],
                capture_output=True, text=True, check=True, timeout=600)
            results[deterministic].append(float(out.stdout.split()[-1]))
    off = statistics.median(results[False])
    on = statistics.median(results[True])
    print(f"Op determinism on a small CNN (CPU), median of {rounds} process "
          f"pairs: {off * 1e3:.3f} ms/step off, {on * 1e3:.3f} ms/step on: "
          f"x{on / off:.2f}.")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--determinism-child", type=int, default=None)
    args = parser.parse_args()
    if args.determinism_child is not None:
        determinism_child(bool(args.determinism_child))
        return
    (x, y), _ = load_mnist_5k()
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{os.cpu_count()} CPU cores.")
    hook_cost()
    callback_overhead(x, y, args.rounds)
    save_and_resume_cost(x, y)
    determinism_cost(args.rounds)


if __name__ == "__main__":
    main()
