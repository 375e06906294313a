"""Every public object of `callbacks` and `recipes` has an API page.

The public API is walked here from the packages' `__all__` (and, for an
exported module without `__all__`, the public names it defines), then
compared with the pages `docs/hooks/api_pages.py` generates for the site.
"""

import importlib
import importlib.util
import inspect
import os
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def hook():
    pytest.importorskip("mkdocs")
    spec = importlib.util.spec_from_file_location(
        "api_pages", os.path.join(ROOT, "docs", "hooks", "api_pages.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _public():
    """`[(path, object)]` of every public name, modules included."""
    found, queue, seen = [], ["callbacks", "recipes"], set()
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None) or [
            n for n, o in vars(module).items() if not n.startswith("_")
            and getattr(o, "__module__", None) == name]
        for member in names:
            obj = getattr(module, member)
            found.append((f"{name}.{member}", obj))
            if isinstance(obj, types.ModuleType):
                queue.append(obj.__name__)
    return found


def _resolve(path):
    # An attribute wins over a submodule of the same name, as in Python:
    # `recipes.initializers.lsuv` is the function, not its module.
    module, _, name = path.rpartition(".")
    if module and hasattr(importlib.import_module(module), name):
        return getattr(importlib.import_module(module), name)
    return importlib.import_module(path)


def test_name_shadowing_a_submodule_renders_the_object(hook):
    # `recipes.initializers.lsuv` is a function and a submodule; griffe
    # would render the module, so its page names the function's own path.
    pages = hook.object_pages(hook.public_namespaces())
    assert "::: recipes.initializers.lsuv.lsuv\n" in pages[
        "api/recipes.initializers.lsuv.md"]


def test_every_public_object_has_a_page(hook):
    pages = hook.object_pages(hook.public_namespaces())
    documented = [_resolve(line[4:].strip())
                  for text in pages.values() for line in text.splitlines()
                  if line.startswith("::: ")]
    public = _public()
    assert len(public) > 100
    for path, obj in public:
        assert any(o is obj for o in documented), f"{path} has no API page"
        if isinstance(obj, types.ModuleType):
            assert f"api/{obj.__name__}.md" in pages, path


def test_every_public_callable_has_its_own_docstring():
    for path, obj in _public():
        if inspect.isclass(obj):
            doc = vars(obj).get("__doc__")
        elif callable(obj) or isinstance(obj, types.ModuleType):
            doc = obj.__doc__
        else:
            continue  # constants: checked through griffe below
        assert doc and doc.strip(), f"{path} has no docstring"


def test_hook_finds_no_undocumented_object(hook):
    # Constants carry their docstring as a string literal after the
    # assignment, which only static analysis (griffe, as mkdocstrings
    # renders it) sees.
    assert hook.missing_docstrings(hook.public_namespaces()) == []
