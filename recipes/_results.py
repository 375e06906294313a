"""What a recipe returns (`FitResult`, `ClassifierResult`) and the
resolved configuration it records."""

import contextlib
import math

import numpy as np

import callbacks as cb
from callbacks._internal import check_number


def evaluate_splits(model, strategy=None, **splits):
    """`{split}_{metric}` for each non-None dataset given by keyword."""
    metrics = {}
    for prefix, dataset in splits.items():
        if dataset is not None:
            with (strategy.scope() if strategy is not None
                  else contextlib.nullcontext()):
                logs = model.evaluate(dataset, verbose=0, return_dict=True)
            metrics.update({f"{prefix}_{k}": float(v) for k, v in logs.items()})
    return metrics


def training_config(*, runtime, steps_per_execution, learning_rate,
                    requested_learning_rate, used_lr_finder, history,
                    **settings):
    """The part of a recipe's resolved config that every recipe shares:
    the given `settings`, where the learning rate came from, the runtime
    (strategy, replicas, precision) and how many epochs really ran."""
    return {
        **settings,
        "learning_rate": learning_rate,
        "learning_rate_source": (
            "lr_finder" if used_lr_finder
            else "given" if requested_learning_rate else "default"),
        "global_batch_size": runtime.batch_size,
        "replicas": runtime.replicas,
        "strategy": type(runtime.strategy).__name__,
        "mixed_precision": runtime.policy,
        "steps_per_execution": steps_per_execution,
        "epochs_run": len(history.get("loss", [])),
    }


# Settings a recipe's config records as given (those its config has).
_RECORDED = ("optimizer", "schedule", "warmup_fraction", "label_smoothing",
             "weight_decay", "ema_momentum", "batch_size", "early_stopping")


def recipe_training_config(config, plan, *, runtime, learning_rate,
                           used_lr_finder, history):
    """`training_config` of a recipe's `config` and `plan` (dataclasses):
    its optimizer settings as given, its plan's patience and steps per
    call."""
    return training_config(
        runtime=runtime, steps_per_execution=plan.steps_per_execution,
        learning_rate=learning_rate,
        requested_learning_rate=config.learning_rate,
        used_lr_finder=used_lr_finder, history=history,
        **{name: getattr(config, name) for name in _RECORDED
           if hasattr(config, name)},
        patience=plan.patience, seed=config.seed)


def save_plot(history, path):
    """Save training curves (loss and accuracy) to `path`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    axes = draw_history(history)
    axes[0].figure.tight_layout()
    axes[0].figure.savefig(path, dpi=100)
    plt.close(axes[0].figure)


def draw_history(history):
    """Loss and accuracy curves (with their `val_` twins) on new axes."""
    return cb.plot_history(history, metrics=[
        k for k in ("loss", "accuracy") if k in history])


def jsonable(value):
    """Config values as JSON: tuples to lists, NumPy scalars to Python."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


class FitResult:
    """What a recipe returns: the trained model and what happened.

    Attributes:
        model: The trained `keras.Model` (best validation epoch restored
            when early stopping is on).
        history: Dict of per-epoch lists over all phases.
        metrics: Final metrics (`val_*`, and `test_*` with test data).
        config: The resolved configuration (every default made explicit).
        output_dir: The run directory, or `None`.
        plan: What the recipe resolved its arguments to (a recipe's plan
            object), or `None`.
    """

    def __init__(self, model, history, metrics, config, output_dir=None,
                 plan=None):
        self.model = model
        self.history = history
        self.metrics = metrics
        self.config = config
        self.output_dir = output_dir
        self.plan = plan

    def plot(self, path=None):
        """Plot the training curves (matplotlib).

        Args:
            path: Optional file to save the figure to. Defaults to `None`.

        Returns:
            The list of matplotlib `Axes`.
        """
        axes = draw_history(self.history)
        if path is not None:
            axes[0].figure.savefig(path, dpi=100)
        return axes

    def __repr__(self):
        shown = ", ".join(f"{k}={v:.4f}" for k, v in self.metrics.items())
        return f"{type(self).__name__}({shown})"


class ClassifierResult(FitResult):
    """A classifier recipe's result: predictions, evaluation with test-time
    augmentation, and interpretation.

    Subclasses turn raw user inputs into model inputs (`_model_inputs`),
    say how examples are drawn (`_input_kind`) and which TTA policy a
    `tta` argument means (`_tta_policy`).

    Attributes:
        class_names: Class names; `model` output `i` is `class_names[i]`.
    """

    def __init__(self, model, class_names, history, metrics, config,
                 output_dir=None, plan=None):
        super().__init__(model, history, metrics, config, output_dir, plan)
        self.class_names = list(class_names)

    def _tta_policy(self, tta):
        if tta is None or tta is False:
            return None
        raise ValueError(
            "Argument `tta` (test-time augmentation) applies to image "
            f"classifiers only. Received: tta={tta!r}"
        )

    def predict_proba(self, x, batch_size=256, tta=False):
        """Class probabilities of raw examples `x` (like the training data).

        Args:
            x: Examples (see `predict`).
            batch_size: Prediction batch size. Defaults to `256`.
            tta: Test-time augmentation (image classifiers): `False`,
                `True`/`"auto"`, `"shift"` or `"flip"` (see `recipes.tta`).
                Defaults to `False`.

        Returns:
            Float array `(n, num_classes)`.
        """
        from recipes import tta as tta_module

        policy = self._tta_policy(tta)
        check_number("batch_size", batch_size, low=1, integer=True)
        inputs = self._model_inputs(x)

        def predict(batch):
            return self.model.predict(batch, batch_size=batch_size,
                                      verbose=0)

        if policy is None:
            return np.asarray(predict(inputs))
        return tta_module.predict_with_tta(predict, inputs, policy)

    def predict(self, x, batch_size=256, tta=False):
        """Class names of raw examples `x` (like the training data).

        Args:
            x: Images (one or a batch) for an image classifier; a
                `(n, timesteps, features)` array, a list of sequences, or
                strings for a sequence classifier.
            batch_size: Prediction batch size. Defaults to `256`.
            tta: Test-time augmentation, see `predict_proba`. Defaults to
                `False`.

        Returns:
            NumPy array of `n` class names.

        Raises:
            ValueError: If the examples do not fit the model.
        """
        probabilities = self.predict_proba(x, batch_size=batch_size, tta=tta)
        return np.asarray(self.class_names)[np.argmax(probabilities, -1)]

    def _label_indices(self, y, n):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.shape != (n,):
            raise ValueError(
                f"Argument `data` must hold one label per example ({n}). "
                f"Received: labels of shape {y.shape}"
            )
        if y.dtype.kind in "USO":
            lookup = {name: i for i, name in enumerate(self.class_names)}
            unknown = sorted({str(v) for v in y} - set(lookup))
            if unknown:
                raise ValueError(
                    "Argument `data` has labels that are not class names "
                    f"{self.class_names}. Received: {unknown[:5]}"
                )
            return np.array([lookup[str(v)] for v in y], dtype="int64")
        if y.dtype.kind not in "iuf" or not np.all(np.mod(y, 1) == 0) or (
                y.min() < 0 or y.max() >= len(self.class_names)):
            raise ValueError(
                "Argument `data` must hold class names or integer labels in "
                f"[0, {len(self.class_names)}). Received: labels of dtype "
                f"{y.dtype}"
            )
        return y.astype("int64")

    def interpret(self, data, batch_size=256, tta=False):
        """Confusion matrix, per-class scores and top losses on `data`.

        Args:
            data: A pair `(x, y)` of raw examples (like the training data)
                and their labels (class names, or indices into
                `class_names`).
            batch_size: Prediction batch size. Defaults to `256`.
            tta: Test-time augmentation, see `predict_proba`. Defaults to
                `False`.

        Returns:
            A `recipes.interpretation.Interpretation`.

        Raises:
            ValueError: For data that is not such a pair, or labels that
                are not classes of the model.
        """
        from recipes.interpretation import Interpretation

        if not (isinstance(data, tuple | list) and len(data) == 2):
            raise ValueError(
                "Argument `data` must be a pair `(x, y)` of examples and "
                f"labels. Received: data of type {type(data).__name__}"
            )
        x, y = data
        probabilities = self.predict_proba(x, batch_size=batch_size, tta=tta)
        labels = self._label_indices(y, len(probabilities))
        kind, inputs = self._input_kind(x)
        return Interpretation(
            labels, probabilities, self.class_names, inputs=inputs,
            kind=kind, value_range=self.config.get("value_range", 255.0))

    def evaluate(self, data, batch_size=256, tta=False):
        """Accuracy and cross-entropy on `data`, with or without TTA.

        The cross-entropy is the mean of `-log p(true class)`, without the
        label smoothing training may use (so it differs from
        `model.evaluate`'s loss when `label_smoothing` > 0).

        Args:
            data: A pair `(x, y)` (see `interpret`).
            batch_size: Prediction batch size. Defaults to `256`.
            tta: Test-time augmentation, see `predict_proba`. Defaults to
                `False`.

        Returns:
            `{"accuracy": float, "cross_entropy": float}`.
        """
        interpretation = self.interpret(data, batch_size=batch_size,
                                        tta=tta)
        return {"accuracy": interpretation.accuracy,
                "cross_entropy": float(np.mean(interpretation.losses))}
