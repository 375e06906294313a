"""Logit-output classifiers for the compression tests and benchmark.

`tests.helpers.mlp`/`small_cnn` end in a softmax; distillation's
temperature needs logits, so these builders end in a plain Dense.
"""

import keras


def classifier(filters=(), units=64, num_classes=10,
               input_shape=(28, 28, 1)):
    """Conv(3x3, relu) + max-pool per entry of `filters`, then an optional
    Dense(`units`, relu), then Dense(`num_classes`) logits."""
    layers = [keras.Input(input_shape)]
    for count in filters:
        layers += [keras.layers.Conv2D(count, 3, activation="relu"),
                   keras.layers.MaxPooling2D()]
    layers.append(keras.layers.Flatten())
    if units:
        layers.append(keras.layers.Dense(units, activation="relu"))
    layers.append(keras.layers.Dense(num_classes))
    return keras.Sequential(layers)


def mlp(units=64, num_classes=10):
    return classifier((), units, num_classes)


def small_cnn():
    return classifier((16, 32), 64)


def tiny_cnn():
    return classifier((4, 8), None)


def compile_classifier(model, learning_rate=1e-3):
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def copy_of(model, learning_rate=1e-3):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return compile_classifier(clone, learning_rate)
