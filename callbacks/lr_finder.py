"""Learning-rate range test (LR finder)."""

import math
import warnings

import keras
import numpy as np

from callbacks import _lr_control
from callbacks._validation import check_choice, check_number

SUGGESTION_METHODS = ("valley", "steepest", "minimum")


class LRFinderResult:
    """What an LR range test measured.

    Attributes:
        lrs: Learning rate used at each step (NumPy array).
        losses: Bias-corrected exponentially smoothed training loss.
        raw_losses: Training loss of each batch.
        diverged: Whether the sweep stopped early because the loss blew up.
    """

    def __init__(self, lrs, losses, raw_losses, diverged):
        self.lrs = np.asarray(lrs, dtype="float64")
        self.losses = np.asarray(losses, dtype="float64")
        self.raw_losses = np.asarray(raw_losses, dtype="float64")
        self.diverged = bool(diverged)

    def __repr__(self):
        try:
            suggestion = f"{self.suggestion():.3g}"
        except ValueError:
            # Too few finite losses: the object must still display.
            suggestion = None
        return (f"LRFinderResult(steps={len(self.lrs)}, "
                f"diverged={self.diverged}, suggestion={suggestion})")

    def _usable(self):
        finite = np.isfinite(self.losses)
        if finite.sum() < 3:
            raise ValueError(
                "The LR range test recorded fewer than 3 finite losses; "
                "lower `start_learning_rate` or raise `num_steps`."
            )
        last = int(np.flatnonzero(finite)[-1]) + 1
        return self.lrs[:last], self.losses[:last]

    def suggestion(self, method="valley"):
        """Suggest a learning rate from the curve.

        Args:
            method: One of:
                - `"valley"`: the middle, in steps (so the geometric mean
                  in LR), of the descent: from where the smoothed loss
                  has covered 10% of its drop to its minimum;
                - `"steepest"`: where the smoothed loss falls fastest
                  against log(lr);
                - `"minimum"`: one tenth of the LR at the lowest smoothed
                  loss (the classic rule of thumb).
                Defaults to `"valley"`.

        Returns:
            The suggested learning rate (float).

        Raises:
            ValueError: If `method` is unknown or too few finite losses
                were recorded.
        """
        check_choice("method", method, SUGGESTION_METHODS)
        lrs, losses = self._usable()
        if method == "minimum":
            return float(lrs[int(np.argmin(losses))] / 10.0)
        if method == "steepest":
            slope = np.gradient(losses, np.log(lrs))
            return float(lrs[int(np.argmin(slope))])
        start, end = _valley(losses)
        return float(lrs[start + (end - start) // 2])

    def plot(self, ax=None, method="valley"):
        """Plot smoothed loss against learning rate (log scale).

        Args:
            ax: A matplotlib `Axes`; a new figure when `None`.
                Defaults to `None`.
            method: Suggestion to mark on the curve. Defaults to
                `"valley"`.

        Returns:
            The matplotlib `Axes`.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.lrs, self.losses, label="smoothed loss")
        lr = self.suggestion(method)
        ax.axvline(lr, color="tab:red", linestyle="--",
                   label=f"{method}: {lr:.2e}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.set_title("LR range test")
        ax.legend()
        return ax


def _valley(losses):
    """(start, end) of the descent: from the first step where the smoothed
    loss has covered 10% of its total drop to the step of its minimum."""
    end = int(np.argmin(losses))
    drop = losses[0] - losses[end]
    below = np.flatnonzero(losses[:end + 1] <= losses[0] - 0.1 * drop)
    start = int(below[0]) if len(below) else end
    return start, end


class LRFinder:
    """Learning-rate range test (Smith, 2017).

    Trains the model for up to `num_steps` batches while the learning rate
    grows exponentially from `start_learning_rate` to `end_learning_rate`
    (in-graph, through the same mechanism as `ScheduleLR`), records the
    loss of each batch, smooths it (bias-corrected exponential moving
    average), and stops early once the smoothed loss becomes non-finite or
    rises above its minimum by more than `divergence_threshold - 1` times
    the minimum's magnitude: for a positive loss, once it exceeds
    `divergence_threshold` times its minimum; a negative loss (such as
    `"cosine_similarity"`) diverges once it has climbed back by that
    multiple of `|minimum|`. Afterwards the model's variables (weights,
    non-trainable statistics, random seed state), the optimizer's state
    (slots, step count, learning rate) and its metrics are exactly as
    before.

    Arrays (a NumPy array or tensor, or a dict / list / tuple of them,
    with `y` likewise) are shuffled and batched by `find`, over as many
    passes as `num_steps` needs. A dataset or iterable of batches is
    iterated again when it runs out; a one-shot iterator (such as a
    generator) that runs out first ends the sweep early with a warning,
    and the result holds the steps made so far.

    Args:
        start_learning_rate: First learning rate. Defaults to `1e-7`.
        end_learning_rate: Last learning rate. Defaults to `10.0`.
        num_steps: Number of batches in the sweep. Defaults to `100`.
        smoothing: EMA factor of the loss, in [0, 1). Defaults to `0.98`.
        divergence_threshold: Stop when the smoothed loss exceeds this
            multiple of the best one (for negative losses: rises above it
            by `divergence_threshold - 1` times its magnitude). A loss
            that hovers around 0 makes this ratio noisy; raise the
            threshold for such losses. Defaults to `4.0`.
        verbose: Whether to show a progress bar. Defaults to `1`.

    Raises:
        ValueError: If an argument is out of range.

    Example:

    ```python
    result = callbacks.LRFinder(num_steps=100).find(model, x, y)
    lr = result.suggestion()
    result.plot()
    ```

    References:
        - Smith, 2017. Cyclical Learning Rates for Training Neural
          Networks (section 3.3). https://arxiv.org/abs/1506.01186
    """

    def __init__(self, start_learning_rate=1e-7, end_learning_rate=10.0,
                 num_steps=100, smoothing=0.98, divergence_threshold=4.0,
                 verbose=1):
        self.start_learning_rate = check_number(
            "start_learning_rate", start_learning_rate, low=0.0,
            low_inclusive=False)
        self.end_learning_rate = check_number(
            "end_learning_rate", end_learning_rate, low=0.0,
            low_inclusive=False)
        if self.end_learning_rate <= self.start_learning_rate:
            raise ValueError(
                "Argument `end_learning_rate` must be > "
                f"`start_learning_rate` ({self.start_learning_rate}). "
                f"Received: end_learning_rate={end_learning_rate}"
            )
        self.num_steps = check_number("num_steps", num_steps, low=3,
                                      integer=True)
        self.smoothing = check_number("smoothing", smoothing, low=0.0,
                                      high=1.0, high_inclusive=False)
        self.divergence_threshold = check_number(
            "divergence_threshold", divergence_threshold, low=1.0,
            low_inclusive=False)
        self.verbose = verbose

    def learning_rate_at(self, step):
        """The learning rate of sweep step `step`."""
        ratio = self.end_learning_rate / self.start_learning_rate
        return self.start_learning_rate * ratio ** (
            step / (self.num_steps - 1))

    def find(self, model, x, y=None, batch_size=32):
        """Run the range test on `model`.

        Args:
            model: A compiled Keras model.
            x: Inputs: a NumPy array or tensor, a dict / list / tuple of
                them (for multi-input models), or a `tf.data.Dataset`,
                `keras.utils.PyDataset` or other iterable yielding
                `(x, y)` or `(x, y, sample_weight)` batches. A one-shot
                iterator that runs out before `num_steps` batches ends the
                sweep early (with a warning).
            y: Targets when `x` holds arrays (same structure rules);
                must be `None` for a dataset. Defaults to `None`.
            batch_size: Batch size when `x` holds arrays. Defaults to `32`.

        Returns:
            An `LRFinderResult`.

        Raises:
            ValueError: If the model is not compiled, the data is empty,
                `x` and `y` have different lengths, or `y` is given with a
                dataset.
        """
        _lr_control.check_model(self, model)
        batches = _batches(x, y, batch_size)
        first = next(batches, None)
        if first is None:
            raise ValueError("Argument `x` must contain at least one batch. "
                             "Received an empty dataset.")
        if not model.built:
            model(first[0])
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        # `model.variables`, unlike `get_weights()`, includes the state of
        # the seed generators (dropout, noise), which training advances.
        saved = [(v, np.array(v.numpy()))
                 for v in [*model.variables, *optimizer.variables]]

        ratio = self.end_learning_rate / self.start_learning_rate
        sweep = keras.optimizers.schedules.ExponentialDecay(
            self.start_learning_rate, decay_steps=self.num_steps - 1,
            decay_rate=ratio)
        control = _lr_control.attach(self, model)
        control.set_schedule(self, sweep)
        control.set_offset_to_current_step()
        lrs, losses, raw = [], [], []
        avg, best, diverged, exhausted = 0.0, math.inf, False, False
        progbar = keras.utils.Progbar(self.num_steps) if self.verbose else None
        try:
            batch = first
            for step in range(self.num_steps):
                if batch is None:
                    batches = _batches(x, y, batch_size)
                    batch = next(batches, None)
                    if batch is None:
                        exhausted = True
                        break
                # Each step's own loss: Keras 3.13 keeps the loss tracker's
                # running mean across `train_on_batch` calls (3.15 resets
                # it), so it is reset here on every version.
                model.reset_metrics()
                logs = model.train_on_batch(*batch, return_dict=True)
                loss = float(logs["loss"])
                avg = self.smoothing * avg + (1 - self.smoothing) * loss
                smoothed = avg / (1 - self.smoothing ** (step + 1))
                lrs.append(self.learning_rate_at(step))
                raw.append(loss)
                losses.append(smoothed)
                if progbar is not None:
                    progbar.update(step + 1, [("loss", loss),
                                              ("lr", lrs[-1])])
                if not math.isfinite(smoothed) or (
                        step > 0 and self._diverged(smoothed, best)):
                    diverged = True
                    break
                best = min(best, smoothed)
                batch = next(batches, None)
        finally:
            _lr_control.detach(self, model)
            for variable, value in saved:
                variable.assign(value)
            model.reset_metrics()
        if exhausted:
            warnings.warn(
                f"The LR range test ran out of data after {len(lrs)} of "
                f"{self.num_steps} steps (lr={lrs[-1]:.3g}): `x` is a "
                "one-shot iterator. Pass a re-iterable dataset, more "
                "batches, or a smaller `num_steps`.",
                stacklevel=2,
            )
        if progbar is not None and diverged:
            print(f"\nLR range test stopped at lr={lrs[-1]:.3g}: the loss "
                  "diverged.")
        return LRFinderResult(lrs, losses, raw, diverged)

    def _diverged(self, smoothed, best):
        # The rise above the best loss, against the best loss's magnitude:
        # the same as `smoothed > threshold * best` for positive losses,
        # and still meaningful for negative ones. The floor keeps a best
        # loss of exactly 0 from dividing the test into noise.
        scale = max(abs(best), _TINY)
        return smoothed - best > (self.divergence_threshold - 1) * scale


_TINY = 1e-12


def _is_array(value):
    return isinstance(value, np.ndarray) or keras.ops.is_tensor(value)


def _holds_arrays(x, y):
    """Whether `x` is arrays to batch (not a dataset of batches).

    A dict is always arrays (iterating it would give its keys); a list or
    tuple is arrays when `y` is given, else a list of batches.
    """
    if _is_array(x) or isinstance(x, dict):
        return True
    return isinstance(x, (list, tuple)) and y is not None and all(
        _is_array(leaf) for leaf in keras.tree.flatten(x))


def _length(name, data):
    lengths = {int(np.shape(leaf)[0]) if np.ndim(leaf) else None
               for leaf in keras.tree.flatten(data)}
    if len(lengths) != 1 or None in lengths:
        raise ValueError(
            f"Argument `{name}` must hold arrays with one common first "
            f"(sample) dimension. Received: {name} with lengths "
            f"{sorted(lengths, key=str)}"
        )
    return lengths.pop()


def _batches(x, y, batch_size):
    """A fresh iterator of `(x, y, sample_weight)` batches over the data."""
    if _holds_arrays(x, y):
        check_number("batch_size", batch_size, low=1, integer=True)
        x = keras.tree.map_structure(np.asarray, x)
        n = _length("x", x)
        if y is not None:
            y = keras.tree.map_structure(np.asarray, y)
            n_y = _length("y", y)
            if n_y != n:
                raise ValueError(
                    "Arguments `x` and `y` must have the same length. "
                    f"Received: len(x)={n}, len(y)={n_y}"
                )
        order = np.random.permutation(n)

        def take(data, idx):
            return keras.tree.map_structure(lambda a: a[idx], data)

        return ((take(x, idx), None if y is None else take(y, idx), None)
                for idx in (order[i:i + batch_size]
                            for i in range(0, n, batch_size)))
    if y is not None:
        raise ValueError(
            "Argument `y` must be None when `x` is a dataset or iterable of "
            f"(x, y) batches. Received: x of type {type(x).__name__}, y of "
            f"type {type(y).__name__}"
        )
    return (keras.utils.unpack_x_y_sample_weight(batch) for batch in x)


def find_learning_rate(model, x, y=None, batch_size=32,
                       start_learning_rate=1e-7, end_learning_rate=10.0,
                       num_steps=100, smoothing=0.98,
                       divergence_threshold=4.0, verbose=1):
    """Run an LR range test; the model is left exactly as it was.

    Shortcut for `LRFinder(...).find(model, x, y, batch_size)`; see
    `LRFinder` for the procedure and the arguments.

    Returns:
        An `LRFinderResult` with `.lrs`, `.losses`, `.suggestion()` and
        `.plot()`.

    Example:

    ```python
    result = callbacks.find_learning_rate(model, x_train, y_train)
    model.optimizer.learning_rate = result.suggestion()
    ```
    """
    finder = LRFinder(start_learning_rate, end_learning_rate, num_steps,
                      smoothing, divergence_threshold, verbose)
    return finder.find(model, x, y, batch_size)
