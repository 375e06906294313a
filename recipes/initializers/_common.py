"""Checks shared by the data-dependent initializers."""

import keras


def check_functional_model(model):
    """The input(s) of a built functional or Sequential `model`; refuses
    anything else with a `TypeError`/`ValueError` naming `model`."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Argument `model` must be a keras.Model. Received: model={model!r}"
        )
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            "Argument `model` must be a built functional or Sequential model "
            "(with a known input); subclassed models have no layer graph to "
            f"probe. Received: model={model.name!r}"
        )
    return inputs[0] if len(inputs) == 1 else inputs
