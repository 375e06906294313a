import keras
import numpy as np
import pytest

from recipes.initializers import INITIALIZER_FOR_ACTIVATION, initializer_for

# activation -> (NumPy function, bounds of the second moment after 30
# layers). Under Glorot, tanh's signal decays slowly (about 1/depth), not
# exponentially as with a mismatched initializer.
ACTIVATIONS = {
    "relu": (lambda z: np.maximum(z, 0), (0.2, 5.0)),
    "selu": (lambda z: 1.0507 * np.where(z > 0, z, 1.67326 * np.expm1(z)),
             (0.5, 2.0)),
    "tanh": (np.tanh, (0.005, 1.0)),
}


def test_table():
    for activation, expected in [
        ("relu", "HeNormal"), (keras.activations.relu, "HeNormal"),
        ("gelu", "HeNormal"), ("selu", "LecunNormal"),
        (keras.activations.selu, "LecunNormal"), ("tanh", "GlorotUniform"),
        ("sigmoid", "GlorotUniform"), (None, "GlorotUniform")]:
        assert type(initializer_for(activation)).__name__ == expected


def test_every_entry_is_a_keras_activation():
    for name in sorted(INITIALIZER_FOR_ACTIVATION):
        assert callable(keras.activations.get(name))
        assert isinstance(initializer_for(name, seed=0),
                          keras.initializers.Initializer)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_recommended_init_keeps_a_deep_signal_alive(activation):
    """A 30-layer stack keeps a healthy signal with the table's choice."""
    f, (low, high) = ACTIVATIONS[activation]
    rng = np.random.default_rng(0)
    width = 256
    h = rng.normal(size=(512, width))
    init = initializer_for(activation, seed=0)
    for depth in range(30):
        w = keras.ops.convert_to_numpy(
            init((width, width)) if depth == 0 else initializer_for(
                activation, seed=depth)((width, width)))
        h = f(h @ w)
    second_moment = np.mean(h ** 2)
    assert low < second_moment < high, second_moment


def test_glorot_on_relu_vanishes_where_he_does_not():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(512, 256))
    moments = {}
    for name in ("glorot_normal", "he_normal"):
        h = x
        for depth in range(30):
            init = keras.initializers.get(
                {"class_name": name, "config": {"seed": depth}})
            h = np.maximum(h @ keras.ops.convert_to_numpy(init((256, 256))),
                           0)
        moments[name] = np.mean(h ** 2)
    # Glorot (variance 1/fan_in here) halves the second moment per layer.
    assert moments["glorot_normal"] < 1e-6 < 0.2 < moments["he_normal"]


def test_unknown_activation():
    with pytest.raises(ValueError, match="Received: activation='nope'"):
        initializer_for("nope")
