"""keras-recipes: training recipes for Keras 3 on TensorFlow.

Public names are imported on first use (`recipes.fit_image_classifier`,
`from recipes import tuning`), so `python -m recipes --help` answers without
importing TensorFlow. A plain `import recipes` still registers every Keras
serializable object at once (see `recipes._serializables`), so
`keras.saving.load_model(path, safe_mode=True)` finds them, and imports
TensorFlow with its C++ start-up lines held to `TF_CPP_MIN_LOG_LEVEL`
(`recipes._quiet`): set it to 3 before `import recipes` for a quiet
console.

To export a new public name, add one entry to `_EXPORTS`: the name and the
module that defines it (a submodule maps to itself). `__all__` is read from
that table.
"""

import importlib
import sys

__version__ = "0.1.0"

# Public name -> module that defines it (a submodule: its own path).
_EXPORTS = {
    "BatchSizeResult": "recipes.batch_size",
    "Interpretation": "recipes.interpretation",
    "ImageClassifierConfig": "recipes.image_plan",
    "ImageClassifierHyperModel": "recipes.tuning",
    "ImageClassifierPlan": "recipes.image_plan",
    "ImageClassifierResult": "recipes.image_classifier",
    "SequenceClassifierConfig": "recipes.sequence_plan",
    "SequenceClassifierHyperModel": "recipes.sequence_classifier",
    "SequenceClassifierPlan": "recipes.sequence_plan",
    "SequenceClassifierResult": "recipes.sequence_classifier",
    "augmentations": "recipes.augmentations",
    "backbones": "recipes.backbones",
    "data": "recipes.data",
    "datasets": "recipes.datasets",
    "discriminative_optimizer": "recipes.optimizers.discriminative",
    "distill": "recipes.compress",
    "distribute": "recipes.distribute",
    "export_tflite": "recipes.compress",
    "fit_image_classifier": "recipes.image_classifier",
    "find_batch_size": "recipes.batch_size",
    "fit_sequence_classifier": "recipes.sequence_classifier",
    "get_strategy": "recipes.distribute",
    "initializers": "recipes.initializers",
    "layers": "recipes.layers",
    "load_model": "recipes.loading",
    "loading": "recipes.loading",
    "optimizers": "recipes.optimizers",
    "plan_image_classifier": "recipes.image_classifier",
    "predict_classes": "recipes.image_classifier",
    "prune": "recipes.compress",
    "quantize": "recipes.compress",
    "regularization": "recipes.regularization",
    "schedules": "recipes.schedules",
    "sequence_data": "recipes.sequence_data",
    "sparsity_report": "recipes.compress",
    "strip_pruning": "recipes.compress",
    "tune_image_classifier": "recipes.tuning",
    "tuning": "recipes.tuning",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'recipes' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name == f"recipes.{name}" else getattr(
        module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


# While `python -m recipes ...` locates its module, `sys.argv[0]` is "-m"
# (documented for `-m`): the command line imports what each command needs,
# and its `--help` must not wait for TensorFlow. Any other import registers
# the serializable objects now, as an eager package would.
if getattr(sys, "argv", [])[:1] != ["-m"]:
    from recipes import _quiet, _serializables

    _quiet.import_tensorflow()
    _serializables.import_all()
