import keras
import numpy as np
import pytest

from recipes.initializers import LSUVReport, lsuv


def deep_plain_mlp(depth=10, width=64, stddev=0.01, seed=0):
    """`depth` ReLU layers + a linear head, badly initialized (tiny weights)."""
    init = keras.initializers.RandomNormal(stddev=stddev, seed=seed)
    return keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten()]
        + [keras.layers.Dense(width, activation="relu",
                              kernel_initializer=init)
           for _ in range(depth)]
        + [keras.layers.Dense(10, kernel_initializer=init)])


def numpy_pre_activation_variances(model, x):
    """Forward pass in NumPy: variance of every Dense pre-activation."""
    h = x.reshape(len(x), -1).astype("float64")
    variances = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Dense):
            continue
        kernel, bias = (w.astype("float64") for w in layer.get_weights())
        z = h @ kernel + bias
        variances.append(z.var())
        h = np.maximum(z, 0) if layer.activation is keras.activations.relu \
            else z
    return np.array(variances)


def test_unit_variance_on_every_layer_of_deep_mlp(mnist_5k):
    (x, _), (x_val, _) = mnist_5k
    model = deep_plain_mlp()
    before = numpy_pre_activation_variances(model, x[:500])
    assert before[-1] < 1e-20  # the bad init really vanishes
    report = lsuv(model, x[:500], tol=0.1, max_iter=10, seed=0)
    assert isinstance(report, LSUVReport) and report.converged
    assert len(report.layers) == 11
    after = numpy_pre_activation_variances(model, x[:500])
    np.testing.assert_allclose(after, 1.0, atol=0.1)
    np.testing.assert_allclose([r.final_variance for r in report.layers],
                               after, rtol=1e-3)
    # It generalizes to other real batches of the same data.
    np.testing.assert_allclose(
        numpy_pre_activation_variances(model, x_val[:500]), 1.0, atol=0.25)
    assert "dense" in str(report)


@pytest.mark.slow
def test_lsuv_makes_bad_deep_net_train(mnist_5k):
    (x, y), _ = mnist_5k
    losses = {}
    for name in ("bad", "lsuv"):
        keras.utils.set_random_seed(0)
        model = deep_plain_mlp()
        if name == "lsuv":
            lsuv(model, x[:500], seed=0)
        model.compile(keras.optimizers.Adam(1e-3),
                      keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
        history = model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        losses[name] = history.history["loss"][0]
    # Without LSUV the loss stays at log(10) = 2.303: nothing is learned.
    assert losses["bad"] > 2.29
    assert losses["lsuv"] < losses["bad"] - 0.3


def test_conv_net_with_separate_activations(mnist_5k):
    (x, _), _ = mnist_5k
    inputs = keras.Input((28, 28, 1))
    h = inputs
    for filters in (8, 8, 16):
        h = keras.layers.Conv2D(filters, 3)(h)
        h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(10, activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    report = lsuv(model, x[:200], tol=0.05, seed=1)
    assert report.converged
    # Independent check: the conv outputs themselves (pre-ReLU) via probes.
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            probe = keras.Model(inputs, layer.output)
            variance = np.var(probe.predict(x[:200], verbose=0))
            assert abs(variance - 1) < 0.05, layer.name


def test_orthogonal_false_keeps_directions(mnist_5k):
    (x, _), _ = mnist_5k
    model = deep_plain_mlp(depth=3, stddev=0.05)
    kernels = [np.asarray(layer.kernel) for layer in model.layers[1:]]
    report = lsuv(model, x[:100], orthogonal=False)
    for layer, kernel in zip(model.layers[1:], kernels, strict=True):
        ratio = np.asarray(layer.kernel) / kernel
        np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-4)
    assert report.converged


def test_max_iter_is_respected(mnist_5k):
    (x, _), _ = mnist_5k
    model = deep_plain_mlp(depth=2)
    report = lsuv(model, x[:100], tol=1e-9, max_iter=2)
    assert all(r.iterations <= 2 for r in report.layers)


def test_bad_arguments():
    for kwargs, error in [
        ({"tol": 0.0}, ValueError),
        ({"tol": -1}, ValueError),
        ({"max_iter": 0}, ValueError),
        ({"max_iter": 2.5}, TypeError),
        ({"seed": "a"}, TypeError),
    ]:
        model = deep_plain_mlp(depth=1)
        with pytest.raises(error, match="Received"):
            lsuv(model, np.ones((2, 28, 28, 1), "float32"), **kwargs)


def test_bad_model_and_batch():
    with pytest.raises(TypeError, match="keras.Model"):
        lsuv("model", np.ones((2, 3)))
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="built functional"):
        lsuv(unbuilt, np.ones((2, 3)))
    with pytest.raises(ValueError, match="at least one example"):
        lsuv(deep_plain_mlp(depth=1), np.ones((0, 28, 28, 1), "float32"))
    with pytest.raises(ValueError, match="`batch`.*Received: batch=None"):
        lsuv(deep_plain_mlp(depth=1), None)


def test_dead_layer_raises_clear_error():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="variance of 0"):
        lsuv(model, np.zeros((4, 3), "float32"))
