import keras
import pytest

from tests.recipes.compress.models import compile_classifier, mlp


@pytest.fixture(scope="package")
def trained_mlp(mnist_5k):
    """MLP-128 trained 3 epochs on MNIST-5k, and its validation accuracy."""
    (x, y), (x_val, y_val) = mnist_5k
    keras.utils.set_random_seed(0)
    model = compile_classifier(mlp(units=128))
    model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    return model, accuracy
