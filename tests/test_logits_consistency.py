"""Softmax outputs never meet a `from_logits=True` loss.

Keras only warns about that mistake ("received `from_logits=True`, but the
`output` argument was produced by a Softmax activation"); the losses are
then computed on probabilities as if they were logits. These tests turn
the warning into an error around the library's own models as the recipes
compile and train them.
"""

import keras
import numpy as np
import pytest

from recipes import fit_image_classifier, fit_sequence_classifier

LOGITS_WARNING = "error:.*received `from_logits=True`, but:UserWarning"


@pytest.mark.filterwarnings(LOGITS_WARNING)
def test_the_warning_filter_catches_the_mistake():
    model = keras.Sequential([keras.Input((3,)),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    with pytest.raises(UserWarning, match="from_logits=True"):
        model.fit(np.zeros((4, 3), "float32"), np.zeros(4, "int64"),
                  verbose=0)


def _assert_probabilities_with_a_probability_loss(model):
    assert model.layers[-1].activation is keras.activations.softmax
    assert model.loss.get_config()["from_logits"] is False


@pytest.mark.filterwarnings(LOGITS_WARNING)
def test_recipe_models_pair_softmax_with_a_probability_loss(digits_8x8):
    (x, y), _ = digits_8x8
    image = fit_image_classifier((x[:96], y[:96]), epochs=1, verbose=0,
                                 seed=0)
    _assert_probabilities_with_a_probability_loss(image.model)
    rng = np.random.default_rng(0)
    sequences = rng.random((96, 6, 2)).astype("float32")
    labels = (sequences[:, :, 0].sum(axis=1) > 3).astype("int64")
    sequence = fit_sequence_classifier((sequences, labels), epochs=1,
                                       verbose=0, seed=0)
    _assert_probabilities_with_a_probability_loss(sequence.model)
