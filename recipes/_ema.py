"""Evaluating and keeping the optimizer's weight average (EMA) in the recipes.

With `use_ema=True` a Keras optimizer keeps an exponential moving average
of the trainable weights (Polyak averaging) beside them, and `fit` writes
the average into the model when it ends. The recipes validate that average
at each epoch end, keep it as the best model, and return it; the raw
weights go on training.

`ema_callbacks` returns two callbacks for one `fit`: the first swaps the
average into the model for validation and for the epoch-end callbacks that
follow it (early stopping's best weights, the best-model file, the user's
callbacks), the second swaps the raw weights back before the crash-resume
checkpoint, so a checkpoint always holds the raw weights in the model and
the average in the optimizer, as during training, and a resumed run goes
on exactly.

Keras's own `keras.callbacks.SwapEMAWeights(swap_on_epoch=True)` keeps
the average in the model from each epoch end to the next epoch's start, so
a checkpoint written at an epoch end would hold the two swapped, and it
swaps through additions and subtractions, which round: each swap changes
both copies in their last bits. The swap here copies.
"""

import keras

from callbacks._internal import keras_compat


def ema_pairs(optimizer):
    """`(variable, average)` pairs of every optimizer in `optimizer` with EMA.

    Walks `LossScaleOptimizer`s and the recipes' wrappers (their
    `inner_optimizer`, and the discriminative wrapper's
    `group_optimizers`) down to the optimizers that own the averages.

    Args:
        optimizer: A built `keras.optimizers.Optimizer`, or `None`.

    Returns:
        A list of `(model variable, its moving average)` pairs; empty when
        no optimizer keeps an average.
    """
    pairs = []
    stack = [optimizer]
    while stack:
        current = stack.pop()
        if current is None:
            continue
        children = [getattr(current, "inner_optimizer", None),
                    *getattr(current, "group_optimizers", ())]
        children = [c for c in children
                    if isinstance(c, keras.optimizers.Optimizer)]
        if children:
            stack.extend(children)
            continue
        if getattr(current, "use_ema", False) and current.built:
            pairs.extend(zip(keras_compat.optimizer_built_variables(current),
                             keras_compat.ema_averages(current),
                             strict=True))
    return pairs


def swap(pairs):
    """Exchange each variable's value with its average's, exactly."""
    for variable, average in pairs:
        value = keras.ops.convert_to_numpy(variable)
        variable.assign(keras.ops.convert_to_numpy(average))
        average.assign(value)


class _Swapped:
    """Where the average is: shared by the two callbacks of one `fit`."""

    def __init__(self):
        self.in_model = False
        self.pairs = []


class _Swap(keras.callbacks.Callback):
    """Moves the average in or out of the model, through shared state."""

    def __init__(self, state):
        super().__init__()
        self._state = state

    def _to(self, in_model):
        if self._state.in_model != in_model:
            swap(self._state.pairs)
            self._state.in_model = in_model


class _SwapIn(_Swap):
    """Average in the model for validation and the epoch-end callbacks."""

    def on_train_begin(self, logs=None):
        self._state.pairs = ema_pairs(self.model.optimizer)
        self._state.in_model = False

    def on_test_begin(self, logs=None):
        self._to(True)

    def on_test_end(self, logs=None):
        self._to(False)

    def on_epoch_end(self, epoch, logs=None):
        self._to(True)


class _SwapOut(_Swap):
    """Raw weights back in the model: before checkpointing, next epoch."""

    def on_epoch_end(self, epoch, logs=None):
        self._to(False)


def ema_callbacks():
    """`(first, last)`: callbacks framing the epoch-end callbacks of a `fit`.

    Put `first` before every callback that should see the averaged weights
    at an epoch end, and `last` after them (before a checkpointing
    callback). Both do nothing when the compiled optimizer keeps no
    average. `fit` then writes the average into the model when it ends.
    """
    state = _Swapped()
    return _SwapIn(state), _SwapOut(state)
