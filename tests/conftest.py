import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The suite runs on TensorFlow unless asked otherwise; CI runs the component
# tests a second time with KERAS_BACKEND=jax.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Through `recipes`, TensorFlow's start-up lines obey the level too (see
# `recipes._quiet`), so none land after pytest's summary.
import recipes  # noqa: E402, F401, I001
import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a clean Keras session and a fixed seed."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def mnist_5k():
    """Real MNIST-5k: ((x_train, y_train), (x_val, y_val)), 4000/1000."""
    from recipes.datasets import load_mnist_5k

    return load_mnist_5k()


@pytest.fixture(scope="session")
def digits_8x8():
    """Real sklearn 8x8 digits: ((x_train, y_train), (x_val, y_val))."""
    from recipes.datasets import load_digits_8x8

    return load_digits_8x8()


@pytest.fixture(scope="session")
def digits_result(digits_8x8):
    """The image recipe trained 2 epochs on the real 8x8 digits (small CNN,
    about 87% validation accuracy: enough mistakes to interpret)."""
    from recipes.image_classifier import fit_image_classifier

    (x, y), (xv, yv) = digits_8x8
    return fit_image_classifier((x, y), validation_data=(xv, yv), epochs=2,
                                verbose=0, seed=0)
