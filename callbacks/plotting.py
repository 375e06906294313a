"""Pictures of schedules and training histories (matplotlib, optional)."""

import numpy as np
from keras import ops

from callbacks._validation import check_number


def schedule_values(schedule, steps):
    """Evaluate `schedule` at steps `0 .. steps - 1`.

    Args:
        schedule: A `LearningRateSchedule` or any callable of the step.
        steps: Number of steps.

    Returns:
        A NumPy array of `steps` learning rates.

    Raises:
        ValueError: If `steps` is not a positive integer.
    """
    steps = check_number("steps", steps, low=1, integer=True)
    return np.array([float(ops.convert_to_numpy(schedule(step)))
                     for step in range(steps)])


def plot_schedule(schedule, steps, ax=None, log_scale=False, label=None):
    """Plot the learning rate of any schedule over `steps` steps.

    Args:
        schedule: A `LearningRateSchedule` (Keras's or ours) or a callable
            of the step.
        steps: Number of steps to draw.
        ax: A matplotlib `Axes`; a new figure when `None`.
            Defaults to `None`.
        log_scale: Whether the y axis is logarithmic. Defaults to `False`.
        label: Legend label. Defaults to the schedule's class name.

    Returns:
        The matplotlib `Axes`.

    Raises:
        ValueError: If `steps` is not a positive integer.
        ImportError: If matplotlib is not installed.

    Example:

    ```python
    ax = callbacks.plot_schedule(
        callbacks.OneCycleSchedule(1e-2, total_steps=1000), 1000)
    ax.figure.savefig("one_cycle.png")
    ```
    """
    values = schedule_values(schedule, steps)
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.arange(steps), values,
            label=label or type(schedule).__name__)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.legend()
    return ax


def plot_history(history, metrics=None, ax=None):
    """Plot training curves from a `History` (or its `.history` dict).

    Each metric is drawn with its `val_` counterpart when present.

    Args:
        history: A `keras.callbacks.History` or a dict of lists.
        metrics: A name or a list of names to draw. Defaults to every
            non-`val_` key.
        ax: A matplotlib `Axes` or a sequence of them, one per metric;
            new figures when `None`. Defaults to `None`.

    Returns:
        The list of matplotlib `Axes`.

    Raises:
        ValueError: If `history` is empty, `metrics` names a key it does not
            have, or `ax` does not hold one `Axes` per metric.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        raise ValueError(
            "Argument `history` must be a History or a non-empty dict of "
            f"lists. Received: history={history!r}"
        )
    if metrics is None:
        metrics = [k for k in logs if not k.startswith("val_")]
    elif isinstance(metrics, str):
        metrics = [metrics]
    for name in metrics:
        if name not in logs:
            raise ValueError(
                f"Argument `metrics` names {name!r}, which the history "
                f"does not have. Available: {sorted(logs)}"
            )
    if ax is not None and len(np.atleast_1d(ax)) != len(metrics):
        raise ValueError(
            "Argument `ax` must hold one Axes per metric "
            f"({len(metrics)}: {list(metrics)}). Received: "
            f"ax with {len(np.atleast_1d(ax))}"
        )
    if ax is None:
        _, axes = plt.subplots(1, len(metrics),
                               figsize=(4.5 * len(metrics), 3.5),
                               squeeze=False)
        axes = list(axes[0])
    else:
        axes = list(np.atleast_1d(ax))
    for name, axis in zip(metrics, axes, strict=True):
        epochs = np.arange(1, len(logs[name]) + 1)
        axis.plot(epochs, logs[name], label=name)
        if f"val_{name}" in logs:
            axis.plot(epochs, logs[f"val_{name}"], label=f"val_{name}")
        axis.set_xlabel("epoch")
        # Epochs are whole: no 2.5 tick on a short run.
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(name)
        axis.legend()
    return axes
