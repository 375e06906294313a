"""Registration of public objects for Keras serialization.

Every public Keras object of keras-recipes (schedules, layers, optimizers,
initializers, callbacks that are saved with a model) is registered under the
``keras_recipes`` package name, so a model using it reloads from a ``.keras``
file with ``safe_mode=True`` and no ``custom_objects``.
"""

import keras

PACKAGE = "keras_recipes"


def register(cls):
    """Register `cls` as serializable under the `keras_recipes` package.

    Args:
        cls: The class to register.

    Returns:
        `cls`, unchanged.
    """
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)
