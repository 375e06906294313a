"""Optimizers Keras 3 does not ship, one registry for all optimizers.

Each optimizer lives in its own module; `get(name, ...)` builds ours and
Keras's by name and `list_optimizers()` lists them. `SAM` is a model wrapper
(it changes the train step) and `callbacks.SWA` averages weights.
"""

from recipes.optimizers.adabelief import AdaBelief
from recipes.optimizers.discriminative import (
    DiscriminativeOptimizer,
    discriminative_optimizer,
)
from recipes.optimizers.gradient_transform import (
    GradientTransform,
    adaptive_clip_gradient,
    centralize_gradient,
)
from recipes.optimizers.lars import LARS
from recipes.optimizers.lookahead import Lookahead
from recipes.optimizers.radam import RAdam
from recipes.optimizers.ranger import Ranger
from recipes.optimizers.registry import (
    OptimizerInfo,
    default_learning_rate,
    get,
    get_info,
    list_optimizers,
    register_optimizer,
)
from recipes.optimizers.sam import SAM
from recipes.optimizers.yogi import Yogi

__all__ = [
    "LARS",
    "SAM",
    "AdaBelief",
    "DiscriminativeOptimizer",
    "GradientTransform",
    "Lookahead",
    "OptimizerInfo",
    "RAdam",
    "Ranger",
    "Yogi",
    "adaptive_clip_gradient",
    "centralize_gradient",
    "default_learning_rate",
    "discriminative_optimizer",
    "get",
    "get_info",
    "list_optimizers",
    "register_optimizer",
]
