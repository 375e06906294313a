"""Looking at a classifier's results: confusion, per-class scores, top losses.

`Interpretation` holds the true labels and predicted probabilities of a set
of examples (and the examples themselves, for plots) and answers the
questions one asks after training, as fastai's `ClassificationInterpretation`
does: which classes are confused with which (`confusion_matrix`,
`most_confused`), how good each class is (`classification_report`:
precision, recall, F1, support), and which examples the model gets most
wrong (`top_losses`, `plot_top_losses`).

The recipes' results build one with `result.interpret((x, y))`; any
classifier's predictions give one with `Interpretation(labels,
probabilities)`.
"""

import collections

import numpy as np

TopLoss = collections.namedtuple(
    "TopLoss", ["index", "actual", "predicted", "loss", "probability"])
TopLoss.__doc__ = """One badly predicted example (`Interpretation.top_losses`).

Attributes:
    index: Position of the example in the interpreted data.
    actual: Its true class name.
    predicted: The predicted class name.
    loss: Its cross-entropy, `-log(probability of the true class)`.
    probability: The probability of the predicted class.
"""

_KINDS = ("image", "text", "sequence")
# Probabilities are clipped here before the log, so a confidently wrong
# float32 prediction (probability 0) has a finite loss.
_EPSILON = 1e-7


class Interpretation:
    """Confusion, per-class scores and worst examples of a classifier.

    Args:
        labels: True class indices, shape `(n,)`.
        probabilities: Predicted class probabilities, shape
            `(n, num_classes)`.
        class_names: Names of the classes. Defaults to `None` (`"0"`,
            `"1"`, ...).
        inputs: The `n` examples, for `plot_top_losses`: images
            `(n, height, width, channels)`, strings, or numeric sequences
            `(n, timesteps, features)`. Defaults to `None`.
        kind: `"image"`, `"text"` or `"sequence"`: how `plot_top_losses`
            draws `inputs`. Defaults to `None` (no inputs).
        value_range: Maximum pixel value of image inputs (255 or 1).
            Defaults to `255.0`.

    Attributes:
        labels: True class indices.
        probabilities: Predicted probabilities.
        predictions: Predicted class indices (the most probable).
        losses: Per-example cross-entropy, `-log p(true class)` (without
            the label smoothing training may have used).
        class_names: Class names.

    Raises:
        ValueError: For labels and probabilities of different lengths or
            labels out of range.

    Example:

    >>> import numpy as np
    >>> interp = Interpretation(
    ...     np.array([0, 0, 1, 1]),
    ...     np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]]),
    ...     class_names=["cat", "dog"])
    >>> interp.confusion_matrix.tolist()
    [[1, 1], [0, 2]]
    >>> interp.most_confused()
    [('cat', 'dog', 1)]
    >>> round(interp.classification_report()["dog"]["precision"], 3)
    0.667

    References:
        - [fastai `ClassificationInterpretation`](
          https://docs.fast.ai/interpret.html)
        - [scikit-learn `classification_report`](
          https://scikit-learn.org/stable/modules/generated/sklearn.metrics.classification_report.html)
    """

    def __init__(self, labels, probabilities, class_names=None, inputs=None,
                 kind=None, value_range=255.0):
        probabilities = np.asarray(probabilities, dtype="float64")
        labels = np.asarray(labels)
        if probabilities.ndim != 2:
            raise ValueError(
                "Argument `probabilities` must have shape (n, num_classes). "
                f"Received: probabilities.shape={probabilities.shape}"
            )
        if labels.shape != (len(probabilities),):
            raise ValueError(
                "Argument `labels` must hold one class index per row of "
                f"`probabilities` ({len(probabilities)}). Received: "
                f"labels.shape={labels.shape}"
            )
        k = probabilities.shape[1]
        if labels.dtype.kind not in "iu" or (
                len(labels) and (labels.min() < 0 or labels.max() >= k)):
            raise ValueError(
                f"Argument `labels` must hold class indices in [0, {k}). "
                f"Received: labels of dtype {labels.dtype} in "
                f"[{labels.min()}, {labels.max()}]"
            )
        if class_names is None:
            class_names = [str(i) for i in range(k)]
        if len(class_names) != k:
            raise ValueError(
                f"Argument `class_names` must hold {k} names (one per "
                f"column of `probabilities`). Received: {len(class_names)} "
                "names"
            )
        if kind is not None and kind not in _KINDS:
            raise ValueError(
                f"Argument `kind` must be one of {list(_KINDS)} or None. "
                f"Received: kind={kind!r}"
            )
        if inputs is not None and len(inputs) != len(labels):
            raise ValueError(
                f"Argument `inputs` must hold the {len(labels)} examples. "
                f"Received: {len(inputs)} examples"
            )
        self.labels = labels.astype("int64")
        self.probabilities = probabilities
        self.class_names = [str(name) for name in class_names]
        self.inputs = inputs
        self.kind = kind
        self.value_range = float(value_range)
        self.predictions = np.argmax(probabilities, axis=1)
        true = probabilities[np.arange(len(labels)), self.labels]
        self.losses = -np.log(np.clip(true, _EPSILON, 1.0))

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def accuracy(self):
        """Fraction of examples whose most probable class is the true one."""
        return float(np.mean(self.predictions == self.labels))

    @property
    def confusion_matrix(self):
        """Counts `[actual, predicted]`: row `i` holds the examples of class
        `i`, column `j` those predicted as class `j` (scikit-learn's
        convention)."""
        matrix = np.zeros((self.num_classes, self.num_classes), dtype="int64")
        np.add.at(matrix, (self.labels, self.predictions), 1)
        return matrix

    def classification_report(self, as_text=False):
        """Precision, recall, F1 and support of each class.

        Precision of a class: the share of the examples predicted as it
        that belong to it; recall: the share of its examples predicted as
        it; F1: their harmonic mean; support: its number of examples. A
        score whose denominator is 0 (a class never predicted, or absent)
        is 0. The `"macro avg"` row is the unweighted mean over classes,
        `"weighted avg"` the mean weighted by support.

        Args:
            as_text: Return an aligned text table instead of a dict.
                Defaults to `False`.

        Returns:
            A dict `{class_name: {"precision", "recall", "f1", "support"}}`
            with the rows `"macro avg"` and `"weighted avg"` and the key
            `"accuracy"`, or its text table.
        """
        matrix = self.confusion_matrix
        hits = np.diag(matrix).astype("float64")
        predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
        precision = np.divide(hits, predicted, out=np.zeros_like(hits),
                              where=predicted > 0)
        recall = np.divide(hits, support, out=np.zeros_like(hits),
                           where=support > 0)
        both = precision + recall
        f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits),
                       where=both > 0)
        report = {}
        for i, name in enumerate(self.class_names):
            report[name] = {"precision": float(precision[i]),
                            "recall": float(recall[i]), "f1": float(f1[i]),
                            "support": int(support[i])}
        weights = support / max(support.sum(), 1)
        for row, w in (("macro avg", None), ("weighted avg", weights)):
            report[row] = {
                "precision": float(np.average(precision, weights=w)),
                "recall": float(np.average(recall, weights=w)),
                "f1": float(np.average(f1, weights=w)),
                "support": int(support.sum())}
        report["accuracy"] = self.accuracy
        return _report_table(report) if as_text else report

    def most_confused(self, n=5, min_count=1):
        """The most frequent `(actual, predicted)` mistakes.

        Args:
            n: How many pairs to return. Defaults to `5`.
            min_count: Leave out pairs seen fewer times. Defaults to `1`.

        Returns:
            A list of `(actual_name, predicted_name, count)`, most frequent
            first (ties in class order).
        """
        _check_count("n", n)
        _check_count("min_count", min_count)
        matrix = self.confusion_matrix
        np.fill_diagonal(matrix, 0)
        pairs = [(self.class_names[a], self.class_names[p], int(matrix[a, p]))
                 for a, p in zip(*np.nonzero(matrix >= min_count),
                                 strict=True)]
        pairs.sort(key=lambda pair: -pair[2])
        return pairs[:n]

    def top_losses(self, n=9):
        """The `n` examples with the highest loss.

        Args:
            n: How many examples. Defaults to `9`.

        Returns:
            A list of `TopLoss(index, actual, predicted, loss,
            probability)`, highest loss first.
        """
        _check_count("n", n)
        order = np.argsort(-self.losses, kind="stable")[:n]
        return [TopLoss(int(i), self.class_names[self.labels[i]],
                        self.class_names[self.predictions[i]],
                        float(self.losses[i]),
                        float(self.probabilities[i, self.predictions[i]]))
                for i in order]

    def plot_confusion_matrix(self, normalize=False, ax=None, cmap="Blues"):
        """Draw the confusion matrix with its counts (matplotlib).

        Args:
            normalize: Show each row as fractions of the class's examples.
                Defaults to `False`.
            ax: Axes to draw on. Defaults to `None` (a new figure).
            cmap: Matplotlib colour map. Defaults to `"Blues"`.

        Returns:
            The matplotlib `Axes`.
        """
        import matplotlib.pyplot as plt

        matrix = self.confusion_matrix.astype("float64")
        if normalize:
            rows = matrix.sum(axis=1, keepdims=True)
            matrix = np.divide(matrix, rows, out=np.zeros_like(matrix),
                               where=rows > 0)
        if ax is None:
            side = max(4.0, 0.5 * self.num_classes + 2)
            _, ax = plt.subplots(figsize=(side, side))
        ax.imshow(matrix, cmap=cmap)
        ticks = np.arange(self.num_classes)
        ax.set_xticks(ticks, self.class_names, rotation=90)
        ax.set_yticks(ticks, self.class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        top = matrix.max() if matrix.size else 0
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{value:.2f}" if normalize else f"{value:.0f}",
                    ha="center", va="center", fontsize=8,
                    color="white" if value > top / 2 else "black")
        ax.set_title("confusion matrix")
        return ax

    def plot_top_losses(self, n=9, ncols=3):
        """Draw the examples with the highest loss (matplotlib).

        Each panel is titled `predicted / actual / loss / probability`
        (the probability of the predicted class), as in fastai. Images are
        shown as images, text as its first 300 characters, numeric
        sequences as a line per feature.

        Args:
            n: How many examples. Defaults to `9`.
            ncols: Panels per row. Defaults to `3`.

        Returns:
            The array of matplotlib `Axes`.

        Raises:
            ValueError: If the interpretation holds no inputs.
        """
        import matplotlib.pyplot as plt

        if self.inputs is None:
            raise ValueError(
                "`plot_top_losses` needs the examples: build the "
                "Interpretation with `inputs` (the recipes' "
                "`result.interpret` does). Received: inputs=None"
            )
        _check_count("ncols", ncols)
        top = self.top_losses(n)
        rows = max(1, -(-len(top) // ncols))
        fig, axes = plt.subplots(rows, ncols, figsize=(3 * ncols, 3 * rows),
                                 squeeze=False)
        for ax in axes.flat[len(top):]:
            ax.axis("off")
        for ax, item in zip(axes.flat, top, strict=False):
            self._draw_input(ax, self.inputs[item.index])
            ax.set_title(f"{item.predicted} / {item.actual} / "
                         f"{item.loss:.2f} / {item.probability:.2f}",
                         fontsize=9)
        fig.suptitle("predicted / actual / loss / probability")
        fig.tight_layout()
        return axes

    def _draw_input(self, ax, example):
        if self.kind == "image":
            image = np.asarray(example, dtype="float64") / self.value_range
            image = np.clip(image, 0.0, 1.0)
            if image.ndim == 3 and image.shape[-1] == 1:
                image = image[..., 0]
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
            ax.axis("off")
        elif self.kind == "text":
            text = example.decode() if isinstance(example, bytes) else str(
                example)
            ax.text(0.0, 1.0, _wrap(text[:300]), va="top", fontsize=7,
                    transform=ax.transAxes)
            ax.axis("off")
        else:
            ax.plot(np.asarray(example, dtype="float64"))
            ax.set_xlabel("time step")

    def __repr__(self):
        return (f"Interpretation(examples={len(self.labels)}, "
                f"classes={self.num_classes}, accuracy={self.accuracy:.4f})")


def _check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) \
            or value < 1:
        raise ValueError(
            f"Argument `{name}` must be an integer >= 1. Received: "
            f"{name}={value!r}"
        )


def _wrap(text, width=40):
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or "(empty)"


def _report_table(report):
    width = max(len(name) for name in report)
    lines = [f"{'':<{width}}  precision  recall      f1  support"]
    for name, row in report.items():
        if name == "accuracy":
            continue
        if name == "macro avg":
            lines.append("")
        lines.append(f"{name:<{width}}  {row['precision']:9.4f}  "
                     f"{row['recall']:6.4f}  {row['f1']:6.4f}  "
                     f"{row['support']:7d}")
    lines.append(f"{'accuracy':<{width}}  {report['accuracy']:9.4f}")
    return "\n".join(lines)
