import keras
import numpy as np
import pytest

from recipes.initializers import zero_init_residual


def residual_net():
    inputs = keras.Input((8, 8, 4))
    # Identity-shortcut block.
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(name="block1_bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = keras.layers.BatchNormalization(name="block1_bn2")(x)
    x = keras.layers.Add()([inputs, x])
    block1 = keras.layers.ReLU(name="block1_out")(x)
    # Projection-shortcut block.
    shortcut = keras.layers.Conv2D(8, 1)(block1)
    shortcut = keras.layers.BatchNormalization(name="block2_short_bn")(
        shortcut)
    x = keras.layers.Conv2D(8, 3, padding="same")(block1)
    x = keras.layers.BatchNormalization(name="block2_bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = keras.layers.BatchNormalization(name="block2_bn2")(x)
    x = keras.layers.Add()([x, shortcut])
    outputs = keras.layers.ReLU(name="block2_out")(x)
    return keras.Model(inputs, outputs)


def test_zeroes_only_last_bn_of_residual_branches():
    model = residual_net()
    zeroed = zero_init_residual(model)
    assert zeroed == ["block1_bn2", "block2_bn2"]
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma = np.asarray(layer.gamma)
            expected = 0.0 if layer.name in zeroed else 1.0
            np.testing.assert_array_equal(gamma, expected)
    # Each block now starts as relu(shortcut).
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
    block1 = keras.ops.convert_to_numpy(keras.Model(
        model.inputs, model.get_layer("block1_out").output)(x))
    np.testing.assert_allclose(block1, np.maximum(x, 0), atol=1e-6)


def test_keras_applications_resnet50():
    model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3),
                                        classes=10)
    zeroed = zero_init_residual(model)
    # 3 + 4 + 6 + 3 bottleneck blocks, each ending in its "_3_bn".
    assert len(zeroed) == 16
    assert all(name.endswith("_3_bn") for name in zeroed)
    assert np.all(np.asarray(model.get_layer("conv2_block1_0_bn").gamma) == 1)


def test_no_residual_block_raises():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match="no residual block"):
        zero_init_residual(model)
    with pytest.raises(TypeError, match="Received: model="):
        zero_init_residual(None)
