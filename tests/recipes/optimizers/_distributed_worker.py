"""Runs in a fresh process: 2 logical CPU devices, MirroredStrategy.

TF fixes its devices at first use, so this cannot run inside the test
process. Prints one JSON line of results for `test_distributed.py`.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from recipes.datasets import load_mnist_5k  # noqa: E402
from recipes.optimizers import SAM, Lookahead, Ranger  # noqa: E402


def _linear_lookahead_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.normal(size=(16, 2)).astype("float32")
    w0 = rng.normal(size=(3, 2)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.layers[0].kernel.assign(w0)
    opt = Lookahead(keras.optimizers.SGD(0.1, momentum=0.9), sync_period=3)
    model.compile(optimizer=opt, loss="mse")
    model.fit(x, y, batch_size=16, epochs=7, shuffle=False, verbose=0)
    slow = opt._slow_weights[0].numpy()
    return model.layers[0].kernel.numpy(), slow


def _mlp():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])


def _train(build, data):
    (x, y), (xv, yv) = data
    x, y = x[:2000], y[:2000]
    keras.utils.set_random_seed(0)
    model = build()
    history = model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    _, accuracy = model.evaluate(xv, yv, verbose=0)
    return history.history["loss"], float(accuracy)


def main():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    single = _linear_lookahead_weights()
    with strategy.scope():
        mirrored = _linear_lookahead_weights()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def sam_model():
        model = SAM(_mlp(), rho=0.05)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss,
                      metrics=["accuracy"])
        return model

    def ranger_model():
        model = _mlp()
        model.compile(optimizer=Ranger(5e-3), loss=loss,
                      metrics=["accuracy"])
        return model

    data = load_mnist_5k()
    with strategy.scope():
        sam_loss, sam_accuracy = _train(sam_model, data)
        ranger_loss, ranger_accuracy = _train(ranger_model, data)
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "lookahead_max_diff": float(np.abs(single[0] - mirrored[0]).max()),
        "slow_max_diff": float(np.abs(single[1] - mirrored[1]).max()),
        "sam_loss": sam_loss,
        "sam_accuracy": sam_accuracy,
        "ranger_loss": ranger_loss,
        "ranger_accuracy": ranger_accuracy,
    }))


if __name__ == "__main__":
    main()
