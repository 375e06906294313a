"""Input checks shared by the compression recipes.

Each check raises one `ValueError` naming the argument and what was
received, before any conversion or training starts.
"""

import numpy as np


def _shape(value):
    return tuple(None if dim is None else int(dim) for dim in value)


def model_input_shape(model, name):
    """Per-example input shape of a single-input model, or `None`.

    `None` means the model has no symbolic inputs (a subclassed model), so
    shapes cannot be checked before running it.
    """
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return None
    if len(inputs) != 1:
        raise ValueError(
            f"Argument `{name}` must be a single-input model. "
            f"Received: {name}={model.name!r} with {len(inputs)} inputs"
        )
    return _shape(inputs[0].shape[1:])


def model_num_classes(model):
    """Size of the last axis of a single-output model, or `None`."""
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1 or outputs[0].shape[-1] is None:
        return None
    return int(outputs[0].shape[-1])


def check_batch_shape(name, batch_shape, input_shape, what="inputs"):
    """Check that a batch of inputs fits the model's per-example shape."""
    batch_shape = _shape(batch_shape)
    if input_shape is None:
        if not batch_shape:
            raise ValueError(
                f"Argument `{name}` must hold batches of {what} (batch "
                f"first). Received: {what} of shape {batch_shape}"
            )
        return
    fits = len(batch_shape) == len(input_shape) + 1 and all(
        want is None or got == want
        for got, want in zip(batch_shape[1:], input_shape, strict=True)
    )
    if not fits:
        raise ValueError(
            f"Argument `{name}` must hold {what} of shape "
            f"{(None,) + input_shape} (batch first, as the model's input). "
            f"Received: {what} of shape {batch_shape}"
        )


def check_labelled_data(name, data, input_shape, num_classes):
    """Check `data=(x, y)`: inputs the model takes and 1-D class indices.

    Args:
        name: The argument's name (`"data"`, `"validation_data"`).
        data: The received value.
        input_shape: The model's per-example input shape, or `None`.
        num_classes: The number of classes the model outputs, or `None`.

    Returns:
        `(x, y)` as NumPy arrays.

    Raises:
        ValueError: If `data` is not a pair, `x` does not fit the model
            or holds NaN/inf,
            the labels are not 1-D integer class indices in
            `[0, num_classes)`, or `x` and `y` differ in length.
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        size = f" of length {len(data)}" if isinstance(data, (tuple, list)) \
            else ""
        raise ValueError(
            f"Argument `{name}` must be a tuple `(x, y)` of inputs and "
            f"integer labels. Received: {name} of type "
            f"{type(data).__name__}{size}"
        )
    x, y = np.asarray(data[0]), np.asarray(data[1])
    check_batch_shape(name, x.shape, input_shape)
    if len(x) == 0:
        raise ValueError(
            f"Argument `{name}` must hold at least one example. "
            f"Received: x of shape {x.shape}"
        )
    if np.issubdtype(x.dtype, np.inexact):
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():
            raise ValueError(
                f"Argument `{name}` must hold finite inputs (a NaN or inf "
                "input makes the loss and then the weights NaN). Received: "
                f"{name}=(x with {int(bad.sum())} example(s) holding "
                f"NaN/inf, the first at index {int(np.argmax(bad))}, y)"
            )
    if y.ndim != 1:
        raise ValueError(
            f"Argument `{name}` must have 1-D integer labels (class "
            f"indices, not one-hot). Received: labels of shape {y.shape}"
        )
    whole = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y))
        and np.all(y == np.round(y))
    )
    if not whole:
        raise ValueError(
            f"Argument `{name}` must have integer labels (class indices). "
            f"Received: labels of dtype {y.dtype}"
        )
    if len(y) != len(x):
        raise ValueError(
            f"Argument `{name}` must have as many labels as inputs. "
            f"Received: {len(x)} inputs and {len(y)} labels"
        )
    low, high = y.min(), y.max()
    if low < 0 or (num_classes is not None and high >= num_classes):
        bound = (">= 0" if num_classes is None else
                 f"in [0, {num_classes}) (the model outputs {num_classes} "
                 "classes)")
        raise ValueError(
            f"Argument `{name}` must have labels {bound}. Received: labels "
            f"from {low:g} to {high:g}"
        )
    return x, y
