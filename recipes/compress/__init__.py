"""Model compression: magnitude pruning, quantization, distillation."""

from recipes.compress.distillation import (
    DistillationResult,
    build_distiller,
    distill,
)
from recipes.compress.pruning import (
    SparsityReport,
    WeightSparsity,
    prune,
    sparsity_report,
    strip_pruning,
)
from recipes.compress.quantization import (
    TFLiteReport,
    evaluate_tflite,
    export_tflite,
    quantize,
    run_tflite,
    weight_bytes,
)

__all__ = [
    "DistillationResult",
    "SparsityReport",
    "TFLiteReport",
    "WeightSparsity",
    "build_distiller",
    "distill",
    "evaluate_tflite",
    "export_tflite",
    "prune",
    "quantize",
    "run_tflite",
    "sparsity_report",
    "strip_pruning",
    "weight_bytes",
]
