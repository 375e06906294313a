"""keras-recipes callbacks: learning-rate schedules and training callbacks.

Depends only on Keras and NumPy (matplotlib, optional, for plots). Every
callback here adds to an existing `model.fit(callbacks=[...])`.
"""

from callbacks import schedules
from callbacks.checkpointing import (
    Checkpointing,
    checkpoint_status,
    load_checkpoint,
)
from callbacks.divergence import DivergenceError, DivergenceGuard
from callbacks.early_stopping import EarlyStopping
from callbacks.lr_finder import LRFinder, LRFinderResult, find_learning_rate
from callbacks.lr_schedule import (
    CyclicalLR,
    LearningRateMonitor,
    OneCycleLR,
    ScheduleLR,
    WarmupCosine,
    restore_optimizer,
)
from callbacks.plateau import ReduceLROnPlateau
from callbacks.plotting import plot_history, plot_schedule, schedule_values
from callbacks.progress import ProgressBar
from callbacks.pruning import Pruning
from callbacks.schedules import (
    ConstantSchedule,
    CosineSchedule,
    CyclicalLearningRate,
    JoinSchedules,
    LinearSchedule,
    OneCycleSchedule,
    StepDecay,
    Warmup,
    WarmupCosineDecay,
)
from callbacks.swa import SWA
from callbacks.unfreezing import GradualUnfreezing

__all__ = [
    "Checkpointing",
    "ConstantSchedule",
    "CosineSchedule",
    "CyclicalLR",
    "CyclicalLearningRate",
    "DivergenceError",
    "DivergenceGuard",
    "EarlyStopping",
    "GradualUnfreezing",
    "JoinSchedules",
    "LRFinder",
    "LRFinderResult",
    "LearningRateMonitor",
    "LinearSchedule",
    "OneCycleLR",
    "OneCycleSchedule",
    "ProgressBar",
    "Pruning",
    "ReduceLROnPlateau",
    "SWA",
    "ScheduleLR",
    "StepDecay",
    "Warmup",
    "WarmupCosine",
    "WarmupCosineDecay",
    "checkpoint_status",
    "load_checkpoint",
    "find_learning_rate",
    "plot_history",
    "plot_schedule",
    "restore_optimizer",
    "schedule_values",
    "schedules",
]
