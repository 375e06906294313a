"""MkDocs hook: one API reference page per public object, from `__all__`.

The public API is what `callbacks.__all__` and `recipes.__all__` export,
walked into every exported subpackage or module: a subpackage contributes
its own `__all__`; a module without one contributes the public names it
defines. Each object gets one page (under its most specific public name,
e.g. `recipes.compress.prune` rather than `recipes.prune`), each namespace
an index page listing its names, and all of them go into the navigation
under "API reference". A public object without a docstring is logged as a
warning, which `mkdocs build --strict` turns into a failed build.
"""

import importlib
import importlib.util
import inspect
import logging
import os
import sys
import types

from mkdocs.structure.files import File

ROOT_PACKAGES = ("callbacks", "recipes")
API_DIR = "api"

log = logging.getLogger("mkdocs.hooks.api_pages")


def _public_names(module):
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, obj in vars(module).items()
            if not name.startswith("_")
            and getattr(obj, "__module__", None) == module.__name__]


def public_namespaces(roots=ROOT_PACKAGES):
    """Returns `{namespace: {name: object}}` for the whole public API.

    Namespaces are the root packages and every module reachable through
    their `__all__`, in discovery order.
    """
    namespaces = {}
    pending = list(roots)
    while pending:
        qualname = pending.pop(0)
        if qualname in namespaces:
            continue
        module = importlib.import_module(qualname)
        members = {}
        for name in _public_names(module):
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                pending.append(obj.__name__)
            members[name] = obj
        namespaces[qualname] = members
    return namespaces


def _is_module(obj):
    return isinstance(obj, types.ModuleType)


def canonical_names(namespaces):
    """Maps `id(object)` to the one public path its page lives under.

    Among every public path of an object, the one whose namespace is the
    longest prefix of the module that defines it (`recipes.compress.prune`
    for `recipes.prune`); values without a defining module (constants)
    keep their first path.
    """
    candidates = {}
    for namespace, members in namespaces.items():
        for name, obj in members.items():
            if _is_module(obj):
                continue
            candidates.setdefault(id(obj), []).append(
                (namespace, f"{namespace}.{name}", obj))
    chosen = {}
    for key, paths in candidates.items():
        module = getattr(paths[0][2], "__module__", None) or ""

        def rank(item, module=module):
            namespace = item[0]
            prefix = module == namespace or module.startswith(namespace + ".")
            return (not prefix, -len(namespace) if prefix else 0)

        chosen[key] = min(paths, key=rank)[1]
    return chosen


def page_path(qualname):
    return f"{API_DIR}/{qualname}.md"


def _identifier(qualname, obj):
    """The path mkdocstrings renders for `obj`, published as `qualname`.

    Classes and functions are rendered from their defining module: Griffe
    reads source statically, so it cannot follow `recipes`' lazy exports
    (`recipes._EXPORTS`), and it resolves a name that is also a submodule
    (`recipes.initializers.lsuv` is both) to the submodule.
    """
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None)
    if module and name and not _is_module(obj):
        return f"{module}.{name}"
    return qualname


def object_pages(namespaces):
    """Returns `{page path: markdown}` for every namespace and object."""
    canonical = canonical_names(namespaces)
    pages = {}
    index = ["# API reference", "",
             "Generated from the packages' `__all__` by "
             "`docs/hooks/api_pages.py`: every public object has a page.", ""]
    for namespace, members in namespaces.items():
        index.append(f"* [`{namespace}`]({namespace}.md)")
        lines = [f"# `{namespace}`", "",
                 f"::: {namespace}",
                 "    options:",
                 "      members: false",
                 "      show_root_heading: false", "",
                 "| name | kind |", "| --- | --- |"]
        for name in sorted(members, key=str.lower):
            obj = members[name]
            if _is_module(obj):
                target = f"{obj.__name__}.md"
                kind = "module"
            else:
                target = f"{canonical[id(obj)]}.md"
                kind = ("class" if inspect.isclass(obj) else
                        "function" if callable(obj) else "constant")
            lines.append(f"| [`{name}`]({target}) | {kind} |")
        pages[page_path(namespace)] = "\n".join(lines) + "\n"
    objects = {canonical[id(obj)]: obj for members in namespaces.values()
               for obj in members.values() if not _is_module(obj)}
    for qualname in sorted(objects):
        pages[page_path(qualname)] = (
            f"::: {_identifier(qualname, objects[qualname])}\n"
            "    options:\n      show_root_heading: true\n"
            "      heading_level: 1\n")
    pages[f"{API_DIR}/index.md"] = "\n".join(index) + "\n"
    return pages


def missing_docstrings(namespaces):
    """Lists the public paths whose object has no docstring of its own."""
    import griffe

    loaded = {root: griffe.load(root, search_paths=[_repo_root()])
              for root in ROOT_PACKAGES}
    missing = []
    for qualname in sorted(set(canonical_names(namespaces).values()) |
                           set(namespaces)):
        live = _import_path(qualname)
        if isinstance(live, type) or inspect.isfunction(live):
            # Classes and functions: their own `__doc__` (Python does not
            # inherit it), also behind `recipes`' lazy exports.
            if not (live.__doc__ or "").strip():
                missing.append(qualname)
            continue
        root, _, rest = qualname.partition(".")
        obj = loaded[root]
        try:
            obj = obj[rest] if rest else obj
            docstring = obj.docstring
        except (KeyError, griffe.AliasResolutionError):
            docstring = None
        if docstring is None or not docstring.value.strip():
            missing.append(qualname)
    return missing


def _import_path(qualname):
    """The object at a dotted public path, or `None`."""
    module, _, name = qualname.rpartition(".")
    if not module:
        return None
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def _repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))


_PAGES = {}


def on_config(config):
    if _repo_root() not in sys.path:
        sys.path.insert(0, _repo_root())
    namespaces = public_namespaces()
    _PAGES.clear()
    _PAGES.update(object_pages(namespaces))
    for qualname in missing_docstrings(namespaces):
        log.warning("Public object `%s` has no docstring: its API page "
                    "would be empty.", qualname)
    reference = [{"Overview": f"{API_DIR}/index.md"}]
    canonical = set(canonical_names(namespaces).values())
    for namespace in namespaces:
        section = [{namespace: page_path(namespace)}]
        section += [{qualname.rpartition(".")[2]: page_path(qualname)}
                    for qualname in sorted(canonical, key=str.lower)
                    if qualname.rpartition(".")[0] == namespace]
        reference.append({namespace: section})
    for entry in config["nav"]:
        if isinstance(entry, dict) and "API reference" in entry:
            entry["API reference"] = reference
            break
    else:
        config["nav"].append({"API reference": reference})
    return config


def on_files(files, config):
    for path, content in _PAGES.items():
        files.append(File.generated(config, path, content=content))
    return files
