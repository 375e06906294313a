"""The recipe's search space: one entry per knob, defaults documented.

Each knob maps to `fit_image_classifier` keyword arguments. A user changes a
knob through `space={name: spec}`:

* a plain value fixes it (`hp.Fixed`);
* a list searches those values (`hp.Choice`);
* a `(low, high)` tuple searches a range (`hp.Float`, log-scaled for the
  knobs whose default is log-scaled, `hp.Int` for integer knobs);
* a callable `hp -> value` declares anything else with the `hp` it gets.

Default search space (`DEFAULT_SPACE`):

| knob | default range | recipe keyword |
|---|---|---|
| `optimizer` | adamw, nesterov, lion, radam | `optimizer` |
| `learning_rate_scale` | 0.25 to 4, log, x2 | `learning_rate` = scale x base |
| `schedule` | every registered schedule (`recipes.schedules`) | `schedule` |
| `weight_decay` | 0.005 to 0.5, log, x sqrt(10) | `weight_decay` |
| `dropout` | 0 to 0.4, step 0.1 | `dropout` |
| `label_smoothing` | 0 to 0.2, step 0.05 | `label_smoothing` |
| `augment` | none, default, mirror, randaugment | `augment` |
| `mix` | none, mixup (alpha 0.2), cutmix (1.0) | `mixup`, `cutmix` |
| `fine_tune_layers` | auto, 0, 10, 30, 60 (pretrained) | `fine_tune_layers` |
| `batch_size` | 16, 32, 64 | `batch_size` |

Ranges are centred on the recipe's own defaults (the keyword defaults of
`fit_image_classifier`, which the hypermodel reads as each knob's default
and a tuner tries first): the geometric middle of a log range, the middle
of a linear range and the middle choice of `batch_size` are the default.
The defaults are the configuration the recipe was tuned to train well on
any data, so the search looks around them rather than over an arbitrary
box: a factor of 4 either way for the learning rate (further out, the
warmup-cosine run either diverges or barely moves in a short budget), a
factor of 10 for weight decay (which acts through the learning rate, so
it matters less), and from none to twice the default for dropout and
label smoothing.

The base learning rate is the recipe's default: the optimizer's registry
default scaled to the batch size (square-root rule), doubled for backbones
trained from scratch; or the LR range test's suggestion.
"""

import dataclasses
import math

from recipes.schedules import list_schedules


@dataclasses.dataclass(frozen=True)
class Knob:
    """One dimension of the default search space.

    Attributes:
        name: Hyperparameter name.
        kind: `"choice"`, `"float"` or `"int"`.
        values: The choices, or `(low, high)` for ranges.
        log: Whether a range is searched on a log scale.
        step: Grid step of a range (a factor for log ranges).
        keyword: The `fit_image_classifier` keyword whose default is the
            knob's default (`ImageClassifierHyperModel.recipe_defaults`),
            or `None` for knobs whose default is derived.
    """

    name: str
    kind: str
    values: tuple
    log: bool = False
    step: float | None = None
    keyword: str | None = None


MIXES = {"none": (0.0, 0.0), "mixup": (0.2, 0.0), "cutmix": (0.0, 1.0)}

DEFAULT_SPACE = {
    k.name: k for k in (
        Knob("optimizer", "choice", ("adamw", "nesterov", "lion", "radam"),
             keyword="optimizer"),
        Knob("learning_rate_scale", "float", (0.25, 4.0), log=True,
             step=2.0),
        Knob("schedule", "choice", tuple(list_schedules()),
             keyword="schedule"),
        Knob("weight_decay", "float", (0.005, 0.5), log=True,
             step=math.sqrt(10.0), keyword="weight_decay"),
        Knob("dropout", "float", (0.0, 0.4), step=0.1, keyword="dropout"),
        Knob("label_smoothing", "float", (0.0, 0.2), step=0.05,
             keyword="label_smoothing"),
        Knob("augment", "choice", ("none", "default", "mirror",
                                   "randaugment")),
        Knob("mix", "choice", tuple(MIXES)),
        # Strings: a Keras Tuner choice holds values of one type.
        Knob("fine_tune_layers", "choice", ("auto", "0", "10", "30", "60"),
             keyword="fine_tune_layers"),
        Knob("batch_size", "choice", (16, 32, 64), keyword="batch_size"),
    )
}
"""The default search space: knob name to `Knob` (kind, values, scale).

Every knob is a keyword of `fit_image_classifier`, except
`learning_rate_scale` (a factor on the optimizer's registry default) and
`mix` (`"none"`, `"mixup"` or `"cutmix"`, passed as the recipe's `mixup` and
`cutmix` alphas); the table in this module's docstring lists them all.
"""
# Knobs that only mean something for a pretrained backbone.
PRETRAINED_ONLY = ("fine_tune_layers",)


def check_space(space):
    """Validate a user's `space` dict (names and range specs), before work.

    The values themselves are checked against the recipe by
    `ImageClassifierHyperModel.check_hyperparameters`.

    Raises:
        ValueError: For an unknown knob or a bad range.
    """
    if space is None:
        return {}
    if not isinstance(space, dict):
        raise TypeError(
            "Argument `space` must be a dict of knob name to value, list, "
            f"(low, high) tuple or callable. Received: space={space!r}"
        )
    for name, spec in space.items():
        if name not in DEFAULT_SPACE:
            raise ValueError(
                f"Argument `space` has an unknown knob {name!r}; knobs are "
                f"{sorted(DEFAULT_SPACE)}. Received: space={space!r}"
            )
        if isinstance(spec, list) and not spec:
            raise ValueError(
                f"Argument `space[{name!r}]` must be a non-empty list. "
                f"Received: {spec!r}"
            )
        if isinstance(spec, tuple) and not (
                len(spec) == 2 and all(isinstance(v, int | float)
                                       for v in spec) and spec[0] < spec[1]):
            raise ValueError(
                f"Argument `space[{name!r}]` must be a (low, high) tuple "
                f"with low < high. Received: {spec!r}"
            )
    return dict(space)


def declare(hp, knob, spec=None, default=None):
    """Declare one knob on `hp` from the user's spec or the default space.

    Args:
        hp: The `keras_tuner.HyperParameters` to declare on.
        knob: The `Knob`.
        spec: The user's spec (see the module docstring). Defaults to
            `None` (the knob's default range or choices).
        default: The value a tuner tries first (the recipe's default); used
            when the declared range or choices hold it. Defaults to `None`
            (Keras Tuner's: the first choice, the low end of a range).

    Returns:
        The knob's value in `hp`.
    """
    if callable(spec):
        return spec(hp)
    if spec is None:
        spec = tuple(knob.values) if knob.kind != "choice" \
            else list(knob.values)
        if knob.kind != "choice":
            low, high = spec
            return hp.Float(knob.name, low, high, step=knob.step,
                            sampling="log" if knob.log else "linear",
                            default=_within(default, low, high))
    if isinstance(spec, list):
        return hp.Choice(knob.name, spec,
                         default=default if default in spec else None)
    if isinstance(spec, tuple):
        low, high = spec
        if knob.kind == "int" or all(isinstance(v, int) for v in spec) \
                and knob.kind == "choice":
            return hp.Int(knob.name, low, high,
                          default=_within(default, low, high))
        return hp.Float(knob.name, float(low), float(high),
                        sampling="log" if knob.log else "linear",
                        default=_within(default, low, high))
    return hp.Fixed(knob.name, spec)


def _within(value, low, high):
    """`value` if it is a number in `[low, high]`, else `None`."""
    if isinstance(value, int | float) and not isinstance(value, bool) \
            and low <= value <= high:
        return value
    return None
