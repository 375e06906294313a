"""One registry of optimizers by name: ours and Keras's.

Recipes, the command line and the tuner's search space resolve optimizers
through `get(name, learning_rate=..., **kwargs)`; each entry carries the
learning rate it is used at when none is given (`default_learning_rate`).
"""

import dataclasses
import difflib
from collections.abc import Callable

import keras

from callbacks._internal import check_number
from recipes.optimizers._common import check_beta, check_learning_rate
from recipes.optimizers.adabelief import AdaBelief
from recipes.optimizers.gradient_transform import GradientTransform
from recipes.optimizers.lars import LARS
from recipes.optimizers.lookahead import Lookahead
from recipes.optimizers.radam import RAdam
from recipes.optimizers.ranger import Ranger
from recipes.optimizers.yogi import Yogi

_LOOKAHEAD_KWARGS = ("sync_period", "slow_step_size")


@dataclasses.dataclass(frozen=True)
class OptimizerInfo:
    """A registry entry.

    Attributes:
        name: The registered name.
        factory: Callable `(learning_rate, **kwargs) -> Optimizer`.
        default_learning_rate: Learning rate used when none is given.
        description: One line for listings and help texts.
    """

    name: str
    factory: Callable
    default_learning_rate: float
    description: str


_REGISTRY = {}


def register_optimizer(name, factory, default_learning_rate, description):
    """Add an entry to the registry (one line per optimizer).

    Args:
        name: Lower-case name, unique.
        factory: Callable `(learning_rate, **kwargs) -> Optimizer`.
        default_learning_rate: Learning rate used when none is given.
        description: One-line description.

    Returns:
        The new `OptimizerInfo`.

    Raises:
        ValueError: If the name is already registered.
    """
    if name in _REGISTRY:
        raise ValueError(
            f"Argument `name` must be a new optimizer name. Received: "
            f"name={name!r} (already registered)"
        )
    info = OptimizerInfo(name, factory, float(default_learning_rate),
                         description)
    _REGISTRY[name] = info
    return info


def _normalize(name):
    if not isinstance(name, str):
        raise TypeError(
            f"Argument `name` must be a string. Received: name={name!r}"
        )
    return name.strip().lower().replace("-", "_")


def get_info(name):
    """The `OptimizerInfo` registered under `name` (case-insensitive).

    Raises:
        ValueError: If no optimizer has this name; the message lists close
            matches.
    """
    key = _normalize(name)
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=3,
                                          cutoff=0.5)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"Argument `name` must be a registered optimizer name.{hint} "
            f"Available: {list_optimizers()}. Received: name={name!r}"
        )
    return _REGISTRY[key]


def list_optimizers():
    """Sorted names of every registered optimizer."""
    return sorted(_REGISTRY)


def default_learning_rate(name):
    """The learning rate `get(name)` uses when none is given."""
    return get_info(name).default_learning_rate


def get(name, learning_rate=None, agc_clip_factor=None,
        gradient_centralization=False, **kwargs):
    """Build a new optimizer from its registered name.

    Args:
        name: A name from `list_optimizers()` (case-insensitive, `-` and `_`
            alike).
        learning_rate: A float, a `LearningRateSchedule` or a callable; `None`
            uses the entry's default learning rate. Defaults to `None`.
        agc_clip_factor: When set, wraps the optimizer in `GradientTransform`
            with adaptive gradient clipping of this factor.
            Defaults to `None`.
        gradient_centralization: Whether to wrap the optimizer in
            `GradientTransform` with gradient centralization.
            Defaults to `False`.
        **kwargs: Passed to the optimizer (e.g. `weight_decay`, `beta_1`,
            `clipnorm`, `sync_period` for Lookahead entries).

    Returns:
        A new, unbuilt `keras.optimizers.Optimizer`.

    Raises:
        ValueError: If the name is unknown (close matches are listed) or an
            argument is out of range: `learning_rate` must be > 0 (or a
            schedule), `beta_1`, `beta_2` and `momentum` in `[0, 1)`,
            `epsilon` and `weight_decay` >= 0.
        TypeError: If `learning_rate` or one of those arguments is not a
            number.

    Example:

    >>> opt = get("ranger", learning_rate=3e-3, weight_decay=1e-4)
    >>> default_learning_rate("adam")
    0.001
    """
    info = get_info(name)
    if learning_rate is None:
        learning_rate = info.default_learning_rate
    learning_rate = check_learning_rate(learning_rate)
    _check_kwargs(kwargs)
    optimizer = info.factory(learning_rate, **kwargs)
    if agc_clip_factor is not None or gradient_centralization:
        optimizer = GradientTransform(
            optimizer,
            agc_clip_factor=agc_clip_factor,
            gradient_centralization=gradient_centralization,
        )
    return optimizer


def _check_kwargs(kwargs):
    # Keras's own optimizers accept these out of range (a negative rate or
    # `beta_1=2` trains backwards or diverges), so every entry checks them.
    for key in ("beta_1", "beta_2", "momentum"):
        if key in kwargs:
            check_beta(key, kwargs[key])
    for key in ("epsilon", "weight_decay"):
        if kwargs.get(key) is not None:
            check_number(key, kwargs[key], low=0.0)


def _keras(cls, **fixed):
    def factory(learning_rate, **kwargs):
        return cls(learning_rate=learning_rate, **{**fixed, **kwargs})

    return factory


def _lookahead(cls, **fixed):
    def factory(learning_rate, **kwargs):
        outer = {k: kwargs.pop(k) for k in _LOOKAHEAD_KWARGS if k in kwargs}
        inner = cls(learning_rate=learning_rate, **{**fixed, **kwargs})
        return Lookahead(inner, **outer)

    return factory


_O = keras.optimizers
register_optimizer("sgd", _keras(_O.SGD), 0.05, "Plain SGD.")
register_optimizer("momentum", _keras(_O.SGD, momentum=0.9), 0.01,
                   "SGD with heavy-ball momentum 0.9.")
register_optimizer("nesterov", _keras(_O.SGD, momentum=0.9, nesterov=True),
                   0.01, "SGD with Nesterov momentum 0.9.")
register_optimizer("adagrad", _keras(_O.Adagrad), 0.05,
                   "AdaGrad (Duchi et al., 2011).")
register_optimizer("adadelta", _keras(_O.Adadelta), 1.0,
                   "AdaDelta (Zeiler, 2012).")
register_optimizer("rmsprop", _keras(_O.RMSprop), 1e-3,
                   "RMSProp (Hinton, 2012).")
register_optimizer("adam", _keras(_O.Adam), 1e-3,
                   "Adam (Kingma & Ba, 2015).")
register_optimizer("adamw", _keras(_O.AdamW), 1e-3,
                   "Adam with decoupled weight decay (Loshchilov, 2019).")
register_optimizer("adamax", _keras(_O.Adamax), 2e-3,
                   "Adamax, the infinity-norm Adam.")
register_optimizer("nadam", _keras(_O.Nadam), 1e-3,
                   "Adam with Nesterov momentum (Dozat, 2016).")
register_optimizer("lamb", _keras(_O.Lamb), 1e-3,
                   "LAMB, layer-wise Adam for large batches (You, 2020).")
register_optimizer("lion", _keras(_O.Lion), 3e-4,
                   "Lion, sign momentum (Chen et al., 2023).")
# RAdam's rectifier acts as an automatic warmup over the first ~1/(1-beta_2)
# steps, so it tolerates (and on short budgets needs) a larger rate.
register_optimizer("radam", _keras(RAdam), 3e-3,
                   "Rectified Adam (Liu et al., 2019).")
register_optimizer("adabelief", _keras(AdaBelief), 1e-3,
                   "AdaBelief (Zhuang et al., 2020).")
register_optimizer("yogi", _keras(Yogi), 1e-2,
                   "Yogi (Zaheer et al., 2018).")
register_optimizer("lars", _keras(LARS), 1.0,
                   "LARS, layer-wise trust ratio (You et al., 2017).")
register_optimizer("lookahead_adam", _lookahead(_O.Adam), 1e-3,
                   "Lookahead over Adam (Zhang et al., 2019).")
register_optimizer("lookahead_sgd", _lookahead(_O.SGD, momentum=0.9), 0.01,
                   "Lookahead over momentum SGD (Zhang et al., 2019).")
register_optimizer("ranger", _keras(Ranger), 3e-3,
                   "Ranger: Lookahead(RAdam) + gradient centralization.")
