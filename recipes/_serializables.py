"""The modules that register keras-recipes objects for Keras serialization.

`recipes` imports its public names on first use, but Keras finds a saved
object's class only if the module defining it has run its `@register`.
`import_all()` imports every such module; `import recipes` and
`recipes.load_model` call it. A new module with a registered class is added
to `MODULES` (tests/test_serializables.py finds one that is missing).
"""

import importlib

MODULES = (
    "callbacks",
    "recipes.initializers",
    "recipes.layers",
    "recipes.optimizers",
    "recipes.regularization",
)


def import_all():
    """Import every module in `MODULES` (cheap after the first call)."""
    for name in MODULES:
        importlib.import_module(name)
