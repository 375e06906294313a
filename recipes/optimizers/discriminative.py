"""Discriminative learning rates: a learning-rate multiplier per layer group.

Fine-tuning a pretrained network trains its new head faster than its
pretrained body, and the body's lower layers slower than its upper ones
(Howard & Ruder, 2018; layer-wise decay in BEiT and timm). Keras optimizers
take a single learning rate, and scaling gradients does not help with
Adam-type optimizers (their update is invariant to the gradient's scale), so
`DiscriminativeOptimizer` keeps one copy of the optimizer per group, each
with its own slots, whose learning rate is the head's times the group's
multiplier, computed in the traced step from the head's. A learning-rate
callback or schedule that moves the head's rate (`callbacks.OneCycleLR`,
`callbacks.ReduceLROnPlateau`, `callbacks.LRFinder`, Keras's
`ReduceLROnPlateau`) so moves every group's.

Keras 3.15 ships `keras.optimizers.MultiOptimizer`, but a model compiled
with it does not reload from a `.keras` file (its sub-optimizers' variables
are saved twice and read back into the wrong optimizers; see
`tests/recipes/optimizers/test_discriminative.py`), and it takes no
learning-rate callback.
"""

import re

import keras

from callbacks._internal import check_number, keras_compat, register
from recipes.optimizers._wrapper import WrapperOptimizer, innermost_optimizer


class _Follow:
    """A group's learning rate: the head optimizer's times a multiplier.

    Keras calls a callable learning rate inside the traced step, so the
    group sees the head's rate of that step, whatever sets it.
    """

    def __init__(self, head, multiplier):
        self.head = head
        self.multiplier = multiplier

    def __call__(self):
        return keras.ops.multiply(
            keras.ops.cast(self.head.learning_rate, "float32"),
            self.multiplier)


@register
class DiscriminativeOptimizer(WrapperOptimizer):
    """Train groups of variables at multiples of the optimizer's learning rate.

    Variables whose `path` is in `groups[i]` are updated by a copy of
    `optimizer` (same class and hyperparameters, its own slots) whose
    learning rate is `lr_mult[i]` times `optimizer`'s at every step; every
    other variable (the head) by `optimizer` itself. The learning rate,
    step counter, weight decay and loss scaling the training loop and the
    callbacks see are `optimizer`'s, so a schedule, a learning-rate callback
    or Keras's `ReduceLROnPlateau` moves every group together. Every
    optimizer's state is saved with the model, so a `.keras` file holding
    it reloads with `safe_mode=True`.

    Use `recipes.discriminative_optimizer` to make one from layers or path
    patterns of a model.

    Args:
        optimizer: The head's optimizer (for every variable in no group);
            the groups copy it.
        groups: A list of groups, each a list of variable paths
            (`variable.path`); a path may be in one group only.
        lr_mult: One positive learning-rate multiplier per group.
        name: Name of the wrapper. Defaults to `None`.
        **kwargs: Base optimizer arguments are refused: set them on
            `optimizer`.

    Raises:
        TypeError: If `optimizer` is not a Keras optimizer.
        ValueError: If `groups` and `lr_mult` differ in length, a
            multiplier is not positive, or a path is in two groups.

    Example:

    >>> head = keras.Variable([1.0], name="head")
    >>> body = keras.Variable([1.0], name="body")
    >>> opt = DiscriminativeOptimizer(
    ...     keras.optimizers.SGD(0.1), groups=[[body.path]], lr_mult=[0.1])
    >>> opt.apply([keras.ops.ones(1), keras.ops.ones(1)], [head, body])
    >>> [round(float(v.numpy()[0]), 4) for v in (head, body)]
    [0.9, 0.99]

    References:
        - [Howard & Ruder, 2018](https://arxiv.org/abs/1801.06146)
        - [Bao et al., 2022](https://arxiv.org/abs/2106.08254)
    """

    def __init__(self, optimizer, groups, lr_mult, name=None, **kwargs):
        super().__init__(optimizer, name=name, **kwargs)
        groups = [sorted(group) for group in groups]
        lr_mult = [float(check_number("lr_mult", m, low=0.0,
                                      low_inclusive=False))
                   for m in lr_mult]
        if len(groups) != len(lr_mult):
            raise ValueError(
                "Arguments `groups` and `lr_mult` must have one entry per "
                f"group. Received: {len(groups)} groups and lr_mult={lr_mult}"
            )
        owner = {}
        for i, group in enumerate(groups):
            for path in group:
                if path in owner:
                    raise ValueError(
                        "Argument `groups` must put each variable in one "
                        f"group. Received: {path!r} in groups {owner[path]} "
                        f"and {i}"
                    )
                owner[path] = i
        self.groups = groups
        self.lr_mult = lr_mult
        self._owner = owner
        self.group_optimizers = [
            self._copy(optimizer, i, m) for i, m in enumerate(lr_mult)]

    def _copy(self, optimizer, index, multiplier):
        config = keras.optimizers.serialize(optimizer)
        config["config"]["name"] = f"{optimizer.name}_group{index}"
        copy = keras.optimizers.deserialize(config)
        copy.learning_rate = _Follow(optimizer, multiplier)
        keras_compat.copy_weight_decay_exclusions(innermost_optimizer(optimizer),
                                      innermost_optimizer(copy))
        return copy

    def _group_of(self, variables):
        """`{variable.path: group index, or -1 for the head}`.

        A `.keras` file reloads a model nested in another (a backbone)
        with its variables' paths shortened: `"backbone/conv/kernel"`
        becomes `"conv/kernel"`. A group path with no exact match among
        `variables` therefore also claims the variable whose path it ends
        with (after a `/`).
        """
        paths = {variable.path for variable in variables}
        loose = [(path, group) for path, group in self._owner.items()
                 if path not in paths]
        found = {}
        for path in paths:
            if path in self._owner:
                found[path] = self._owner[path]
                continue
            groups = {group for long, group in loose
                      if long.endswith("/" + path)}
            if len(groups) > 1:
                raise ValueError(
                    f"Variable {path!r} matches paths of groups "
                    f"{sorted(groups)}: the model's variable paths do not "
                    "tell its groups apart. Received: groups="
                    f"{self.groups}"
                )
            found[path] = groups.pop() if groups else -1
        return found

    def _split(self, variables):
        """Indices of `variables` per group, the head's last."""
        group_of = getattr(self, "_resolved", None)
        if group_of is None or any(v.path not in group_of
                                   for v in variables):
            group_of = self._group_of(variables)
        split = [[] for _ in range(len(self.groups) + 1)]
        for i, variable in enumerate(variables):
            split[group_of[variable.path]].append(i)
        return split

    def _members(self):
        return [*self.group_optimizers, self.inner_optimizer]

    def build(self, var_list):
        if self.built:
            return
        var_list = list(var_list)
        self._resolved = self._group_of(var_list)
        for optimizer, indices in zip(self._members(), self._split(var_list),
                                      strict=True):
            optimizer.build([var_list[i] for i in indices])
        # The averages (`use_ema`) live in the member optimizers.
        self._building_wrapper = True
        try:
            keras.optimizers.Optimizer.build(self, var_list)
        finally:
            self._building_wrapper = False

    @property
    def variables(self):
        found = super().variables
        for optimizer in self.group_optimizers:
            found.extend(optimizer.variables)
        return found

    def apply(self, grads, trainable_variables=None):
        variables = self._build_for(trainable_variables)
        grads = list(grads)
        split = self._split(variables)
        # The groups first: they read the head's learning rate at the step
        # the head is about to take.
        for optimizer, indices in zip(self._members(), split, strict=True):
            if indices:
                optimizer.apply([grads[i] for i in indices],
                                [variables[i] for i in indices])
        if not split[-1]:
            # No head variable this step: the head's counter (the step the
            # schedules and callbacks see) must move on all the same.
            self.inner_optimizer.iterations.assign_add(1)

    def finalize_variable_values(self, var_list):
        var_list = list(var_list)
        for optimizer, indices in zip(self._members(), self._split(var_list),
                                      strict=True):
            if indices:
                optimizer.finalize_variable_values(
                    [var_list[i] for i in indices])

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Excludes variables from every group's weight decay.

        Args:
            var_list: A list of variables to exclude. Defaults to `None`.
            var_names: A list of strings; a variable whose name contains
                one of them is excluded (e.g. `["bias"]`).
                Defaults to `None`.
        """
        for optimizer in self._members():
            optimizer.exclude_from_weight_decay(var_list=var_list,
                                                var_names=var_names)

    def get_config(self):
        return {
            **super().get_config(),
            "groups": [list(group) for group in self.groups],
            "lr_mult": list(self.lr_mult),
        }


def _layer_variables(model, group, index):
    if isinstance(group, keras.layers.Layer):
        found = list(group.weights)
        if not found:
            raise ValueError(
                f"Argument `groups` entry {index} (layer {group.name!r}) "
                "has no weights: build the model first. Received: "
                f"groups[{index}]={group!r}"
            )
        return found
    if isinstance(group, str):
        try:
            pattern = re.compile(group)
        except re.error as error:
            raise ValueError(
                f"Argument `groups` entry {index} is not a valid regular "
                f"expression ({error}). Received: groups[{index}]={group!r}"
            ) from None
        found = [v for v in model.weights if pattern.fullmatch(v.path)]
        if not found:
            paths = [v.path for v in model.weights][:5]
            raise ValueError(
                f"Argument `groups` entry {index} matches no variable path "
                f"of the model (the pattern must match a whole path, e.g. "
                f"{paths}). Received: groups[{index}]={group!r}"
            )
        return found
    raise TypeError(
        f"Argument `groups` entries must be layers or regular expressions "
        f"of variable paths. Received: groups[{index}]={group!r}"
    )


def discriminative_optimizer(model, optimizer, groups, lr_mult=0.1,
                             name=None):
    """Give groups of a model's layers their own learning-rate multiplier.

    The model's variables in `groups` train at `lr_mult` times the
    learning rate of `optimizer`, which trains every other variable (the
    head, usually the newly added layers). Pass the groups from the input
    upwards; one number for `lr_mult` divides the rate by `1 / lr_mult`
    once more for each group further from the head (layer-wise decay:
    with three groups and 0.1 they get 0.001, 0.01 and 0.1 of the head's
    rate), a list gives each group its own multiplier. A group is a layer
    (or a model nested in `model`, e.g. a pretrained backbone) or a regular
    expression that must match whole variable paths (`"backbone/.*"`).

    Learning-rate callbacks, schedules and Keras's `ReduceLROnPlateau`
    change the head's rate and every group follows (see
    `DiscriminativeOptimizer`). Frozen layers may be in a group: their
    variables train at the group's rate once they are made trainable
    (`callbacks.GradualUnfreezing`).

    Args:
        model: The model whose variables are grouped (built).
        optimizer: A `keras.optimizers.Optimizer`, or a name from
            `recipes.optimizers.list_optimizers()`; the head's optimizer,
            the groups copy it.
        groups: A list of layers or path patterns, from the input up.
        lr_mult: One positive multiplier applied per group away from the
            head (layer-wise decay), or a list of one per group.
            Defaults to `0.1`.
        name: Name of the optimizer. Defaults to `None`.

    Returns:
        A `recipes.optimizers.DiscriminativeOptimizer` to compile the model
        with.

    Raises:
        ValueError: If a group matches no variable or a variable is in two
            groups, or `lr_mult` is not positive or does not have one
            multiplier per group.
        TypeError: If a group is neither a layer nor a string.

    Example:

    >>> body = keras.Sequential([keras.layers.Dense(4)], name="body")
    >>> inputs = keras.Input((3,))
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(body(inputs)))
    >>> opt = discriminative_optimizer(
    ...     model, keras.optimizers.Adam(1e-3), groups=[body], lr_mult=0.1)
    >>> opt.lr_mult
    [0.1]

    References:
        - [Howard & Ruder, 2018](https://arxiv.org/abs/1801.06146)
    """
    if isinstance(optimizer, str):
        from recipes.optimizers import registry

        optimizer = registry.get(optimizer)
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a `keras.Model`. "
            f"Received: model={model!r}"
        )
    if isinstance(groups, keras.layers.Layer | str):
        groups = [groups]
    groups = list(groups)
    if not groups:
        raise ValueError(
            "Argument `groups` must hold at least one layer or path "
            f"pattern. Received: groups={groups!r}"
        )
    if isinstance(lr_mult, int | float) and not isinstance(lr_mult, bool):
        check_number("lr_mult", lr_mult, low=0.0, low_inclusive=False)
        lr_mult = [lr_mult ** (len(groups) - i) for i in range(len(groups))]
    else:
        lr_mult = list(lr_mult)
        if len(lr_mult) != len(groups):
            raise ValueError(
                "Argument `lr_mult` must be a number or a list of one "
                f"multiplier per group ({len(groups)}). "
                f"Received: lr_mult={lr_mult!r}"
            )
    paths = [[v.path for v in _layer_variables(model, group, i)]
             for i, group in enumerate(groups)]
    return DiscriminativeOptimizer(optimizer, paths, lr_mult, name=name)
