"""Each optimizer of ours trains a small MLP on real MNIST-5k."""

import keras
import pytest

import recipes.optimizers as ro

# Registry name -> validation accuracy floor after 2 epochs at the default
# learning rate (Adam reaches ~0.90 in this setting).
FLOORS = {
    "radam": 0.85,
    "adabelief": 0.85,
    "yogi": 0.85,
    "lars": 0.8,
    "lookahead_adam": 0.85,
    "lookahead_sgd": 0.8,
    "ranger": 0.8,
}


def _fit(model, optimizer, data):
    (x, y), (x_val, y_val) = data
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    return history.history["loss"], accuracy


def _mlp():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FLOORS))
def test_trains_on_mnist_5k(name, mnist_5k):
    losses, accuracy = _fit(_mlp(), ro.get(name), mnist_5k)
    assert losses[1] < losses[0]
    assert accuracy > FLOORS[name]


@pytest.mark.slow
def test_sam_and_adaptive_clipping_train_on_mnist_5k(mnist_5k):
    losses, accuracy = _fit(ro.SAM(_mlp(), rho=0.05), ro.get("adam"),
                            mnist_5k)
    assert losses[1] < losses[0] and accuracy > 0.85
    agc = ro.get("momentum", agc_clip_factor=0.05,
                 gradient_centralization=True)
    losses, accuracy = _fit(_mlp(), agc, mnist_5k)
    assert losses[1] < losses[0] and accuracy > 0.85
