"""The sequence recipe's settings: keywords -> config -> plan.

`fit_sequence_classifier` binds its flat keywords to a
`SequenceClassifierConfig` (frozen, checked when made), then `resolve`
settles what depends on the loaded data and runtime into a
`SequenceClassifierPlan`, as `recipes.image_plan` does for images.
"""

import dataclasses
import math

import keras

from callbacks._internal import check_choice, check_number
from recipes import _checks, _phases, _runtime

CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


@dataclasses.dataclass(frozen=True, eq=False)
class SequenceClassifierConfig:
    """The keywords of `fit_sequence_classifier`, checked.

    One field per keyword of `fit_sequence_classifier` (all but `data`),
    with the same defaults (see its docstring for each). Making one runs
    the recipe's argument checks, before any data is read.

    Raises:
        ValueError: For a value out of range or an unknown name.
        TypeError: For a value of the wrong type.

    Example:

    >>> SequenceClassifierConfig(cell="gru").units
    64
    >>> SequenceClassifierConfig(units=0)
    Traceback (most recent call last):
    ValueError: Argument `units` must be >= 1. Received: units=0
    """

    validation_data: object = None
    validation_split: float = 0.2
    test_data: object = None
    class_names: list | None = None
    padding_value: float | None = None
    cell: str = "lstm"
    bidirectional: bool = True
    units: int = 64
    layers: int = 1
    dropout: float = 0.1
    recurrent_dropout: float = 0.0
    max_tokens: int = 20000
    max_length: int | None = 256
    embedding_dim: int = 64
    epochs: int = 10
    optimizer: str = "adamw"
    learning_rate: float | str | None = None
    schedule: str = "warmup_cosine"
    warmup_fraction: float = 0.1
    clipnorm: float | None = 1.0
    label_smoothing: float = 0.1
    weight_decay: float | None = 0.01
    batch_size: int = 64
    early_stopping: bool = True
    patience: int | None = None
    callbacks: list | None = None
    strategy: object = "auto"
    mixed_precision: str = "auto"
    steps_per_execution: int | str = "auto"
    output_dir: object = None
    overwrite: bool = False
    seed: int | None = None
    verbose: int = 1

    def __post_init__(self):
        _check_args(vars(self))


@dataclasses.dataclass(frozen=True)
class SequenceClassifierPlan:
    """What one `fit_sequence_classifier` run trains.

    Attributes:
        epochs: Training epochs.
        patience: Early-stopping patience in epochs.
        steps_per_epoch: Optimizer steps per epoch.
        steps_per_execution: Steps per compiled call.
    """

    epochs: int
    patience: int
    steps_per_epoch: int
    steps_per_execution: int


def resolve(config, sequences, runtime):
    """Settle what `config` leaves to the data and runtime; pure.

    Args:
        config: A `SequenceClassifierConfig`.
        sequences: The loaded sequences (`load_sequence_data`).
        runtime: The run's `recipes._runtime.Runtime`.

    Returns:
        A `SequenceClassifierPlan`.
    """
    steps = math.ceil(sequences.num_train / runtime.batch_size)
    return SequenceClassifierPlan(
        epochs=config.epochs,
        patience=_phases.resolve_patience(config.patience, config.epochs),
        steps_per_epoch=steps,
        steps_per_execution=_runtime.steps_per_execution_for(
            config.steps_per_execution, steps, runtime))


def check_model_args(cell, bidirectional, units, layers, dropout,
                     recurrent_dropout, max_tokens, max_length,
                     embedding_dim):
    """The checks of the model's keywords (shared with
    `SequenceClassifierHyperModel`)."""
    check_choice("cell", cell, tuple(CELLS))
    check_choice("bidirectional", bidirectional, (True, False))
    check_number("units", units, low=1, integer=True)
    check_number("layers", layers, low=1, integer=True)
    check_number("dropout", dropout, low=0.0, high=1.0, high_inclusive=False)
    check_number("recurrent_dropout", recurrent_dropout, low=0.0, high=1.0,
                 high_inclusive=False)
    check_number("max_tokens", max_tokens, low=3, integer=True)
    check_number("max_length", max_length, low=1, integer=True,
                 allow_none=True)
    check_number("embedding_dim", embedding_dim, low=1, integer=True)


def _check_args(kw):
    _checks.check_recipe_training_args(kw)
    check_model_args(kw["cell"], kw["bidirectional"], kw["units"],
                     kw["layers"], kw["dropout"], kw["recurrent_dropout"],
                     kw["max_tokens"], kw["max_length"], kw["embedding_dim"])
    check_number("clipnorm", kw["clipnorm"], low=0.0, low_inclusive=False,
                 allow_none=True)
    check_number("patience", kw["patience"], low=0, integer=True,
                 allow_none=True)
    check_number("seed", kw["seed"], low=0, integer=True, allow_none=True)
    from recipes import optimizers

    optimizers.get_info(kw["optimizer"])
