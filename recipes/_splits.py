"""Train/validation splits shared by the data loaders (`recipes.datasets`,
`recipes.data`, `recipes.sequence_data`)."""

import numpy as np
import tensorflow as tf


def split_arrays(x, y, validation_size, seed, stratify):
    """`((x_train, y_train), (x_val, y_val))`: `validation_size` examples
    held out at random (per class in proportion with `stratify`)."""
    n = len(x)
    rng = np.random.default_rng(seed)
    if not stratify:
        order = rng.permutation(n)
        val, train = order[:validation_size], order[validation_size:]
    else:
        # Per-class shares rounded so the total is exactly validation_size.
        classes, counts = np.unique(y, return_counts=True)
        quota = np.floor(counts * validation_size / n).astype(int)
        rest = validation_size - quota.sum()
        quota[np.argsort(-(counts * validation_size / n - quota))[:rest]] += 1
        val, train = [], []
        for c, q in zip(classes, quota, strict=True):
            idx = rng.permutation(np.flatnonzero(y == c))
            val.append(idx[:q])
            train.append(idx[q:])
        val = rng.permutation(np.concatenate(val))
        train = rng.permutation(np.concatenate(train))
    return (x[train], y[train]), (x[val], y[val])


def hold_out(source, fraction, seed):
    """Split `source` into train/validation datasets (stratified by label)."""
    n = len(source.labels)
    size = int(round(n * fraction))
    if size < 1 or size >= n:
        raise ValueError(
            f"Argument `validation_split` leaves an empty training or "
            f"validation set for {n} examples. Received: "
            f"validation_split={fraction}"
        )
    (train_idx, _), (val_idx, _) = split_arrays(
        np.arange(n), source.labels, size, seed, stratify=True)
    is_val = np.zeros(n, dtype=bool)
    is_val[val_idx] = True
    mask = tf.constant(is_val)
    numbered = source.dataset.enumerate()

    def part(keep_val):
        def wanted(index, element):
            return tf.equal(mask[index], keep_val)

        def drop_index(index, element):
            return element

        return numbered.filter(wanted).map(drop_index)

    return part(False), part(True), len(train_idx), len(val_idx), (
        source.labels[train_idx])
