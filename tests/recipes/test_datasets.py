"""The packaged real data sets: shapes, labels, and the disjoint cut."""

import numpy as np
import pytest

from recipes import datasets


def _columns_of(patch, image):
    """Left columns at which `patch` occurs in `image` (exhaustive search
    over every position, independent of how the patch was cut)."""
    size = patch.shape[0]
    rows = np.lib.stride_tricks.sliding_window_view(image, size, axis=1)
    hits = []
    # Candidates from the patch's first row, then a full comparison.
    for top, left in zip(*np.nonzero((rows == patch[0]).all(-1)),
                         strict=True):
        if np.array_equal(image[top:top + size, left:left + size], patch):
            hits.append(int(left))
    return hits


def test_textures_come_from_disjoint_regions():
    skimage_data = pytest.importorskip("skimage.data")
    (x, y), (xv, yv) = datasets.load_textures(
        train_per_class=4, val_per_class=3, size=16, normalize=False)
    assert x.shape == (12, 16, 16, 1) and xv.shape == (9, 16, 16, 1)
    assert x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y), [4, 4, 4])
    np.testing.assert_array_equal(np.bincount(yv), [3, 3, 3])
    images = [getattr(skimage_data, name)() for name in
              ("brick", "grass", "gravel")]
    cut = round(512 * 2 / 3)
    for patches, labels, training in ((x, y, True), (xv, yv, False)):
        for patch, label in zip(patches[..., 0], labels, strict=True):
            lefts = _columns_of(patch, images[label])
            assert lefts, "patch not found in the image of its label"
            if training:
                assert max(lefts) + 16 <= cut
            else:
                assert min(lefts) >= cut


def test_scene_patches_are_rgb_one_class_per_photo():
    pytest.importorskip("skimage")
    (x, y), (xv, yv) = datasets.load_scene_patches(
        train_per_class=5, val_per_class=2, seed=3)
    assert x.shape == (40, 32, 32, 3) and xv.shape == (16, 32, 32, 3)
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(np.bincount(y), [5] * 8)
    # Colour, not gray copies: channels differ.
    assert np.abs(x[..., 0] - x[..., 1]).mean() > 0.01
    # Same seed, same patches; another seed, others.
    (x2, _), _ = datasets.load_scene_patches(train_per_class=5,
                                             val_per_class=2, seed=3)
    np.testing.assert_array_equal(x, x2)
    (x3, _), _ = datasets.load_scene_patches(train_per_class=5,
                                             val_per_class=2, seed=4)
    assert not np.array_equal(x, x3)


@pytest.mark.parametrize("call, message", [
    (lambda: datasets.load_textures(size=4), "size=4"),
    (lambda: datasets.load_textures(train_per_class=0),
     "train_per_class=0"),
    (lambda: datasets.load_scene_patches(height=64), "size=32"),
    (lambda: datasets.load_scene_patches(val_per_class=1.5),
     "val_per_class=1.5"),
])
def test_bad_arguments(call, message):
    pytest.importorskip("skimage")
    with pytest.raises((TypeError, ValueError), match=message):
        call()
