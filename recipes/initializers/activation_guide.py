"""Which Keras initializer suits which activation.

    activation                          initializer        weight variance
    ----------------------------------  -----------------  ---------------
    relu, relu6, leaky_relu, elu,       "he_normal"        2 / fan_in
    gelu, silu (swish), mish
    selu                                "lecun_normal"     1 / fan_in
    tanh, sigmoid, hard_sigmoid,        "glorot_uniform"   2 / (fan_in +
    softmax, softsign, softplus,                           fan_out)
    linear (None)

Why: a ReLU zeroes half of its inputs and halves the second moment of the
signal at every layer; He initialization doubles the weight variance to
compensate (He et al., 2015), and the smooth ReLU-like units are used with
it too. SELU's self-normalizing fixed point assumes weights of variance
`1 / fan_in` (Klambauer et al., 2017). Saturating activations are close to
linear around 0, where Glorot's variance balances the forward and backward
signals (Glorot & Bengio, 2010); it is Keras's default.

`initializer_for(activation)` returns a fresh initializer from this table.
"""

import keras

INITIALIZER_FOR_ACTIVATION = {
    "relu": "he_normal",
    "relu6": "he_normal",
    "leaky_relu": "he_normal",
    "elu": "he_normal",
    "gelu": "he_normal",
    "silu": "he_normal",
    "swish": "he_normal",
    "mish": "he_normal",
    "selu": "lecun_normal",
    "tanh": "glorot_uniform",
    "sigmoid": "glorot_uniform",
    "hard_sigmoid": "glorot_uniform",
    "softmax": "glorot_uniform",
    "softsign": "glorot_uniform",
    "softplus": "glorot_uniform",
    "linear": "glorot_uniform",
}
"""Activation name to the Keras initializer name `initializer_for` returns."""


def _activation_name(activation):
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        return activation.lower()
    if callable(activation):
        name = keras.activations.serialize(activation)
        return name if isinstance(name, str) else None
    return None


def initializer_for(activation, seed=None):
    """Returns the Keras initializer suited to `activation`.

    He normal for the ReLU family, LeCun normal for SELU, Glorot uniform
    for saturating or linear activations (see the module's table).

    Args:
        activation: An activation name (`"relu"`), a Keras activation
            function (`keras.activations.relu`) or `None` (linear).
        seed: Optional integer seed passed to the initializer. Defaults to
            `None`.

    Returns:
        A new `keras.initializers.Initializer` instance.

    Raises:
        ValueError: If the activation is not in the table.

    Example:

    >>> init = initializer_for("relu")
    >>> type(init).__name__
    'HeNormal'
    >>> layer = keras.layers.Dense(
    ...     8, activation="selu", kernel_initializer=initializer_for("selu"))

    References:
        - [He et al., 2015](https://arxiv.org/abs/1502.01852): Delving Deep
          into Rectifiers.
        - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a):
          Understanding the difficulty of training deep feedforward neural
          networks.
        - [Klambauer et al., 2017](https://arxiv.org/abs/1706.02515):
          Self-Normalizing Neural Networks.
    """
    name = _activation_name(activation)
    if name not in INITIALIZER_FOR_ACTIVATION:
        raise ValueError(
            "Argument `activation` must be one of "
            f"{sorted(INITIALIZER_FOR_ACTIVATION)} (or None, or the "
            f"matching keras.activations function). Received: "
            f"activation={activation!r}"
        )
    return keras.initializers.get({
        "class_name": INITIALIZER_FOR_ACTIVATION[name],
        "config": {"seed": seed},
    })
