"""`import recipes` registers every serializable object, without importing
the modules that define them by hand, and keeps TensorFlow's start-up lines
to the log level the user set."""

import ast
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _registered_classes():
    """Classes decorated with `@register` in the source of both packages."""
    names = []
    for path in sorted([*ROOT.glob("recipes/**/*.py"),
                        *ROOT.glob("callbacks/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(d, ast.Name) and d.id == "register"
                    for d in node.decorator_list):
                names.append(node.name)
    return names


def test_import_recipes_registers_every_class_and_is_quiet():
    expected = _registered_classes()
    assert {"StochasticDepth", "RAdam", "WarmupCosineDecay"} <= set(expected)
    script = (
        "import json, recipes, keras\n"
        "print(json.dumps(sorted(keras.saving.get_custom_objects())))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    registered = json.loads(done.stdout)
    missing = [n for n in expected if f"keras_recipes>{n}" not in registered]
    assert missing == []
    # TensorFlow writes these before it reads TF_CPP_MIN_LOG_LEVEL.
    assert "cudart_stub" not in done.stderr
    assert "absl::InitializeLog" not in done.stderr


def test_exports_table_matches_all():
    import recipes

    assert recipes.__all__ == sorted(recipes._EXPORTS)
    for name in recipes.__all__:
        assert getattr(recipes, name) is not None
    from recipes import fit_image_classifier, tuning

    assert fit_image_classifier.__module__ == "recipes.image_classifier"
    assert tuning.__name__ == "recipes.tuning"
