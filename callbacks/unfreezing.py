"""Gradual unfreezing: a pretrained network's layers join training top-down.

ULMFiT (Howard & Ruder, 2018) fine-tunes a pretrained network by training
the new head first, then unfreezing one more group of layers per epoch from
the top, so the randomly initialized head's large early gradients do not
wreck the lower, most general features. fastai's `freeze_to` and
Lightning's `BackboneFinetuning` do the same.
"""

import contextlib

import keras

from callbacks import _keras_compat as keras_compat
from callbacks._validation import check_backend, check_number


def _leaves(layer):
    """`layer` itself, or the layers inside a nested model, recursively."""
    if not isinstance(layer, keras.Model):
        return [layer]
    return [leaf for sub in layer.layers for leaf in _leaves(sub)]


def _is_batchnorm(layer):
    return isinstance(layer, keras.layers.BatchNormalization)


class GradualUnfreezing(keras.callbacks.Callback):
    """Unfreeze a network's layer groups one by one, from the top.

    `stages` lists groups of layers from the input up. At train begin every
    stage is frozen (`trainable=False`); at the start of epoch
    `unfreeze_at[k]` the `k`-th stage from the top becomes trainable, so the
    head trains alone first and lower stages join one at a time.
    BatchNormalization layers stay frozen (in inference mode, keeping their
    pretrained statistics) unless `train_batchnorm=True`. Each change
    rebuilds the traced train step once, and frozen stages cost no backward
    pass.

    The optimizer must know every stage's variables: an optimizer not yet
    built is built on all of them at train begin; one built earlier (by an
    earlier `fit`) must have been built with the stages trainable. On the
    torch backend Keras builds the optimizer before any callback runs, so
    there the stages must be trainable when `fit` starts. Epochs
    count from 0 across `fit` calls (`initial_epoch`), so a run resumed by
    `callbacks.Checkpointing` unfreezes on the same epochs.

    Args:
        stages: A list of stages from the input up; each a layer (a nested
            model counts as one layer) or a list of layers.
        unfreeze_at: One epoch per stage, from the top stage down, at whose
            start the stage is unfrozen (non-decreasing). Defaults to
            `None`: `[1, 2, ..., len(stages)]` (the head alone for one
            epoch, then one more stage per epoch, as ULMFiT).
        train_batchnorm: Whether BatchNormalization layers are unfrozen
            with their stage. Defaults to `False`.
        verbose: Print a line when a stage is unfrozen. Defaults to `0`.

    Raises:
        ValueError: If `stages` is empty, `unfreeze_at` does not have one
            non-decreasing epoch >= 0 per stage, or (at train begin) the
            optimizer was built without a stage's variables.
        TypeError: If a stage is not a layer or a list of layers.
        NotImplementedError: On the JAX backend (its optimizer step needs
            the trainable variables it was built with).

    Example:

    ```python
    backbone = keras.applications.MobileNetV3Small(include_top=False)
    ...
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=4, callbacks=[callbacks.GradualUnfreezing(
        [backbone.get_layer("expanded_conv_6_add"), ...])])
    ```

    References:
        - [Howard & Ruder, 2018](https://arxiv.org/abs/1801.06146)
    """

    def __init__(self, stages, unfreeze_at=None, train_batchnorm=False,
                 verbose=0):
        check_backend(
            "GradualUnfreezing", ("jax",),
            "the JAX trainer's optimizer step needs exactly the trainable "
            "variables the optimizer was built with, and unfreezing a stage "
            "mid-fit changes that list (compile again between stages "
            "instead)")
        super().__init__()
        if isinstance(stages, keras.layers.Layer):
            stages = [stages]
        stages = [list(s) if isinstance(s, list | tuple) else [s]
                  for s in stages]
        if not stages:
            raise ValueError(
                "Argument `stages` must hold at least one layer. "
                f"Received: stages={stages!r}"
            )
        for i, stage in enumerate(stages):
            for layer in stage:
                if not isinstance(layer, keras.layers.Layer):
                    raise TypeError(
                        "Argument `stages` must hold layers or lists of "
                        f"layers. Received: stages[{i}] holding {layer!r}"
                    )
        if unfreeze_at is None:
            unfreeze_at = list(range(1, len(stages) + 1))
        unfreeze_at = [check_number("unfreeze_at", e, low=0, integer=True)
                       for e in unfreeze_at]
        if len(unfreeze_at) != len(stages) or unfreeze_at != sorted(
                unfreeze_at):
            raise ValueError(
                "Argument `unfreeze_at` must hold one non-decreasing epoch "
                f"per stage ({len(stages)}), for the top stage first. "
                f"Received: unfreeze_at={unfreeze_at}"
            )
        self.stages = stages
        self.unfreeze_at = unfreeze_at
        self.train_batchnorm = bool(train_batchnorm)
        self.verbose = verbose

    def _trains(self, leaf):
        return self.train_batchnorm or not _is_batchnorm(leaf)

    def unfrozen_stages(self, epoch):
        """How many stages (from the top) train at epoch `epoch`."""
        return sum(1 for e in self.unfreeze_at if e <= epoch)

    def _set(self, count):
        for k, stage in enumerate(self.stages[::-1]):
            for layer in stage:
                # A nested model must be trainable for its leaves to be.
                layer.trainable = True
                for leaf in _leaves(layer):
                    leaf.trainable = k < count and self._trains(leaf)
        self._count = count

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        if optimizer is not None:
            self._set(len(self.stages))
            if not optimizer.built:
                # Built now on every stage, before the first (frozen) step
                # would build it on the head alone.
                strategy = getattr(self.model, "distribute_strategy", None)
                with (strategy.scope() if strategy is not None
                      else contextlib.nullcontext()):
                    optimizer.build(self.model.trainable_variables)
            # Keras has no public list of the variables an optimizer was
            # built for (it refuses others with "Unknown variable").
            known = {id(v) for v in
                     keras_compat.optimizer_built_variables(optimizer)}
            missing = sorted({
                v.path for stage in self.stages for layer in stage
                for v in layer.trainable_weights if id(v) not in known})
            if missing:
                raise ValueError(
                    "GradualUnfreezing needs an optimizer built with every "
                    "stage trainable: compile and fit the model with the "
                    "stages (and the models holding them) unfrozen; the "
                    "callback freezes them. Received: variables "
                    f"{missing[:5]} unknown to the optimizer"
                )
        self._count = None

    def on_epoch_begin(self, epoch, logs=None):
        count = self.unfrozen_stages(epoch)
        if count == self._count:
            return
        self._set(count)
        # Keras caches the traced step, with the trainable variables of
        # its trace: rebuild it for the new set.
        keras_compat.rebuild_train_function(self.model)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: GradualUnfreezing trains the top "
                  f"{count} of {len(self.stages)} stages.")

