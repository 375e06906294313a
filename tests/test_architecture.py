"""The layering rules of ARCHITECTURE.md, read from the source (no import).

- `callbacks` never imports `recipes`, and imports nothing but the
  standard library, `keras`, `numpy` (and `matplotlib`, lazily, to plot).
- `recipes` reaches the internals of `callbacks` only through the one
  declared internal module, `callbacks._internal`.
- No module uses another module's private name (`from m import _x` or
  `m._x`): what modules share is a public name of a private module.
"""

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("callbacks", "recipes")
_STDLIB = set(sys.stdlib_module_names)


def _modules(package):
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path):
    """`[(lineno, module, name_or_None)]` of every import in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name, None) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.extend((node.lineno, node.module, a.name)
                         for a in node.names)
    return found


def _is_module(dotted):
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _where(path, lineno):
    return f"{path.relative_to(ROOT)}:{lineno}"


def test_callbacks_import_only_keras_numpy_and_the_standard_library():
    allowed = {"keras", "numpy", "matplotlib", "callbacks"}
    wrong = [f"{_where(p, n)} imports {m}" for p in _modules("callbacks")
             for n, m, _ in _imports(p)
             if m.split(".")[0] not in allowed | _STDLIB]
    assert not wrong, wrong


def test_recipes_reach_callbacks_internals_only_through_internal():
    wrong = []
    for path in _modules("recipes"):
        for lineno, module, name in _imports(path):
            if module.split(".")[0] != "callbacks":
                continue
            parts = module.split(".") + ([name] if name else [])
            private = [p for p in parts[1:] if p.startswith("_")]
            if private and private != ["_internal"]:
                wrong.append(f"{_where(path, lineno)}: {'.'.join(parts)}")
    assert not wrong, wrong


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_uses_another_modules_private_names(package):
    wrong = []
    for path in _modules(package):
        tree = ast.parse(path.read_text())
        aliases = {}
        for lineno, module, name in _imports(path):
            if module.split(".")[0] not in PACKAGES:
                continue
            if name is None:
                continue
            dotted = f"{module}.{name}"
            if _is_module(dotted):
                aliases[name] = dotted
            elif name.startswith("_") and not name.startswith("__"):
                wrong.append(f"{_where(path, lineno)}: from {module} "
                             f"import {name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in aliases
                    and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and not _is_module(f"{aliases[node.value.id]}."
                                       f"{node.attr}")):
                wrong.append(f"{_where(path, node.lineno)}: "
                             f"{node.value.id}.{node.attr}")
    assert not wrong, wrong


def test_the_rules_see_a_violation(tmp_path, monkeypatch):
    # The checks above read source files; a planted violation is found.
    bad = tmp_path / "callbacks" / "bad.py"
    bad.parent.mkdir()
    bad.write_text("import recipes\nfrom recipes.data import _hidden\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    with pytest.raises(AssertionError, match="imports recipes"):
        test_callbacks_import_only_keras_numpy_and_the_standard_library()
    with pytest.raises(AssertionError, match="_hidden"):
        test_no_module_uses_another_modules_private_names("callbacks")
