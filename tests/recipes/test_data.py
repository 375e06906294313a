import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from recipes.data import augmentation_layers, load_image_data, make_pipeline


def _arrays(ds):
    xs, ys = zip(*ds.as_numpy_iterator(), strict=True)
    return np.stack(xs), np.array(ys)


def _write_folders(root, images, labels, names, ext="png"):
    for name in names:
        os.makedirs(os.path.join(root, name), exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        keras.utils.save_img(
            os.path.join(root, names[label], f"img{i:03d}.{ext}"), image,
            scale=False)
    return str(root)


@pytest.fixture
def digit_folders(tmp_path, digits_8x8):
    (x, y), _ = digits_8x8
    keep = np.flatnonzero(y < 3)[:60]
    images = (np.repeat(x[keep], 3, axis=-1) * 255).round().astype("uint8")
    root = _write_folders(tmp_path / "digits", images, y[keep],
                          ["zero", "one", "two"])
    return root, images, y[keep]


# ----------------------------------------------------------------- sources
def test_numpy_stratified_split_keeps_class_proportions(digits_8x8):
    (x, y), _ = digits_8x8
    data = load_image_data((x, y), validation_split=0.2, seed=3)
    assert (data.num_train, data.num_validation) == (1200, 300)
    assert data.class_names == [str(i) for i in range(10)]
    assert data.image_shape == (8, 8, 1) and data.value_range == 1.0
    xt, yt = _arrays(data.train)
    xv, yv = _arrays(data.validation)
    np.testing.assert_array_equal(np.bincount(yv, minlength=10),
                                  np.round(np.bincount(y) * 0.2))
    # Train and validation partition the data: every image once.
    together = np.concatenate([xt, xv]).reshape(1500, -1)
    assert len(np.unique(together, axis=0)) == len(np.unique(
        x.reshape(1500, -1), axis=0))


def test_numpy_uint8_grayscale_without_channel_and_string_labels():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 10, 12), dtype="uint8")
    y = np.array(["cat", "dog"] * 20)
    data = load_image_data((x, y), validation_split=0.0)
    assert data.class_names == ["cat", "dog"]
    assert data.image_shape == (10, 12, 1) and data.value_range == 255.0
    xs, ys = _arrays(data.train)
    np.testing.assert_array_equal(xs[..., 0], x)
    np.testing.assert_array_equal(ys, (y == "dog").astype(int))


def test_directory_source_reads_images_and_folder_names(digit_folders):
    root, images, labels = digit_folders
    data = load_image_data(root, validation_split=0.0)
    assert data.class_names == ["one", "two", "zero"]  # sorted folders
    assert data.image_shape == (8, 8, 3) and data.source == "directory"
    xs, ys = _arrays(data.train)
    # Files come folder by folder (sorted), then by file name; PNG is
    # lossless, so the pixels come back exactly.
    folder = {0: "zero", 1: "one", 2: "two"}
    order = sorted(range(len(labels)), key=lambda i: (folder[labels[i]], i))
    np.testing.assert_array_equal(xs, images[order].astype("float32"))
    expected = [data.class_names.index(folder[labels[i]]) for i in order]
    np.testing.assert_array_equal(ys, expected)


def test_directory_source_stratified_split_and_resize(digit_folders):
    root, _, labels = digit_folders
    data = load_image_data(root, validation_split=0.25, image_size=16)
    assert data.image_shape == (16, 16, 3)
    _, yv = _arrays(data.validation)
    assert data.num_validation == 15 == len(yv)
    np.testing.assert_array_equal(np.bincount(yv), [5, 5, 5])


def test_tfds_source_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12):
        data = load_image_data("mnist", validation_data="test")
        xs, ys = _arrays(data.train)
    assert data.source == "tfds" and data.class_names[:2] == ["0", "1"]
    assert data.image_shape == (28, 28, 1) and data.value_range == 255.0
    assert xs.shape == (12, 28, 28, 1) and data.num_validation == 12
    assert ys.dtype == np.int32


def test_directory_with_nested_folders_labels_by_the_class_folder(
        digit_folders):
    root, images, labels = digit_folders
    # A sub-folder inside a class folder: its images belong to that class
    # (Keras reads them); the label comes from the top-level folder.
    nested = os.path.join(root, "one", "more")
    os.makedirs(nested)
    keras.utils.save_img(os.path.join(nested, "extra.png"), images[0],
                         scale=False)
    data = load_image_data(root, validation_split=0.0)
    xs, ys = _arrays(data.train)
    assert len(ys) == len(labels) + 1
    one = data.class_names.index("one")
    assert np.sum(ys == one) == np.sum(labels == 1) + 1
    match = np.flatnonzero((xs == images[0].astype("float32")).all(
        axis=(1, 2, 3)))
    assert one in ys[match]
    # The nested files are checked like the others.
    with open(os.path.join(nested, "broken.png"), "wb") as f:
        f.write(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        load_image_data(root, validation_split=0.0)


def test_validation_pixels_must_share_the_training_range(digits_8x8):
    (x, y), (xv, yv) = digits_8x8
    as_uint8 = (x * 255).round().astype("uint8")
    with pytest.raises(ValueError, match=r"`validation_data`.*\[0, 255\]"
                                         r".*Received: validation_data=pixels"
                                         r" in \[0, 1\]"):
        load_image_data((as_uint8, y), validation_data=(xv, yv))
    data = load_image_data((as_uint8, y), validation_data=(
        (xv * 255).round().astype("uint8"), yv))
    assert data.value_range == 255.0


@pytest.mark.parametrize("split", ["train[:50%]", "train+test"])
def test_tfds_split_with_a_slice_or_sum_cannot_be_cut(split):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12):
        with pytest.raises(ValueError, match=r"`split`.*plain split name"
                                             r".*Received: split='train"):
            load_image_data("mnist", split=split, validation_split=0.2)
        with pytest.raises(ValueError, match=r"`validation_split`.*1%.*"
                                             r"Received: validation_split="
                                             r"0.001$"):
            load_image_data("mnist", validation_split=0.001)
        # With validation data given, a sliced split is fine.
        data = load_image_data("mnist", split=split, validation_data="test")
    assert data.num_validation == 12


def test_tf_data_source_batched_and_unbatched(digits_8x8):
    (x, y), _ = digits_8x8
    for ds in (tf.data.Dataset.from_tensor_slices((x[:50], y[:50])),
               tf.data.Dataset.from_tensor_slices((x[:50], y[:50])).batch(7)):
        data = load_image_data(ds, validation_split=0.2, class_names=list(
            "abcdefghij"))
        assert data.num_train + data.num_validation == 50
        assert data.class_names[0] == "a" and data.source == "dataset"
        xs, _ = _arrays(data.train)
        assert xs.shape[1:] == (8, 8, 1)


# ---------------------------------------------------------------- pipeline
def test_pipeline_batches_one_hot_and_keeps_validation_order():
    x = np.arange(10, dtype="float32").reshape(10, 1, 1, 1) * np.ones(
        (1, 4, 4, 1), "float32")
    y = np.arange(10) % 3
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    val = list(make_pipeline(ds, num_classes=3, batch_size=4,
                             training=False))
    assert [b[0].shape[0] for b in val] == [4, 4, 2]
    np.testing.assert_array_equal(
        np.concatenate([b[0].numpy()[:, 0, 0, 0] for b in val]), np.arange(10))
    np.testing.assert_array_equal(val[0][1].numpy(), np.eye(3)[y[:4]])
    train = list(make_pipeline(ds, num_classes=3, batch_size=10,
                               training=True, seed=1))
    order = train[0][0].numpy()[:, 0, 0, 0]
    assert sorted(order) == list(range(10)) and list(order) != list(range(10))


def test_pipeline_augments_training_only(mnist_5k):
    (x, y), _ = mnist_5k
    ds = tf.data.Dataset.from_tensor_slices((x[:32], y[:32]))
    plain = next(iter(make_pipeline(ds, num_classes=10, batch_size=32,
                                    training=False)))[0].numpy()
    np.testing.assert_array_equal(plain, x[:32])
    moved = next(iter(make_pipeline(
        ds, num_classes=10, batch_size=32, training=True, augment="default",
        value_range=1.0, seed=0)))[0].numpy()
    assert moved.shape == plain.shape
    assert not np.any([np.array_equal(m, p) for m in moved for p in plain])


def test_pipeline_mixup_and_cutmix_mix_labels(mnist_5k):
    (x, y), _ = mnist_5k
    ds = tf.data.Dataset.from_tensor_slices((x[:64], y[:64]))
    for kwargs in ({"mixup": 0.4}, {"cutmix": 1.0},
                   {"mixup": 0.4, "cutmix": 1.0}):
        _, labels = next(iter(make_pipeline(
            ds, num_classes=10, batch_size=64, training=True, seed=0,
            **kwargs)))
        labels = labels.numpy()
        np.testing.assert_allclose(labels.sum(-1), 1.0, atol=1e-5)
        # Mixed targets: some rows have two non-zero classes.
        assert np.mean((labels > 1e-6).sum(-1) == 2) > 0.3


def test_pipeline_resizes_images_of_varying_size():
    images = [np.full((h, w, 3), 100, "uint8") for h, w in
              ((10, 20), (30, 15), (8, 8))]
    ds = tf.data.Dataset.from_generator(
        lambda: ((im, 1) for im in images),
        output_signature=(tf.TensorSpec((None, None, 3), tf.uint8),
                          tf.TensorSpec((), tf.int32)))
    batch = next(iter(make_pipeline(ds, num_classes=2, batch_size=3,
                                    training=False, image_size=(12, 12))))
    assert batch[0].shape == (3, 12, 12, 3)
    np.testing.assert_allclose(batch[0].numpy(), 100.0, atol=1e-3)


def test_augmentation_policies():
    names = {p: [type(layer).__name__ for layer in augmentation_layers(p)]
             for p in ("default", "flip", "randaugment", "none")}
    assert names["flip"][-1] == "RandomFlip" and "RandomFlip" not in names[
        "default"]
    assert names["randaugment"] == ["RandAugment"] and names["none"] == []
    layer = keras.layers.RandomContrast(0.2)
    assert augmentation_layers([layer]) == [layer]
    with pytest.raises(ValueError, match="augment"):
        augmentation_layers("strong")


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize("data, match", [
    ((np.zeros((0, 8, 8, 1)), np.zeros(0)), "must not be empty"),
    ((np.zeros((5, 8, 8, 1)), np.arange(4)), "as many labels as images"),
    ((np.zeros((6, 8, 8)), np.zeros(6, int)), "at least 2 classes"),
    ((np.zeros((6, 8)), np.arange(6) % 2), "images of shape"),
    ((np.zeros((6, 8, 8, 5)), np.arange(6) % 2), "1 or 3 channels"),
    ((np.full((6, 8, 8), np.nan), np.arange(6) % 2), "finite"),
    ((np.array([["a"] * 8] * 8 * 6).reshape(6, 8, 8), np.arange(6) % 2),
     "numeric images"),
    ((np.zeros((6, 8, 8)), np.array([0, 1, 0, 1, 0, -1])), r"labels in"),
    ((np.zeros((6, 8, 8)), np.array([0, 1, 0, 1.5, 0, 1])), "integer class"),
    ((np.zeros((6, 8, 8)),), "pair"),
])
def test_bad_arrays(data, match):
    with pytest.raises(ValueError, match=match):
        load_image_data(data, validation_split=0.0)


def test_labels_out_of_range_of_class_names_and_validation():
    x, y = np.zeros((6, 8, 8)), np.array([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match=r"labels in \[0, 2\)"):
        load_image_data((x, y), class_names=["a", "b"], validation_split=0.0)
    with pytest.raises(ValueError, match="validation_data"):
        load_image_data((x, y % 2), validation_data=(x, y))


def test_missing_directory_empty_directory_and_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="existing directory"):
        load_image_data(str(tmp_path / "nowhere" / "images"))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no image"):
        load_image_data(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="mnist"):
        load_image_data("mnistt")
    with pytest.raises(TypeError, match="data"):
        load_image_data(42)


@pytest.mark.parametrize("damage", ["truncate", "text"])
def test_corrupt_image_file_is_named(digit_folders, damage):
    root = digit_folders[0]
    bad = os.path.join(root, "one", sorted(os.listdir(
        os.path.join(root, "one")))[2])
    if damage == "truncate":
        with open(bad, "rb") as f:
            content = f.read()
        with open(bad, "wb") as f:
            f.write(content[: len(content) // 2])
    else:
        with open(bad, "w") as f:
            f.write("not an image")
    with pytest.raises(ValueError, match=f"Corrupt.*{os.path.basename(bad)}"):
        load_image_data(root)


def test_bad_validation_split_and_image_size(digits_8x8):
    (x, y), _ = digits_8x8
    with pytest.raises(ValueError, match="validation_split"):
        load_image_data((x, y), validation_split=1.0)
    with pytest.raises(ValueError, match="validation_split"):
        load_image_data((x[:3], y[:3]), validation_split=0.1)
    with pytest.raises(ValueError, match="image_size"):
        load_image_data((x, y), image_size=(0, 4))


def _folder_with_a_corrupt_middle(root):
    """Two classes of three PNGs; `b/1.png` keeps its PNG signature and
    IEND trailer but has zeros in the middle of its compressed data."""
    rng = np.random.default_rng(0)
    for name in "ab":
        (root / name).mkdir(parents=True)
        for i in range(3):
            keras.utils.save_img(
                root / name / f"{i}.png",
                rng.integers(0, 255, (12, 12, 3)).astype("uint8"),
                scale=False)
    bad = root / "b" / "1.png"
    data = bytearray(bad.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 40] = bytes(40)
    bad.write_bytes(data)
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in data[-12:]
    return str(bad)


def test_an_image_corrupt_in_the_middle_is_named_before_training(tmp_path):
    bad = _folder_with_a_corrupt_middle(tmp_path / "images")
    with pytest.raises(ValueError, match="does not decode") as raised:
        load_image_data(str(tmp_path / "images"), validation_split=0.0)
    assert bad in str(raised.value)
    assert "on_bad_image='skip'" in str(raised.value)


def test_on_bad_image_skip_trains_without_the_file(tmp_path):
    bad = _folder_with_a_corrupt_middle(tmp_path / "images")
    with pytest.warns(UserWarning, match="Skipping 1 image") as caught:
        data = load_image_data(str(tmp_path / "images"),
                               validation_split=0.0, on_bad_image="skip")
    assert bad in str(caught[0].message)
    assert data.num_train == 5
    labels = [int(y) for _, y in data.train]
    assert sorted(labels) == [0, 0, 0, 1, 1]
