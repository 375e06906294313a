"""`ImageClassifierHyperModel`: the whole image recipe as a search space."""

import math

import keras
import keras_tuner
import tensorflow as tf

from callbacks import DivergenceError
from callbacks._internal import check_choice, check_number
from recipes import _optimization, _runtime
from recipes.backbones import build_backbone
from recipes.image_classifier import (
    build_image_classifier,
    check_image_classifier_args,
    fit_image_classifier,
)
from recipes.image_plan import (
    ImageClassifierConfig,
    learning_rate_scale,
    load_images,
    looks_like_photographs,
    resolve,
    resolve_augment,
)
from recipes.tuning import space as space_module

# Metrics `fit_image_classifier` reports, usable as tuning objectives.
RECIPE_METRICS = ("val_accuracy", "val_loss", "accuracy", "loss")
"""Metrics `fit_image_classifier` reports, usable as tuning objectives."""
# Keywords the hypermodel owns (searched, or set per trial by the tuner).
_OWNED = ("data", "epochs", "verbose", "output_dir", "overwrite",
          "callbacks", "learning_rate", "optimizer", "schedule", "weight_decay",
          "dropout", "label_smoothing", "augment", "mixup", "cutmix",
          "fine_tune_layers", "batch_size")
# Trial budgets: the same optimizer steps, or the same epochs, per trial.
BUDGETS = ("steps", "epochs")
# Errors that make one configuration fail without stopping the search.
# A recipe's `DivergenceError` (its guard gave up) fails the trial too.
_TRIAL_ERRORS = (ValueError, ArithmeticError, MemoryError,
                 tf.errors.OpError, DivergenceError)


class ImageClassifierHyperModel(keras_tuner.HyperModel):
    """The image recipe's whole training procedure as a Keras Tuner space.

    `build(hp)` declares every knob of `recipes.fit_image_classifier` the
    search covers (optimizer family from the optimizer registry, learning
    rate, schedule, weight decay, dropout, label smoothing, augmentation,
    MixUp/CutMix, fine-tune depth, batch size; see
    `recipes.tuning.space` for the default ranges) and returns the model
    the recipe builds for them. `fit(hp, model, ...)` runs the recipe itself
    with those values, so what is tuned is exactly what
    `fit_image_classifier(**best)` later trains: the same phases, early
    stopping and defaults.

    Every knob's default is the recipe's own (`recipe_defaults()`: the
    keyword defaults of `fit_image_classifier`, with `"auto"` resolved for
    this data), so the first trial of every tuner trains what
    `fit_image_classifier(data)` trains, for the epochs the tuner's budget
    gives it rather than the recipe's `epochs="auto"` (see
    `recipes.tuning.DefaultsFirstOracle`).

    Budgets: with `budget="steps"` a trial's epochs are scaled so that it
    takes as many optimizer steps as the recipe's default batch size does
    in the epochs the tuner gives it (to the nearest whole epoch, at least
    one): a trial at batch 64 trains twice the epochs of one at batch 32.
    Without it a large batch turns a short budget into a few dozen steps,
    and the search mostly learns that larger batches train less.
    `budget="epochs"` keeps the tuner's epochs for every batch size.

    The callbacks a tuner passes to `fit` (Keras Tuner's checkpointing of
    the best epoch, the user's `search(callbacks=...)`) go to the recipe's
    `model.fit` calls.

    Hyperband: a trial promoted from a shorter one (Keras Tuner sets
    `tuner/trial_id` and `initial_epoch`, and loads the parent's best
    weights into `model`) continues from those weights and trains only
    `epochs - initial_epoch` epochs. The optimizer state and the learning-rate
    schedule start anew for those epochs (a warm restart: warmup and decay
    span the increment), as when Keras Tuner's own Hyperband recompiles a
    reloaded model. A configuration that fails (a diverging loss, an invalid
    combination, out of memory) raises
    `keras_tuner.errors.FailedTrialError`, which marks the trial failed and
    lets the search go on.

    Args:
        data: Training images, any kind `fit_image_classifier` takes.
        space: Dict of knob name to a fixed value, a list of choices, a
            `(low, high)` range or a callable `hp -> value` (see
            `recipes.tuning.space`). Defaults to `None` (the default space).
        base_learning_rates: Dict of optimizer name to the learning rate
            `learning_rate_scale` multiplies; missing names use the
            recipe's default (the registry default scaled to the batch
            size, doubled for backbones trained from scratch), so a scale
            of 1 is what `fit_image_classifier` trains with. Defaults to
            `None`.
        objective: A metric the recipe reports, used to check the search
            can be scored. Defaults to `"val_accuracy"`.
        budget: `"steps"` (epochs scaled to the batch size, see above) or
            `"epochs"`. Defaults to `"steps"`.
        **recipe_kwargs: Other fixed `fit_image_classifier` keywords
            (`validation_data`, `backbone`, `weights`, `seed`,
            `early_stopping`, ...). `backbone` must be a registry name or
            a `.keras` path: a `keras.Model` would be shared, and trained,
            by every trial.

    Attributes:
        images: The loaded training (and validation) images, as
            `recipes.data.load_image_data` returns them (read at the size
            the recipe reads them: `image_size`, else a registry backbone's
            native size).
        plan: The recipe's `recipes.image_plan.ImageClassifierPlan` for
            this data at its default batch size: the backbone, whether it
            is pretrained and the input shapes every trial's model has
            (its epochs are the tuner's, not the plan's).

    Raises:
        ValueError: For an unknown knob or objective, a searched keyword
            passed in `recipe_kwargs`, a knob value the recipe refuses (a
            fixed value, a choice or a range end), or bad recipe arguments,
            all before any trial runs.
        TypeError: For a keyword `fit_image_classifier` does not take, or
            a value of the wrong type.

    Example:

    >>> import keras_tuner
    >>> from recipes.datasets import load_digits_8x8
    >>> (x, y), val = load_digits_8x8()
    >>> hypermodel = ImageClassifierHyperModel(
    ...     (x, y), validation_data=val, space={"optimizer": "adamw"})
    >>> model = hypermodel.build(keras_tuner.HyperParameters())
    >>> model.output.shape
    (None, 10)
    """

    def __init__(self, data, space=None, base_learning_rates=None,
                 objective="val_accuracy", budget="steps", **recipe_kwargs):
        super().__init__(name="image_classifier_hypermodel", tunable=True)
        self.space = space_module.check_space(space)
        check_choice("objective", objective, RECIPE_METRICS)
        check_choice("budget", budget, BUDGETS)
        self.budget = budget
        owned = sorted(set(recipe_kwargs) & set(_OWNED))
        if owned:
            raise ValueError(
                f"Arguments {owned} are set by the search (fix a knob "
                "through `space` instead). Received: "
                f"{ {k: recipe_kwargs[k] for k in owned} }"
            )
        backbone = recipe_kwargs.get("backbone", "auto")
        if isinstance(backbone, keras.Model):
            raise TypeError(
                "Argument `backbone` must be a registry name or a .keras "
                "path when tuning (every trial needs a fresh copy; save the "
                "model with `model.save('backbone.keras')`). Received: "
                f"backbone={backbone.name!r} (a keras.Model)"
            )
        check_image_classifier_args(**recipe_kwargs)
        self.data = data
        self.objective = objective
        self.recipe_kwargs = dict(recipe_kwargs)
        self.base_learning_rates = dict(base_learning_rates or {})
        config = ImageClassifierConfig(**recipe_kwargs)
        # Read as the recipe reads it (a registry backbone's native size
        # where `image_size` is not given), so `build` makes the model each
        # trial's recipe run trains.
        self.images = load_images(config, data)
        if objective.startswith("val_") and self.images.validation is None:
            raise ValueError(
                f"Argument `objective` must be a metric the recipe reports; "
                "without validation data it reports only 'accuracy' and "
                f"'loss'. Received: objective={objective!r}"
            )
        # The recipe's plan at its default batch size on one device: what
        # the data decide (backbone, pretrained, shapes); a trial's epochs
        # and batch size are the tuner's.
        self.plan = resolve(config, self.images, _runtime.Runtime(
            strategy=None, policy="float32", replicas=1,
            batch_size=config.batch_size))
        self.backbone = self.plan.backbone
        self.pretrained = self.plan.pretrained
        # What `augment="auto"` reads of the images, once (not per trial).
        self._photographs = (not self.pretrained
                             and looks_like_photographs(self.images))
        self.check_hyperparameters()

    def knobs(self):
        """Names of the knobs this hypermodel declares."""
        return [name for name in space_module.DEFAULT_SPACE
                if self.pretrained
                or name not in space_module.PRETRAINED_ONLY]

    def recipe_defaults(self):
        """The value of each knob that `fit_image_classifier` would use.

        Read from the recipe's keyword defaults, with `"auto"` resolved as
        the recipe resolves it for this data and backbone: `augment` from
        whether the backbone is pretrained and the images photographs,
        `mix` from the `mixup` and `cutmix` defaults, and a
        `learning_rate_scale` of 1 for the default `learning_rate=None`
        (the base rate the scale multiplies).

        Returns:
            Dict of knob name to value, for the knobs of `knobs()`.
        """
        recipe = ImageClassifierConfig()
        defaults = {
            knob.name: getattr(recipe, knob.keyword)
            for knob in space_module.DEFAULT_SPACE.values() if knob.keyword}
        # `learning_rate=None` is the base rate, which a scale of 1 keeps.
        defaults["learning_rate_scale"] = 1.0
        defaults["augment"] = resolve_augment(
            recipe.augment, self.pretrained, photographs=self._photographs)
        mix = (recipe.mixup, recipe.cutmix)
        defaults["mix"] = next(name for name, pair
                               in space_module.MIXES.items() if pair == mix)
        return {name: defaults[name] for name in self.knobs()}

    def declare(self, hp):
        """Declare every knob on `hp`; returns `{knob: value}`.

        Each knob's default (the value a tuner tries first) is the
        recipe's, from `recipe_defaults()`, where the knob's range or
        choices hold it.
        """
        defaults = self.recipe_defaults()
        return {
            name: space_module.declare(
                hp, space_module.DEFAULT_SPACE[name], self.space.get(name),
                default=defaults[name])
            for name in self.knobs()
        }

    def trial_epochs(self, epochs, batch_size):
        """Epochs that train a trial at `batch_size` for a budget of `epochs`.

        With `budget="steps"`, the epochs at `batch_size` closest to the
        optimizer steps of `epochs` epochs at the recipe's default batch
        size (at least one); with `budget="epochs"`, `epochs`.

        Args:
            epochs: The tuner's budget, in epochs at the default batch size.
            batch_size: The trial's batch size.

        Returns:
            An int.
        """
        epochs = int(epochs)
        if self.budget == "epochs" or not epochs:
            return epochs
        default = ImageClassifierConfig.batch_size
        steps = math.ceil(self.images.num_train / default) * epochs
        per_epoch = math.ceil(self.images.num_train / batch_size)
        return max(1, round(steps / per_epoch))

    def check_hyperparameters(self, hyperparameters=None):
        """Check every value the knobs can take, before any trial runs.

        Declares the knobs on a copy of `hyperparameters` (the user's
        predeclared ranges, else none) and checks each fixed value, each
        choice and both ends of each range with the recipe's own argument
        checks. A knob declared by a callable in `space` is checked on what
        it declares.

        Args:
            hyperparameters: `keras_tuner.HyperParameters` a tuner will
                search, or `None` for the hypermodel's own space. Defaults
                to `None`.

        Raises:
            ValueError: Naming the knob, where it was set and the value the
                recipe refuses.
            TypeError: For a value of the wrong type.
        """
        hp = keras_tuner.HyperParameters() if hyperparameters is None \
            else hyperparameters.copy()
        self.declare(hp)
        given = set() if hyperparameters is None else {
            p.name for p in hyperparameters.space}
        for param in hp.space:
            if param.name not in space_module.DEFAULT_SPACE:
                continue
            for value in _possible_values(param):
                try:
                    _check_knob(param.name, value)
                except (TypeError, ValueError) as e:
                    where = ("hyperparameters" if param.name in given
                             else "space")
                    raise type(e)(
                        f"Argument `{where}` lets knob {param.name!r} take "
                        f"a value the recipe refuses: {e}"
                    ) from e

    def recipe_config(self, hp, epochs=None):
        """`fit_image_classifier` keywords for the values in `hp`.

        Args:
            hp: `HyperParameters` (or a trial's) with the knobs declared.
            epochs: The budget in epochs at the recipe's default batch size
                (`config["epochs"]` is `trial_epochs(epochs, batch_size)`).
                Defaults to `None` (not included).

        Returns:
            A dict such that `fit_image_classifier(data, **config)` trains
            this configuration.
        """
        values = self.declare(hp)
        mixup, cutmix = space_module.MIXES[values["mix"]]
        config = dict(self.recipe_kwargs)
        config.update(
            backbone=self.backbone, optimizer=values["optimizer"],
            learning_rate=values["learning_rate_scale"]
            * self.base_learning_rate(values["optimizer"],
                                      values["batch_size"]),
            schedule=values["schedule"],
            weight_decay=values["weight_decay"], dropout=values["dropout"],
            label_smoothing=values["label_smoothing"],
            augment=values["augment"], mixup=mixup, cutmix=cutmix,
            batch_size=values["batch_size"])
        if "fine_tune_layers" in values:
            layers = values["fine_tune_layers"]
            if isinstance(layers, str) and layers.isdigit():
                layers = int(layers)
            config["fine_tune_layers"] = layers
            if layers == 0:
                config["fine_tune_epochs"] = 0
        if epochs is not None:
            config["epochs"] = self.trial_epochs(epochs, values["batch_size"])
        return config

    def base_learning_rate(self, optimizer, batch_size):
        """What `learning_rate_scale` multiplies for this optimizer."""
        if optimizer in self.base_learning_rates:
            return float(self.base_learning_rates[optimizer])
        # The recipe's own default, so that a scale of 1 trains what
        # `fit_image_classifier(learning_rate=None)` would.
        rate = _optimization.default_learning_rate(optimizer, batch_size)
        return rate * learning_rate_scale(self.pretrained)

    def build(self, hp):
        """Declare the knobs and build the recipe's (untrained) model."""
        config = self.recipe_config(hp)
        images, plan = self.images, self.plan
        backbone, info, _ = build_backbone(
            self.backbone, self.recipe_kwargs.get("weights", "auto"),
            input_shape=plan.backbone_input_shape)
        return build_image_classifier(
            backbone, info.preprocessing, input_shape=plan.input_shape,
            value_range=images.value_range, num_classes=images.num_classes,
            dropout=config["dropout"], class_names=images.class_names)

    def fit(self, hp, model, *args, epochs=10, callbacks=None, verbose=0,
            **kwargs):
        """Train one configuration with `fit_image_classifier`.

        Args:
            hp: The trial's `HyperParameters`.
            model: The model `build(hp)` returned. The recipe builds and
                trains its own copy; checkpoints of it load into this one.
            *args: Must be empty (the data is the hypermodel's).
            epochs: The budget in epochs at the recipe's default batch size
                (Hyperband sets it per bracket); the trial trains
                `trial_epochs(epochs, batch_size)`. Defaults to `10`.
            callbacks: Callbacks of the recipe's training runs. Defaults to
                `None`.
            verbose: Verbosity of the recipe. Defaults to `0`.
            **kwargs: Other `search()` keywords. `initial_epoch`
                (Hyperband): for a promoted trial (`tuner/trial_id` in
                `hp`), the recipe starts from `model`'s weights (the
                parent's) and trains `epochs - initial_epoch` epochs;
                otherwise it trains from scratch.

        Returns:
            Dict of the recipe's final metrics plus `epochs_run`.

        Raises:
            keras_tuner.errors.FailedTrialError: If the configuration fails
                or diverges (a non-finite loss or objective).
        """
        if args:
            raise TypeError(
                "ImageClassifierHyperModel.fit takes its data from the "
                "hypermodel; pass no positional arguments to `search()`. "
                f"Received: {len(args)} positional arguments"
            )
        initial_epoch = kwargs.pop("initial_epoch", 0) or 0
        callbacks = list(callbacks or [])
        config = self.recipe_config(hp, epochs=epochs)
        if initial_epoch and "tuner/trial_id" in hp.values:
            callbacks.insert(0, _StartFrom(model.get_weights()))
            # The parent trained the scaled budget of its own epochs.
            done = self.trial_epochs(initial_epoch, config["batch_size"])
            config["epochs"] = max(1, config["epochs"] - done)
        try:
            result = fit_image_classifier(
                self.data, callbacks=callbacks,
                verbose=2 if verbose == 2 else 0, **config)
        except _TRIAL_ERRORS as e:
            raise keras_tuner.errors.FailedTrialError(
                f"Configuration failed: {type(e).__name__}: {e}") from e
        metrics = dict(result.metrics)
        if not result.history.get("loss"):
            raise keras_tuner.errors.FailedTrialError("No epoch was run.")
        for name in RECIPE_METRICS:
            if name not in metrics and name in result.history:
                metrics[name] = float(result.history[name][-1])
        if self.objective not in metrics:
            raise keras_tuner.errors.FailedTrialError(
                f"The run reported no {self.objective!r}: {sorted(metrics)}")
        for name in ("loss", "val_loss", self.objective):
            value = metrics.get(name, 0.0)
            if not math.isfinite(value):
                raise keras_tuner.errors.FailedTrialError(
                    f"Training diverged: {name}={value}")
        metrics["epochs_run"] = float(len(result.history["loss"]))
        return metrics


def _possible_values(param):
    """The values of a declared hyperparameter worth checking."""
    if hasattr(param, "min_value"):
        return [param.min_value, param.max_value]
    if hasattr(param, "values"):
        return list(param.values)
    if hasattr(param, "value"):
        return [param.value]
    return [param.default]


def _check_knob(name, value):
    """The recipe's check of one knob value (knob names are checked)."""
    if name == "learning_rate_scale":
        check_number(name, value, low=0.0, low_inclusive=False)
    elif name == "mix":
        check_choice(name, value, tuple(space_module.MIXES))
    elif name == "fine_tune_layers":
        # A layer name is checked against the backbone when it is built.
        if not isinstance(value, str):
            check_number(name, value, low=0, integer=True)
    else:
        check_image_classifier_args(**{name: value})


class _StartFrom(keras.callbacks.Callback):
    """Sets given weights when the first training run begins.

    The recipe builds its own model, so a parent trial's weights reach it
    here; later phases of the same recipe call keep their weights.
    """

    def __init__(self, weights):
        super().__init__()
        self.pending = weights

    def on_train_begin(self, logs=None):
        if self.pending is not None:
            self.model.set_weights(self.pending)
            self.pending = None
