"""Execute the notebooks once, with a small budget, for the docs site.

The site shows `docs/notebooks/*.ipynb` with their outputs; the build never
executes anything. Re-run this after changing a notebook (a few minutes on
two CPU cores) and commit the results:

    PYTHONPATH=. python docs/execute_notebooks.py

Each notebook's cell tagged `parameters` gets the budget below appended
(the same mechanism as `tests/notebooks/test_notebooks.py`), and a note
saying so is put at the top of the executed copy. The sources in
`notebooks/` keep their full budgets and no outputs.
"""

import os
import sys
import tempfile

import nbclient
import nbformat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "notebooks")
TARGET = os.path.join(ROOT, "docs", "notebooks")

BUDGETS = {
    "tuning_quickstart.ipynb": dict(
        TUNER="hyperband", MAX_TRIALS=6, MAX_EPOCHS=3, TRAIN_SIZE=2000),
    "tune_your_own_model.ipynb": dict(
        MAX_TRIALS=3, EPOCHS=3, TRAIN_SIZE=2000),
}


def drop_stderr(book):
    """Removes stderr streams (TensorFlow's C++ log lines, retracing notes)."""
    for cell in book.cells:
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs
                            if not (o.get("output_type") == "stream"
                                    and o.get("name") == "stderr")]
    return book


def execute(name, parameters):
    book = nbformat.read(os.path.join(SOURCE, name), as_version=4)
    cell = next(c for c in book.cells
                if "parameters" in c.metadata.get("tags", []))
    cell.source += "\n# Budget of the docs build (docs/execute_notebooks.py)\n"
    cell.source += "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    budget = ", ".join(f"`{k}={v!r}`" for k, v in parameters.items())
    book.cells.insert(1, nbformat.v4.new_markdown_cell(
        f"*Executed for the documentation by `docs/execute_notebooks.py` "
        f"with a small budget ({budget}) on a 2-core CPU machine; the "
        f"notebook in `notebooks/` has the full budget. Log lines written "
        f"to stderr are left out.*"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["PYTHONPATH"] = ROOT
    with tempfile.TemporaryDirectory() as workdir:
        nbclient.NotebookClient(
            book, timeout=1800, kernel_name="python3",
            resources={"metadata": {"path": workdir}}).execute()
    os.makedirs(TARGET, exist_ok=True)
    nbformat.write(drop_stderr(book), os.path.join(TARGET, name))
    print("wrote", os.path.relpath(os.path.join(TARGET, name), ROOT))


def main(names):
    for name in names or sorted(BUDGETS):
        execute(name, BUDGETS[name])


if __name__ == "__main__":
    main(sys.argv[1:])
