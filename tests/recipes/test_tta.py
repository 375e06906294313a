"""Tests of `recipes.tta` (test-time augmentation) and `tta=` of the image
result, against views made independently with `scipy.ndimage.shift`."""

import keras
import numpy as np
import pytest
from scipy import ndimage

from recipes.tta import predict_with_tta, resolve_tta, tta_views


def _reference_views(images, policy, pixels):
    """The views made with SciPy: integer shifts, nearest-edge fill."""
    moves = [(0, 0), (pixels, 0), (-pixels, 0), (0, pixels), (0, -pixels)]
    sources = [images] + ([images[:, :, ::-1]] if policy == "flip" else [])
    return [ndimage.shift(source, (0, dy, dx, 0), order=0, mode="nearest")
            for source in sources for dy, dx in moves]


@pytest.mark.parametrize("policy", ["shift", "flip"])
def test_views_match_scipy_shifts(policy, mnist_5k):
    images = mnist_5k[1][0][:8]
    views = list(tta_views(images, policy))
    # 5% of 28 pixels rounds to 1.
    expected = _reference_views(images, policy, 1)
    assert len(views) == len(expected) == (10 if policy == "flip" else 5)
    for view, reference in zip(views, expected, strict=True):
        np.testing.assert_array_equal(view, reference)
    # Rows move by round(0.1 * 64) = 6 pixels, columns by round(4.8) = 5.
    photos = np.random.default_rng(0).random((2, 64, 48, 3))
    rows = list(tta_views(photos, "shift", shift=0.1))
    np.testing.assert_array_equal(rows[1][:, 6:], photos[:, :-6])
    np.testing.assert_array_equal(rows[3][:, :, 5:], photos[:, :, :-5])


def test_predict_with_tta_averages_the_views(digits_8x8):
    images = digits_8x8[1][0][:16]
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    averaged = predict_with_tta(lambda x: model(x).numpy(), images, "flip")
    expected = np.mean([model(v).numpy()
                        for v in _reference_views(images, "flip", 1)], 0)
    np.testing.assert_allclose(averaged, expected, rtol=1e-6)


def test_result_predict_with_tta(digits_result, digits_8x8):
    _, (xv, yv) = digits_8x8
    images = xv[:40]
    # The digits model trained without flips: "auto" is shifts only.
    assert resolve_tta(True, digits_result.config["augment"]) == "shift"
    probabilities = digits_result.predict_proba(images, tta=True)
    expected = np.mean([digits_result.model(v, training=False).numpy()
                        for v in _reference_views(images, "shift", 1)], 0)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5,
                               atol=1e-7)
    names = digits_result.predict(images[..., 0], tta=True)
    np.testing.assert_array_equal(
        names, np.asarray(digits_result.class_names)[expected.argmax(1)])
    scores = digits_result.evaluate((images, yv[:40]), tta="shift")
    assert scores["accuracy"] == pytest.approx(
        np.mean(expected.argmax(1) == yv[:40]))


def test_resolve_tta():
    assert resolve_tta(False) is None and resolve_tta(None) is None
    assert resolve_tta(True) == "shift"
    assert resolve_tta("auto", "flip") == "flip"
    assert resolve_tta("auto", "mirror") == "flip"
    assert resolve_tta("auto", "randaugment") == "shift"
    assert resolve_tta("auto", [keras.layers.RandomFlip("horizontal")]) == (
        "flip")
    assert resolve_tta("auto", [keras.layers.RandomFlip("vertical")]) == (
        "shift")
    assert resolve_tta("shift", "flip") == "shift"


def test_bad_input(digits_result, digits_8x8):
    images = digits_8x8[1][0][:4]
    with pytest.raises(ValueError, match="Argument `tta`"):
        resolve_tta("rotate")
    with pytest.raises(ValueError, match="Argument `tta`"):
        resolve_tta(3)
    with pytest.raises(ValueError, match="Argument `tta`"):
        digits_result.predict(images, tta="mirror")
    with pytest.raises(ValueError, match="Argument `shift` must be < 0.5"):
        list(tta_views(images, "shift", shift=0.5))
    with pytest.raises(ValueError, match="Argument `images` must have"):
        list(tta_views(images[..., 0], "shift"))
