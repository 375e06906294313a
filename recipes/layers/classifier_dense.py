"""A classification `Dense` layer that carries its class names."""

import keras

from callbacks._internal import register


def _check_class_names(class_names):
    ok = isinstance(class_names, (list, tuple)) and len(class_names) >= 1
    if ok:
        ok = all(isinstance(n, (str, int)) and not isinstance(n, bool)
                 for n in class_names)
        ok = ok and len(set(class_names)) == len(class_names)
    if not ok:
        raise ValueError(
            "Argument `class_names` must be a non-empty list of distinct "
            f"strings or integers. Received: class_names={class_names!r}"
        )
    return list(class_names)


@register
class ClassifierDense(keras.layers.Dense):
    """`Dense` output layer whose unit `i` is the class `class_names[i]`.

    A `keras.layers.Dense` with `units=len(class_names)` that keeps the
    class names in its config, so they travel with a saved `.keras` model:
    `recipes.predict_classes(model, images)` on a reloaded model returns
    names, and the file still loads with `safe_mode=True` in plain Keras
    (after `import recipes`). The weights are those of a `Dense` layer.

    Args:
        class_names: The class names, one per unit, strings or integers.
        units: Optional; must equal `len(class_names)` (it is in the
            config of every `Dense`). Defaults to `None`.
        **kwargs: `keras.layers.Dense` keyword arguments (`activation`,
            `dtype`, `name`, ...).

    Raises:
        ValueError: If `class_names` is empty, holds duplicates or values
            that are not strings or integers, or `units` differs from its
            length.

    Example:

    >>> layer = ClassifierDense(["cat", "dog"], activation="softmax")
    >>> tuple(layer(keras.ops.ones((1, 3))).shape)
    (1, 2)
    >>> layer.class_names
    ['cat', 'dog']
    """

    def __init__(self, class_names, units=None, **kwargs):
        class_names = _check_class_names(class_names)
        if units is not None and units != len(class_names):
            raise ValueError(
                "Argument `units` must equal the number of class names "
                f"({len(class_names)}). Received: units={units!r}"
            )
        super().__init__(len(class_names), **kwargs)
        self.class_names = class_names

    def get_config(self):
        return {**super().get_config(), "class_names": self.class_names}
