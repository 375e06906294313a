"""plot_schedule / schedule_values / plot_history."""

import keras
import matplotlib
import numpy as np
import pytest

import callbacks

matplotlib.use("Agg")


def test_schedule_values_match_direct_evaluation():
    s = keras.optimizers.schedules.PiecewiseConstantDecay([3, 6],
                                                          [1.0, 0.5, 0.1])
    np.testing.assert_allclose(callbacks.schedule_values(s, 8),
                               [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.1], rtol=1e-6)


def test_plot_schedule_and_history_draw(tmp_path):
    ax = callbacks.plot_schedule(callbacks.OneCycleSchedule(0.1, 100), 50,
                                 log_scale=True)
    line = ax.get_lines()[0]
    assert len(line.get_xdata()) == 50
    assert max(line.get_ydata()) == pytest.approx(0.1, rel=1e-5)
    ax.figure.savefig(tmp_path / "s.png")
    axes = callbacks.plot_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7],
                                   "accuracy": [0.5, 0.8]})
    assert [a.get_title() for a in axes] == ["loss", "accuracy"]
    assert len(axes[0].get_lines()) == 2
    # One name as a string draws that metric (it iterated its letters).
    (axis,) = callbacks.plot_history({"loss": [1.0, 0.5],
                                      "val_loss": [1.1, 0.7]},
                                     metrics="loss")
    assert axis.get_title() == "loss"
    np.testing.assert_allclose(axis.get_lines()[1].get_ydata(), [1.1, 0.7])


def test_history_epochs_from_one_with_whole_ticks():
    (axis,) = callbacks.plot_history({"loss": [1.0, 0.7, 0.6]})
    np.testing.assert_array_equal(axis.get_lines()[0].get_xdata(), [1, 2, 3])
    axis.figure.canvas.draw()
    ticks = [t for t in axis.get_xticks()
             if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_bad_arguments():
    with pytest.raises(ValueError, match="`steps`.*Received"):
        callbacks.plot_schedule(callbacks.ConstantSchedule(0.1), 0)
    with pytest.raises(ValueError, match="`history`"):
        callbacks.plot_history({})
    with pytest.raises(ValueError, match="`metrics`"):
        callbacks.plot_history({"loss": [1.0]}, metrics=["accuracy"])
    import matplotlib.pyplot as plt

    _, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="`ax`.*one Axes per metric"):
        callbacks.plot_history({"loss": [1.0]}, ax=axes)
