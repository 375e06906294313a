"""The optimizer side of a recipe: schedules by name (the registry in
`recipes.schedules`), optimizers from the registry with weight decay off
biases and norms, and the phase-1 peak learning rate (registry default,
given, or an LR range test)."""


import keras

import callbacks as cb
from recipes import distribute, schedules
from recipes import optimizers as optimizer_registry

# The names registered when this module was imported; kept for code that
# reads them here (the checks, CLI and tuner read the registry itself).
SCHEDULES = tuple(schedules.list_schedules())


# Layers whose variables weight decay leaves alone (biases, norm scales).
_NO_DECAY = ["bias", "gamma", "beta"]

# The phases build their schedules here (see `recipes.schedules`).
make_schedule = schedules.make_schedule


def make_optimizer(name, learning_rate, weight_decay, ema_momentum=None):
    """An optimizer from the registry, weight decay off biases and norms.

    Args:
        name: A name from `recipes.optimizers.list_optimizers()`.
        learning_rate: A float or a schedule.
        weight_decay: Decoupled weight decay, or `None`/0 for none.
        ema_momentum: Momentum of a moving average of the weights the
            optimizer keeps (`use_ema`), or `None` for none. Defaults to
            `None`.

    Returns:
        A new `keras.optimizers.Optimizer`.
    """
    kwargs = {"weight_decay": weight_decay} if weight_decay else {}
    if ema_momentum is not None:
        kwargs.update(use_ema=True, ema_momentum=ema_momentum)
    optimizer = optimizer_registry.get(name, learning_rate=learning_rate,
                                       **kwargs)
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=_NO_DECAY)
    return optimizer


def default_learning_rate(optimizer, batch_size):
    """The registry's learning rate for `optimizer`, scaled to the batch.

    Registry defaults are Keras-style rates for batches of 32; the square
    root rule (Hoffer et al., 2017) moves them to `batch_size`.
    """
    return distribute.scale_learning_rate(
        optimizer_registry.default_learning_rate(optimizer), batch_size, 32,
        rule="sqrt")


def find_peak_learning_rate(model, train, num_steps=60, verbose=0):
    """Peak learning rate from an LR range test on the compiled `model`.

    The model and its optimizer are left as they were (see
    `callbacks.find_learning_rate`).

    Returns:
        `(learning_rate, LRFinderResult)`.
    """
    result = cb.find_learning_rate(model, train, num_steps=num_steps,
                                   start_learning_rate=1e-6,
                                   end_learning_rate=1.0, verbose=verbose)
    return float(result.suggestion()), result


def resolve_learning_rate(learning_rate, *, model, make_train, loss, out,
                          runtime, optimizer, make_optimizer, verbose,
                          default_scale=1.0, num_examples=None):
    """The phase-1 peak learning rate of a recipe, and where it came from.

    `None`: the registry's rate for `optimizer`, scaled to the global batch
    (at most `num_examples`, the training set's size) and multiplied by
    `default_scale`;
    `"auto"`: an LR range test on `model` (compiled here with
    `make_optimizer(1e-3)`), or the rate a crashed run in `out` already
    chose; a number: itself. The result is recorded in `out` so a resumed
    run uses the same one.

    The range test reads a new copy of the training pipeline from
    `make_train()`, so it does not move the shuffle of the pipeline the run
    trains on (a resumed run, which skips the test, must find that shuffle
    where an uninterrupted one does: see `align_shuffle`).

    Returns:
        `(peak, finder)`: the rate, and the `LRFinderResult` (or
        `"resumed"`, or `None` when no range test was involved).
    """
    peak, finder = learning_rate, None
    if peak is None:
        # A batch larger than the data set is the whole data set: the
        # rate follows the batch the optimizer really sees.
        batch = runtime.batch_size
        if num_examples is not None:
            batch = max(1, min(batch, num_examples))
        peak = default_learning_rate(optimizer, batch) * default_scale
    elif peak == "auto":
        peak = out.recall().get("learning_rate")
        finder = "resumed" if peak is not None else None
    if peak is None:
        with runtime.strategy.scope():
            model.compile(make_optimizer(1e-3), loss=loss,
                          metrics=[accuracy_metric()])
        peak, finder = find_peak_learning_rate(model, make_train(),
                                               verbose=int(verbose > 0))
    out.remember(learning_rate=peak)
    return peak, finder


def build_optimizer(model):
    """Creates the compiled optimizer's variables now, before `fit`.

    Without a distribution strategy set, Keras creates the optimizer's slot
    variables inside the first trace of the train step; TensorFlow then
    traces the whole step a second time, since a traced function may create
    variables only on its first trace. Building them beforehand makes that
    one trace: on MNIST-5k it took 1.5-2.3 s off the small CNN's first
    epoch (same weights and metrics). Call it inside the strategy scope the
    model was compiled in.

    Args:
        model: A compiled, built model.
    """
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)


def accuracy_metric():
    """The recipes' accuracy metric (one-hot labels), named `accuracy`."""
    return keras.metrics.CategoricalAccuracy(name="accuracy")
