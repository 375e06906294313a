"""Every `>>>` example in the docstrings of `callbacks` and `recipes` runs
and prints what it shows.

The examples are part of the documentation, so they are tested like code:
a renamed argument or a changed default breaks them here instead of in a
user's session. As in Keras's docstrings, `keras` and `np` are assumed
imported.
"""

import doctest
import importlib
import os
import pkgutil

import keras
import numpy as np
import pytest

import callbacks
import recipes

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _module_names():
    names = [callbacks.__name__, recipes.__name__]
    for package in (callbacks, recipes):
        names += [info.name for info in pkgutil.walk_packages(
            package.__path__, package.__name__ + ".")
            if not info.name.endswith("__main__")]
    return names


def _docstring_tests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = {}
    for name in _module_names():
        module = importlib.import_module(name)
        for test in finder.find(module, globs={}):
            # Objects re-exported from elsewhere are tested where defined.
            if (test.examples and test.filename
                    and test.filename.startswith(_ROOT)
                    and test.name not in found):
                found[test.name] = (name, test.name)
    return sorted(found.values())


_TESTS = _docstring_tests()


def test_examples_were_found():
    # The public entry points document themselves with examples.
    names = {name for _, name in _TESTS}
    assert {"recipes.image_classifier.fit_image_classifier",
            "recipes.compress.quantization.export_tflite",
            "callbacks.schedules.WarmupCosineDecay"} <= names
    assert len(_TESTS) > 50


@pytest.mark.parametrize("module_name, test_name", _TESTS,
                         ids=[name for _, name in _TESTS])
def test_docstring_example(module_name, test_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    globs = {**vars(module), "keras": keras, "np": np}
    (test,) = [t for t in finder.find(module, globs=globs)
               if t.name == test_name]
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)
