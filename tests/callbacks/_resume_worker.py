"""Training script for the SIGKILL resume test (run as a subprocess).

Usage: python _resume_worker.py DIRECTORY OUT.npz KILL_AT_STEP
KILL_AT_STEP < 0 trains to the end; otherwise the process SIGKILLs itself
right after that optimizer step.
"""

import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from callbacks.checkpointing import Checkpointing  # noqa: E402
from recipes.datasets import load_mnist_5k  # noqa: E402

EPOCHS, BATCH, SAVE_FREQ, SAMPLES = 3, 32, 7, 1024


class KillAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_begin(self, logs=None):
        self.start = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def main(directory, out, kill_at):
    keras.utils.set_random_seed(0)
    # TensorFlow's shuffle order is a function of the seed and the epoch;
    # the other backends shuffle with the global NumPy/torch generator,
    # whose draws a restarted process has not made: a fixed order there.
    shuffle = keras.backend.backend() == "tensorflow"
    if shuffle:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    (x, y), _ = load_mnist_5k()
    x, y = x[:SAMPLES], y[:SAMPLES]
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10),
    ])
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    killer = KillAt(kill_at)
    model.fit(
        x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0, shuffle=shuffle,
        callbacks=[Checkpointing(directory, save_freq=SAVE_FREQ), killer],
    )
    np.savez(
        out,
        *model.get_weights(),
        steps=int(model.optimizer.iterations.numpy()),
        start=killer.start,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
