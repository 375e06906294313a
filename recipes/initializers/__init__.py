"""Initializers and initialization procedures.

`ICNR` is a per-tensor `keras.initializers.Initializer`; `lsuv` and
`zero_init_residual` act on a whole built model; `initializer_for` picks
the Keras initializer that suits an activation (table in
`recipes.initializers.activation_guide`).
"""

from recipes.initializers.activation_guide import (
    INITIALIZER_FOR_ACTIVATION,
    initializer_for,
)
from recipes.initializers.icnr import ICNR
from recipes.initializers.lsuv import LSUVLayerResult, LSUVReport, lsuv
from recipes.initializers.zero_init_residual import zero_init_residual

__all__ = [
    "ICNR",
    "INITIALIZER_FOR_ACTIVATION",
    "LSUVLayerResult",
    "LSUVReport",
    "initializer_for",
    "lsuv",
    "zero_init_residual",
]
