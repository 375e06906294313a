"""Tests of `recipes.interpretation` and the results' `interpret`, checked
against scikit-learn's metrics on the real 8x8 digits."""

import collections

import matplotlib
import numpy as np
import pytest
from sklearn import metrics
from sklearn.linear_model import LogisticRegression

from recipes.interpretation import Interpretation

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def logistic_digits(digits_8x8):
    """Labels and probabilities of scikit-learn's logistic regression on
    the real digits (an independent classifier)."""
    (x, y), (xv, yv) = digits_8x8
    model = LogisticRegression(max_iter=200, C=0.05).fit(
        x.reshape(len(x), -1), y)
    return yv, model.predict_proba(xv.reshape(len(xv), -1)), xv


def _check_against_sklearn(interp, y, probabilities, check_loss=True):
    k = probabilities.shape[1]
    predicted = probabilities.argmax(1)
    np.testing.assert_array_equal(
        interp.confusion_matrix,
        metrics.confusion_matrix(y, predicted, labels=range(k)))
    report = interp.classification_report()
    p, r, f, s = metrics.precision_recall_fscore_support(
        y, predicted, labels=range(k), zero_division=0)
    for i, name in enumerate(interp.class_names):
        np.testing.assert_allclose(
            [report[name][key] for key in ("precision", "recall", "f1")],
            [p[i], r[i], f[i]], atol=1e-12)
        assert report[name]["support"] == s[i]
    reference = metrics.classification_report(
        y, predicted, labels=range(k), output_dict=True, zero_division=0)
    for row in ("macro avg", "weighted avg"):
        np.testing.assert_allclose(
            [report[row][key] for key in ("precision", "recall", "f1")],
            [reference[row][key]
             for key in ("precision", "recall", "f1-score")], atol=1e-12)
    np.testing.assert_allclose(report["accuracy"],
                               metrics.accuracy_score(y, predicted))
    if check_loss:
        np.testing.assert_allclose(
            interp.losses.mean(),
            metrics.log_loss(y, probabilities / probabilities.sum(
                1, keepdims=True), labels=range(k)), rtol=1e-6)


def test_metrics_match_sklearn(logistic_digits):
    y, probabilities, _ = logistic_digits
    interp = Interpretation(y, probabilities)
    _check_against_sklearn(interp, y, probabilities)
    for i in (0, 17, 200):
        np.testing.assert_allclose(
            interp.losses[i],
            metrics.log_loss([y[i]], probabilities[i:i + 1],
                             labels=range(10)), rtol=1e-6)


def test_class_never_predicted_scores_zero(logistic_digits):
    y, probabilities, _ = logistic_digits
    # Class 8 loses all its probability: never predicted, precision 0/0.
    squeezed = probabilities.copy()
    squeezed[:, 8] = 0.0
    squeezed /= squeezed.sum(1, keepdims=True)
    interp = Interpretation(y, squeezed)
    assert interp.confusion_matrix[:, 8].sum() == 0
    assert interp.classification_report()["8"]["precision"] == 0.0
    # scikit-learn clips probabilities at float64's epsilon, we at 1e-7.
    _check_against_sklearn(interp, y, squeezed, check_loss=False)
    # The clipped log keeps the loss of the impossible class finite.
    assert np.isfinite(interp.losses).all()
    assert interp.losses[y == 8].min() >= -np.log(1e-7) - 1e-9


def test_most_confused_and_top_losses(logistic_digits):
    y, probabilities, _ = logistic_digits
    names = [f"digit {i}" for i in range(10)]
    interp = Interpretation(y, probabilities, class_names=names)
    predicted = probabilities.argmax(1)
    mistakes = collections.Counter(
        (names[a], names[p]) for a, p in zip(y, predicted, strict=True)
        if a != p)
    confused = interp.most_confused(n=100)
    assert {(a, p): c for a, p, c in confused} == dict(mistakes)
    counts = [c for _, _, c in confused]
    assert counts == sorted(counts, reverse=True)
    assert interp.most_confused(n=2) == confused[:2]
    assert all(c >= 2 for _, _, c in interp.most_confused(100, min_count=2))

    top = interp.top_losses(5)
    true_probability = probabilities[np.arange(len(y)), y]
    worst = np.sort(-np.log(true_probability))[::-1][:5]
    np.testing.assert_allclose([t.loss for t in top], worst, rtol=1e-6)
    for t in top:
        assert t.actual == names[y[t.index]]
        assert t.predicted == names[predicted[t.index]]
        assert t.probability == pytest.approx(probabilities[t.index].max())


def test_recipe_interpret_matches_sklearn(digits_result, digits_8x8):
    _, (xv, yv) = digits_8x8
    interp = digits_result.interpret((xv, yv))
    probabilities = digits_result.model.predict(xv, verbose=0)
    _check_against_sklearn(interp, yv, probabilities.astype("float64"))
    assert interp.accuracy == pytest.approx(
        digits_result.metrics["val_accuracy"], abs=1e-6)
    assert interp.inputs.shape == xv.shape and interp.kind == "image"
    # Labels given as class names give the same interpretation.
    named = digits_result.interpret((xv[..., 0], yv.astype(str)))
    np.testing.assert_array_equal(named.confusion_matrix,
                                  interp.confusion_matrix)
    scores = digits_result.evaluate((xv, yv))
    assert scores["accuracy"] == pytest.approx(interp.accuracy)
    assert scores["cross_entropy"] == pytest.approx(metrics.log_loss(
        yv, probabilities / probabilities.sum(1, keepdims=True),
        labels=range(10)), rel=1e-5)


def test_plots(digits_result, digits_8x8):
    import matplotlib.pyplot as plt

    _, (xv, yv) = digits_8x8
    interp = digits_result.interpret((xv, yv))
    ax = interp.plot_confusion_matrix()
    shown = np.array([int(t.get_text()) for t in ax.texts]).reshape(10, 10)
    np.testing.assert_array_equal(shown, interp.confusion_matrix)
    ax = interp.plot_confusion_matrix(normalize=True)
    rows = np.array([float(t.get_text()) for t in ax.texts]).reshape(10, 10)
    np.testing.assert_allclose(rows.sum(1), 1.0, atol=0.06)
    axes = interp.plot_top_losses(4, ncols=3)
    assert axes.shape == (2, 3)
    titles = [a.get_title() for a in axes.flat[:4]]
    expected = [f"{t.predicted} / {t.actual} / {t.loss:.2f} / "
                f"{t.probability:.2f}" for t in interp.top_losses(4)]
    assert titles == expected
    assert axes.flat[0].images[0].get_array().shape == (8, 8)
    plt.close("all")


def test_bad_input(digits_result, digits_8x8, logistic_digits):
    _, (xv, yv) = digits_8x8
    y, probabilities, _ = logistic_digits
    with pytest.raises(ValueError, match="Argument `labels`"):
        Interpretation(y[:-1], probabilities)
    with pytest.raises(ValueError, match="Argument `labels`"):
        Interpretation(y + 10, probabilities)
    with pytest.raises(ValueError, match="Argument `class_names`"):
        Interpretation(y, probabilities, class_names=["a", "b"])
    with pytest.raises(ValueError, match="Argument `n` must be"):
        Interpretation(y, probabilities).top_losses(0)
    with pytest.raises(ValueError, match="Received: inputs=None"):
        Interpretation(y, probabilities).plot_top_losses()
    with pytest.raises(ValueError, match="Argument `data` must be a pair"):
        digits_result.interpret(xv)
    with pytest.raises(ValueError, match="not class names"):
        digits_result.interpret((xv, np.full(len(yv), "eleven")))
    with pytest.raises(ValueError, match="one label per example"):
        digits_result.interpret((xv, yv[:-1]))
