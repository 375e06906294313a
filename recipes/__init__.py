"""keras-recipes: training recipes for Keras 3 on TensorFlow."""

from recipes import (
    datasets,
    initializers,
    layers,
    optimizers,
    regularization,
)
from recipes.compress import (
    distill,
    export_tflite,
    prune,
    quantize,
    sparsity_report,
    strip_pruning,
)

__version__ = "0.1.0"

__all__ = [
    "datasets",
    "distill",
    "export_tflite",
    "initializers",
    "layers",
    "optimizers",
    "prune",
    "quantize",
    "regularization",
    "sparsity_report",
    "strip_pruning",
]
