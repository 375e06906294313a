"""Sequence data sources and the `tf.data` pipeline of the sequence recipe.

`load_sequence_data` accepts every kind of sequence source the sequence
recipe takes and returns one `SequenceData`: unbatched `(sequence, label)`
datasets for training and validation, the class names, and what the model
needs to know about the sequences (numeric or text, number of features,
padding value). `make_sequence_pipeline` turns one of those datasets into
the batched, shuffled, prefetched pipeline `model.fit` consumes.

Sources, each given as `(x, y)` or as a `tf.data.Dataset`:

* A NumPy array `x` of shape `(n, timesteps, features)`. With a
  `padding_value`, time steps whose features all equal it are masked.
* A list of `n` sequences of different lengths, each of shape
  `(timesteps_i, features)` or `(timesteps_i,)` (one feature). They are
  padded at the end with `padding_value`, which is then required, and the
  padding is masked.
* A list or 1D array of `n` strings: raw text, vectorized inside the model.
* A `tf.data.Dataset` of `(sequence, label)` pairs (batched or not) holding
  any of the above; sequences of varying length are padded per batch.

Labels are integers or strings (the class names are then the sorted
strings). Every malformed input raises one `ValueError` naming the problem
before any training starts.
"""

import dataclasses
import types

import keras
import numpy as np
import tensorflow as tf

from callbacks._internal import check_number
from recipes._splits import hold_out, split_arrays


@dataclasses.dataclass
class SequenceData:
    """Sequences ready for the sequence recipe.

    Attributes:
        train: Unbatched `tf.data.Dataset` of `(sequence, label)` with int32
            labels; a sequence is a float32 `(timesteps, features)` tensor
            or a scalar string.
        validation: Same for validation, or `None`.
        class_names: List of class names; label `i` is `class_names[i]`.
        kind: `"numeric"` or `"text"`.
        num_features: Features per time step (`None` for text).
        padding_value: Value marking padded time steps, or `None`.
        num_train: Number of training examples.
        num_validation: Number of validation examples (0 without one).
        source: `"numpy"`, `"ragged"`, `"text"` or `"dataset"`.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    class_names: list
    kind: str
    num_features: int | None
    padding_value: float | None
    num_train: int
    num_validation: int
    source: str

    @property
    def num_classes(self):
        return len(self.class_names)


def _fail(name, message, received):
    raise ValueError(f"Argument `{name}` {message}. Received: {received}")


def _is_text(x):
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "US" or (
            x.dtype == object and x.size > 0
            and isinstance(x.flat[0], str | bytes))
    return len(x) > 0 and all(isinstance(s, str | bytes) for s in x)


def sequences_to_array(x, name="data", padding_value=None):
    """Numeric sequences as one float32 `(n, timesteps, features)` array.

    A list of sequences of different lengths is padded at the end with
    `padding_value` (`keras.utils.pad_sequences`).

    Args:
        x: A `(n, timesteps, features)` array, or a list of `(timesteps_i,
            features)` or `(timesteps_i,)` sequences.
        name: Argument name used in error messages. Defaults to `"data"`.
        padding_value: Value of the padded time steps. Defaults to `None`
            (required when lengths differ).

    Returns:
        A float32 NumPy array of rank 3.

    Raises:
        ValueError: For an empty input, a wrong rank, non-finite values,
            sequences of different feature counts or lengths without a
            `padding_value`.

    Example:

    >>> sequences_to_array([[1.0, 2.0, 3.0], [4.0]], padding_value=0.0)[..., 0]
    array([[1., 2., 3.],
           [4., 0., 0.]], dtype=float32)
    """
    if isinstance(x, np.ndarray) and x.dtype != object:
        if x.dtype.kind not in "iuf":
            _fail(name, "must hold numeric sequences or strings",
                  f"x.dtype={x.dtype}")
        if x.ndim != 3:
            _fail(name, "must hold sequences of shape (n, timesteps, "
                  "features); add a feature axis with x[..., None] for one "
                  "feature per step", f"x.shape={x.shape}")
        array = x.astype("float32")
    else:
        sequences = [np.asarray(s, dtype="float32") for s in x]
        if not sequences:
            _fail(name, "must not be empty", "0 sequences")
        sequences = [s[:, None] if s.ndim == 1 else s for s in sequences]
        for i, s in enumerate(sequences):
            if s.ndim != 2:
                _fail(name, "must hold sequences of shape (timesteps, "
                      "features) or (timesteps,)",
                      f"sequence {i} of shape {s.shape}")
            if len(s) == 0:
                _fail(name, "must hold non-empty sequences",
                      f"sequence {i} has 0 time steps")
            if s.shape[1] != sequences[0].shape[1]:
                _fail(name, "must hold sequences with the same number of "
                      f"features ({sequences[0].shape[1]} in sequence 0)",
                      f"sequence {i} of shape {s.shape}")
        lengths = {len(s) for s in sequences}
        if len(lengths) > 1 and padding_value is None:
            _fail("padding_value", "is required for sequences of different "
                  f"lengths (here {min(lengths)} to {max(lengths)} steps)",
                  "padding_value=None")
        if len(lengths) == 1:
            array = np.stack(sequences)
        else:
            array = keras.utils.pad_sequences(
                sequences, padding="post", truncating="post",
                value=padding_value, dtype="float32")
    if len(array) == 0:
        _fail(name, "must not be empty", "0 sequences")
    if not np.all(np.isfinite(array)):
        _fail(name, "must hold finite values", "NaN or inf in the sequences")
    return array


def _encode_labels(y, name, class_names):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        _fail(name, "must hold one integer or string label per sequence",
              f"y.shape={y.shape}")
    names = class_names
    if y.dtype.kind in "USO":
        found = sorted({str(v) for v in y})
        names = list(class_names) if class_names is not None else found
        unknown = sorted(set(found) - set(names))
        if unknown:
            _fail(name, "has labels that are not in `class_names`",
                  f"{unknown[:5]}")
        lookup = {n: i for i, n in enumerate(names)}
        return np.array([lookup[str(v)] for v in y], "int32"), names
    if y.dtype.kind not in "iuf" or (
            y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0)):
        _fail(name, "must hold integer or string class labels",
              f"labels of dtype {y.dtype}")
    return y.astype("int32"), names


def _from_pair(data, name, padding_value, class_names):
    if len(data) != 2:
        _fail(name, "must be a pair `(x, y)` of sequences and labels",
              f"a sequence of length {len(data)}")
    x, y = data
    if len(x) == 0:
        _fail(name, "must not be empty", "0 sequences")
    labels, names = _encode_labels(y, name, class_names)
    if len(x) != len(labels):
        _fail(name, "must hold as many labels as sequences",
              f"{len(x)} sequences and {len(labels)} labels")
    if _is_text(x):
        text = np.asarray(x)
        if text.ndim != 1:
            _fail(name, "must hold one string per example",
                  f"strings of shape {text.shape}")
        text = text.astype(str)
        if not any(t.strip() for t in text):
            # Nothing to tokenize: the vectorizer's vocabulary would be
            # empty and every example the same padding.
            _fail(name, "must hold some non-empty text",
                  f"{name}=({len(text)} strings, all empty or blank)")
        return text, labels, names, "text", None, "text"
    ragged = not (isinstance(x, np.ndarray) and x.dtype != object)
    array = sequences_to_array(x, name, padding_value)
    source = "ragged" if ragged and len(
        {len(s) for s in x}) > 1 else "numpy"
    return array, labels, names, "numeric", array.shape[2], source


def _from_dataset(dataset, name, class_names):
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        _fail(name, "must yield `(sequence, label)` pairs",
              f"element_spec={spec}")
    x_spec, y_spec = spec
    text = x_spec.dtype == tf.string
    if (text and x_spec.shape.rank == 1) or x_spec.shape.rank == 3:
        dataset = dataset.unbatch()
        x_spec, y_spec = dataset.element_spec
    if text and x_spec.shape.rank != 0:
        _fail(name, "must yield one string per example",
              f"sequence spec {x_spec}")
    if not text and (x_spec.shape.rank != 2 or not (
            x_spec.dtype.is_floating or x_spec.dtype.is_integer)):
        _fail(name, "must yield numeric sequences of shape (timesteps, "
              "features) or strings", f"sequence spec {x_spec}")
    if not text and x_spec.shape[-1] is None:
        _fail(name, "must yield sequences with a known number of features",
              f"sequence spec {x_spec}")
    if y_spec.shape.rank != 0 or not y_spec.dtype.is_integer:
        _fail(name, "must yield one integer label per sequence",
              f"label spec {y_spec}")
    labels = np.fromiter(dataset.map(lambda x, y: y).as_numpy_iterator(),
                         dtype="int64").astype("int32")
    if len(labels) == 0:
        _fail(name, "must not be empty", "a dataset with no element")
    if text:
        dataset = dataset.map(lambda x, y: (x, tf.cast(y, "int32")))
        return dataset, labels, class_names, "text", None, "dataset"
    dataset = dataset.map(lambda x, y: (tf.cast(x, "float32"),
                                        tf.cast(y, "int32")))
    return (dataset, labels, class_names, "numeric", int(x_spec.shape[-1]),
            "dataset")


def _load(data, name, padding_value, class_names):
    if isinstance(data, tf.data.Dataset):
        return _from_dataset(data, name, class_names)
    if isinstance(data, tuple | list):
        return _from_pair(data, name, padding_value, class_names)
    raise TypeError(
        f"Argument `{name}` must be a pair `(x, y)` or a `tf.data.Dataset`. "
        f"Received: {name} of type {type(data).__name__}"
    )


def _check_range(labels, name, num_classes):
    if labels.min() < 0 or labels.max() >= num_classes:
        _fail(name, f"must hold labels in [0, {num_classes})",
              f"labels in [{labels.min()}, {labels.max()}]")


def load_sequence_data(data, *, validation_data=None, validation_split=0.2,
                       padding_value=None, class_names=None, seed=0):
    """Load any supported sequence source into train/validation datasets.

    When `validation_data` is not given, a stratified fraction
    `validation_split` of the training examples is held out.

    Args:
        data: `(x, y)` (see the module docstring for `x`) or a
            `tf.data.Dataset` of `(sequence, label)`.
        validation_data: Optional validation sequences of the same kind.
            Defaults to `None`.
        validation_split: Fraction held out from `data` when
            `validation_data` is `None`; 0 for no validation. Defaults to
            `0.2`.
        padding_value: Value marking padded time steps of numeric
            sequences (required for sequences of different lengths).
            Defaults to `None` (no masking).
        class_names: Optional list of class names; labels must be in
            `[0, len(class_names))`. Defaults to `None` (inferred).
        seed: Seed of the validation split. Defaults to `0`.

    Returns:
        A `SequenceData`.

    Raises:
        ValueError: For empty data, a wrong rank, labels out of range or of
            a different count than the sequences, a single class, ragged
            sequences without `padding_value`, or validation data of
            another kind or feature count.
        TypeError: If `data` is of an unsupported type.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20, 5, 3))
    >>> data = load_sequence_data((x, np.arange(20) % 2),
    ...                           validation_split=0.25)
    >>> data.kind, data.num_features, data.num_train, data.num_validation
    ('numeric', 3, 15, 5)
    """
    check_number("validation_split", validation_split, low=0.0, high=1.0,
                 high_inclusive=False)
    check_number("padding_value", padding_value, allow_none=True)
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(class_names) < 2:
            _fail("class_names", "must name at least 2 classes",
                  f"class_names={class_names}")
    x, labels, names, kind, features, source = _load(
        data, "data", padding_value, class_names)
    if names is None:
        _check_range(labels, "data", int(labels.max()) + 1)
        names = [str(i) for i in range(int(labels.max()) + 1)]
    _check_range(labels, "data", len(names))
    if len(np.unique(labels)) < 2:
        _fail("data", "must hold at least 2 classes",
              f"only class {names[int(labels[0])]!r}")
    if validation_data is not None:
        val_x, val_labels, _, val_kind, val_features, _ = _load(
            validation_data, "validation_data", padding_value, names)
        _check_range(val_labels, "validation_data", len(names))
        if (val_kind, val_features) != (kind, features):
            _fail("validation_data", f"must hold {kind} sequences like "
                  f"`data` (features={features})",
                  f"{val_kind} sequences (features={val_features})")
        train, val = _to_dataset(x, labels), _to_dataset(val_x, val_labels)
        n_train, n_val = len(labels), len(val_labels)
    elif validation_split == 0:
        train, val = _to_dataset(x, labels), None
        n_train, n_val = len(labels), 0
    else:
        if isinstance(x, tf.data.Dataset):
            train, val, n_train, n_val, kept = hold_out(
                types.SimpleNamespace(dataset=x, labels=labels),
                validation_split, seed)
        else:
            (train_x, kept), (val_x, val_labels) = split_arrays(
                x, labels, _validation_size(len(labels), validation_split),
                seed, stratify=True)
            train = _to_dataset(train_x, kept)
            val = _to_dataset(val_x, val_labels)
            n_train, n_val = len(kept), len(val_labels)
        if len(np.unique(kept)) < 2:
            _fail("data", "must hold at least 2 classes after the "
                  "validation split", f"{n_train} training examples")
    return SequenceData(train, val, list(names), kind, features,
                        padding_value, n_train, n_val, source)


def _validation_size(n, fraction):
    size = int(round(n * fraction))
    if size < 1 or size >= n:
        _fail("validation_split", "leaves an empty training or validation "
              f"set for {n} examples", f"validation_split={fraction}")
    return size


def _to_dataset(x, labels):
    if isinstance(x, tf.data.Dataset):
        return x
    return tf.data.Dataset.from_tensor_slices((x, labels))


def make_sequence_pipeline(dataset, *, num_classes, batch_size, training,
                           num_examples=None, padding_value=None, cache=True,
                           seed=None):
    """Build the batched `tf.data` pipeline of one split.

    Order: cache -> shuffle (training only) -> batch (padded with
    `padding_value` when lengths vary) -> one-hot labels -> prefetch.
    Labels become one-hot float32 (what label smoothing needs).

    Args:
        dataset: Unbatched `(sequence, int label)` dataset.
        num_classes: Number of classes.
        batch_size: Global batch size.
        training: Whether this is the training split.
        num_examples: Number of examples (declared as the dataset's size;
            sizes the shuffle buffer). Defaults to `None` (unknown size,
            buffer of 10,000).
        padding_value: Padding of sequences of varying length. Defaults to
            `None` (required only for them).
        cache: Whether to cache the elements in memory. Defaults to `True`.
        seed: Seed of the shuffle. Defaults to `None`.

    Returns:
        A batched, prefetched `tf.data.Dataset`.

    Raises:
        ValueError: If sequences vary in length and `padding_value` is
            `None`.

    Example:

    >>> import numpy as np
    >>> ds = tf.data.Dataset.from_tensor_slices(
    ...     (np.zeros((10, 4, 2), "float32"), np.arange(10) % 2))
    >>> batches = make_sequence_pipeline(ds, num_classes=2, batch_size=4,
    ...                                  training=False)
    >>> [tuple(b[1].shape) for b in batches]
    [(4, 2), (4, 2), (2, 2)]
    """
    x_spec = dataset.element_spec[0]
    if num_examples is not None:
        # A known size lets Keras end each epoch without running out of
        # data inside a multi-step execution.
        dataset = dataset.apply(
            tf.data.experimental.assert_cardinality(num_examples))
    if cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(min(num_examples or 10_000, 10_000),
                                  seed=seed, reshuffle_each_iteration=True)
    if x_spec.dtype != tf.string and x_spec.shape[0] is None:
        if padding_value is None:
            _fail("padding_value", "is required for sequences of varying "
                  "length", "padding_value=None")
        dataset = dataset.padded_batch(
            batch_size, padding_values=(float(padding_value), 0))
    else:
        dataset = dataset.batch(batch_size)
    dataset = dataset.map(
        lambda x, y: (x, tf.one_hot(y, num_classes, dtype="float32")),
        num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)

