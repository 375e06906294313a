"""Execute every notebook with a tiny budget and check what it shows."""

import os
import re

import nbclient
import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
NOTEBOOKS = os.path.join(ROOT, "notebooks")


def _run(name, parameters, tmp_path):
    book = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    cell = next(c for c in book.cells
                if "parameters" in c.metadata.get("tags", []))
    cell.source += "\n" + "\n".join(
        f"{key} = {value!r}" for key, value in parameters.items())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["PYTHONPATH"] = ROOT
    nbclient.NotebookClient(book, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}
                            ).execute()
    return book


def _text(book):
    parts = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _library_code_defined(book):
    return [c.source for c in book.cells if c.cell_type == "code"
            and re.search(r"^(def|class) ", c.source, re.M)]


@pytest.mark.slow
def test_tuning_quickstart_runs_on_real_mnist(tmp_path):
    book = _run("tuning_quickstart.ipynb", dict(
        TUNER="random", MAX_TRIALS=1, MAX_EPOCHS=1, TRAIN_SIZE=600,
        DIRECTORY=str(tmp_path / "runs")), tmp_path)
    text = _text(book)
    assert "TuningResult(val_accuracy=" in text
    assert "trials: 1 epochs spent: 1" in text
    best = float(re.search(r"best val_accuracy: ([\d.]+)", text).group(1))
    refit = float(re.search(r"re-fit val_accuracy: ([\d.]+)", text).group(1))
    assert 0.0 < best <= 1.0 and 0.0 < refit <= 1.0
    # The plot cell shows a figure.
    assert any("image/png" in output.get("data", {})
               for cell in book.cells for output in cell.get("outputs", []))
    assert not _library_code_defined(book)


@pytest.mark.slow
def test_tune_your_own_model_runs_with_the_library_callbacks(tmp_path):
    book = _run("tune_your_own_model.ipynb", dict(
        MAX_TRIALS=2, EPOCHS=1, TRAIN_SIZE=600,
        DIRECTORY=str(tmp_path / "runs")), tmp_path)
    text = _text(book)
    rows = re.findall(r"^(\d+) COMPLETED ([\d.]+)", text, re.M)
    assert len(rows) == 2
    accuracy = float(re.search(r"val_accuracy: ([\d.]+)", text).group(1))
    # At this size (10 steps) the trials stay near chance: near-uniform
    # probabilities whose argmax flips with each evaluation path's rounding,
    # so the reloaded best model's accuracy need not repeat the best score
    # (seen: 0.100 against 0.126 in CI; one more failure in 11 runs at a
    # 0.05 tolerance, its message not captured). Trials that learn need
    # about 20x the steps (2,000 digits x 2 epochs still stayed at chance
    # with width 8 and a peak LR of 1e-3), too slow for the suite; here the
    # reload is only checked to evaluate.
    assert 0.0 < accuracy <= 1.0
    assert all(0.0 < float(score) <= 1.0 for _, score in rows)
    # Only the user's own model is defined in the notebook.
    defined = _library_code_defined(book)
    assert len(defined) == 1 and "class MyHyperModel" in defined[0]


def test_notebooks_extra_and_how_to_run_them():
    import configparser

    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    extra = config["options.extras_require"]["notebooks"].split()
    names = {re.split(r"[<>=]", requirement)[0] for requirement in extra}
    assert {"jupyter", "nbclient", "ipykernel"} <= names
    with open(os.path.join(NOTEBOOKS, "README.md")) as f:
        readme = f.read()
    assert "## Run the notebooks" in readme
    assert 'pip install -e ".[notebooks]"' in readme


def test_notebook_searches_show_progress():
    import inspect

    from recipes import tune_image_classifier

    assert inspect.signature(tune_image_classifier).parameters[
        "verbose"].default == 1
    for name in ("tuning_quickstart.ipynb", "tune_your_own_model.ipynb"):
        book = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
        searches = [c.source for c in book.cells if c.cell_type == "code"
                    and re.search(r"tune_image_classifier\(|\.search\(",
                                  c.source)]
        assert searches, name
        assert not any("verbose=0" in s for s in searches), name
