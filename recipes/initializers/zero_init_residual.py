"""Zero-initialize the last BatchNorm scale of residual branches."""

import keras

from recipes.initializers._common import check_functional_model

_NORMS = (keras.layers.BatchNormalization,)


def _producers(model):
    """Maps `id(tensor)` to the layer producing it, and counts consumers."""
    producer, consumers = {}, {}
    for layer in model.layers:
        try:
            outputs, inputs = layer.output, layer.input
        except (AttributeError, ValueError):
            continue
        for tensor in keras.tree.flatten(outputs):
            producer[id(tensor)] = layer
        if isinstance(layer, keras.layers.InputLayer):
            continue
        for tensor in keras.tree.flatten(inputs):
            consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    return producer, consumers


def _branch(tensor, producer, consumers):
    """Layers from `tensor` back to the fork it branched from, last first."""
    path = []
    while True:
        layer = producer.get(id(tensor))
        if layer is None or isinstance(layer, keras.layers.InputLayer):
            return path
        inputs = keras.tree.flatten(layer.input)
        if len(inputs) != 1:
            return path
        path.append(layer)
        tensor = inputs[0]
        if consumers.get(id(tensor), 0) > 1:
            return path


def zero_init_residual(model):
    """Sets `gamma = 0` in the last BatchNorm of every residual branch.

    Goyal et al. (2017) initialize the scale of the last batch
    normalization of each residual block to zero: every block then starts
    as the identity (only the shortcut passes), which makes very deep
    residual networks easier to train, notably with large batches.

    Residual blocks are found in the layer graph: each `Add` layer merges
    branches that leave a common fork. The residual branch is the longest
    one (an identity shortcut has length 0, a projection shortcut is
    shorter than the residual path); walking it back from the `Add`, the
    first `BatchNormalization` met (only through single-input layers such
    as `Activation` or `Dropout`) is the one zeroed. Shortcut BatchNorms
    are left alone. Pre-activation blocks (ending in a convolution) have no
    such BatchNorm and are skipped.

    Works on functional models, including `keras.applications` ResNets
    built with `weights=None`. Call it on a fresh model, before training.

    Args:
        model: A built functional or `Sequential` `keras.Model`, modified in
            place.

    Returns:
        The list of names of the BatchNormalization layers that were zeroed.

    Raises:
        TypeError: If `model` is not a `keras.Model`.
        ValueError: If the model has no layer graph, or no residual branch
            ending in a `BatchNormalization` with a scale (`scale=True`).

    Example:

    >>> inputs = keras.Input((8, 8, 4))
    >>> x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    >>> x = keras.layers.BatchNormalization(name="bn")(x)
    >>> outputs = keras.layers.Add()([inputs, x])
    >>> zero_init_residual(keras.Model(inputs, outputs))
    ['bn']

    References:
        - [Goyal et al., 2017](https://arxiv.org/abs/1706.02677): Accurate,
          Large Minibatch SGD: Training ImageNet in 1 Hour (section 5.1).
    """
    check_functional_model(model)
    producer, consumers = _producers(model)
    zeroed = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Add):
            continue
        branches = [
            _branch(t, producer, consumers)
            for t in keras.tree.flatten(layer.input)
        ]
        residual = max(branches, key=len)
        norm = next((
            candidate for candidate in residual
            if isinstance(candidate, _NORMS)
            or getattr(candidate, "kernel", None) is not None
        ), None)
        if isinstance(norm, _NORMS) and norm.gamma is not None:
            zeroed.append(norm)
    if not zeroed:
        raise ValueError(
            "zero_init_residual found no residual block (an `Add` layer) "
            "whose residual branch ends in a BatchNormalization with a "
            f"scale in model {model.name!r}."
        )
    for norm in zeroed:
        norm.gamma.assign(keras.ops.zeros(norm.gamma.shape, norm.gamma.dtype))
    return [norm.name for norm in zeroed]
