"""Magnitude pruning (Zhu & Gupta, 2017) applied in-graph after each update.

The mechanism rides on Keras variable constraints: the optimizer calls
`variable.constraint(variable)` right after every gradient update, inside
the compiled train step. Each pruned weight gets a constraint that multiplies
it by its mask (a non-trainable `keras.Variable`); the constraint of the first
pruned weight also advances the pruning step and, on the schedule's update
steps, recomputes every mask from the weights' magnitudes. No Python runs per
batch, so `steps_per_execution` and `jit_compile` keep working.

The pruning step counts the distinct values of `model.optimizer.iterations`
seen by that constraint, not its calls: Keras applies constraints on every
micro-batch under `gradient_accumulation_steps` (while `iterations` counts
real updates). A wrapper that constrains again after its own step (Lookahead
after a slow-weight sync) already sees the next `iterations` value, so the
count may run one ahead until the next update.
"""

import contextlib

import keras
import numpy as np
from keras import ops

from callbacks import _keras_compat as keras_compat
from callbacks._validation import check_backend, check_choice, check_number

SCHEDULES = ("polynomial", "constant")
# The masks and the step live in variables the constraints assign inside the
# traced step; the JAX trainer only carries the model's and the optimizer's
# variables through its stateless step, so those assignments cannot persist.
_JAX_REASON = (
    "the masks are updated inside the compiled step through variables "
    "that the JAX trainer does not carry in its state; use the TensorFlow "
    "or torch backend"
)
SCOPES = ("per_layer", "global")

# Layers whose kernels are pruned when no `layers` are given. Biases,
# normalization and embedding weights stay dense unless asked for.
DEFAULT_LAYER_TYPES = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)


def _parse_structure(structure):
    if structure is None:
        return None
    parts = structure.split(":") if isinstance(structure, str) else ()
    ok = len(parts) == 2 and all(p.strip().isdigit() for p in parts)
    n, m = (int(p) for p in parts) if ok else (0, 0)
    if not ok or not 0 < n < m:
        raise ValueError(
            "Argument `structure` must be `None` or a string 'N:M' with "
            f"0 < N < M, such as '2:4'. Received: structure={structure!r}"
        )
    return n, m


class PruningSpec:
    """Validated pruning settings, shared by `Pruning` and `recipes.prune`.

    Args:
        target_sparsity: Fraction of weights set to zero at the end of the
            schedule, in `[0, 1)`. Defaults to `0.8`.
        schedule: `"polynomial"` (Zhu & Gupta: sparsity rises from
            `initial_sparsity` to `target_sparsity` as
            `s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_1 - t_0)) ** power`)
            or `"constant"` (`target_sparsity` from `begin_step` on).
            Defaults to `"polynomial"`.
        begin_step: Pruning step (optimizer updates since pruning was
            attached, counted from 0) of the first mask update.
            Defaults to `0`.
        end_step: Step of the last mask update; the target is reached here.
            Defaults to `1000`.
        frequency: Masks are recomputed every `frequency` steps between
            `begin_step` and `end_step` (and at `end_step`). Defaults to
            `100`.
        initial_sparsity: Sparsity at `begin_step` for the polynomial
            schedule. Defaults to `0.0`.
        power: Exponent of the polynomial schedule. Defaults to `3`.
        scope: `"per_layer"` (each weight pruned to the scheduled sparsity)
            or `"global"` (one magnitude threshold across all pruned
            weights). Defaults to `"per_layer"`.
        layers: `None` (every Dense, EinsumDense and convolution kernel),
            or a list of layer names / layer instances, or a callable
            `layer -> bool`. Defaults to `None`.
        prune_biases: Also prune the 1-D weights (biases, normalization
            scales) of the selected layers. Defaults to `False`.
        structure: `None` (unstructured) or `"N:M"` (keep the N largest of
            every M consecutive weights along the input axis, as in 2:4
            sparsity). With a structure, `target_sparsity` must be
            `1 - N / M` and the schedule only decides when masks are
            recomputed. Defaults to `None`.

    Raises:
        ValueError: If an argument is out of range or inconsistent.
    """

    def __init__(self, target_sparsity=0.8, schedule="polynomial",
                 begin_step=0, end_step=1000, frequency=100,
                 initial_sparsity=0.0, power=3, scope="per_layer",
                 layers=None, prune_biases=False, structure=None):
        self.target_sparsity = check_number(
            "target_sparsity", target_sparsity, low=0.0, high=1.0,
            high_inclusive=False,
        )
        self.schedule = check_choice("schedule", schedule, SCHEDULES)
        self.begin_step = check_number(
            "begin_step", begin_step, low=0, integer=True
        )
        self.end_step = check_number(
            "end_step", end_step, low=self.begin_step, integer=True
        )
        self.frequency = check_number(
            "frequency", frequency, low=1, integer=True
        )
        self.initial_sparsity = check_number(
            "initial_sparsity", initial_sparsity, low=0.0,
            high=self.target_sparsity,
        )
        self.power = check_number("power", power, low=0.0,
                                  low_inclusive=False)
        self.scope = check_choice("scope", scope, SCOPES)
        if not (layers is None or callable(layers)
                or isinstance(layers, (list, tuple))):
            raise TypeError(
                "Argument `layers` must be `None`, a list of layer names or "
                f"layers, or a callable. Received: layers={layers!r}"
            )
        self.layers = layers
        self.prune_biases = bool(prune_biases)
        self.structure = _parse_structure(structure)
        if self.structure is not None:
            n, m = self.structure
            if abs(self.target_sparsity - (1 - n / m)) > 1e-9:
                raise ValueError(
                    f"Argument `target_sparsity` must be {1 - n / m} for "
                    f"structure='{n}:{m}'. "
                    f"Received: target_sparsity={target_sparsity}"
                )
            if self.scope != "per_layer":
                raise ValueError(
                    "Argument `scope` must be 'per_layer' when `structure` "
                    f"is set (N:M groups are local). Received: scope={scope!r}"
                )

    def sparsity_at(self, step):
        """Scheduled sparsity at pruning step `step` (a tensor or number)."""
        if self.schedule == "constant":
            return ops.convert_to_tensor(self.target_sparsity, "float32")
        span = max(self.end_step - self.begin_step, 1)
        step = ops.cast(step, "float32")
        progress = ops.clip((step - self.begin_step) / span, 0.0, 1.0)
        remaining = (1.0 - progress) ** self.power
        return self.target_sparsity + (
            self.initial_sparsity - self.target_sparsity
        ) * remaining

    def is_update_step(self, step):
        """Whether masks are recomputed at pruning step `step`."""
        in_window = ops.logical_and(
            step >= self.begin_step, step <= self.end_step
        )
        on_beat = ops.logical_or(
            ops.equal((step - self.begin_step) % self.frequency, 0),
            ops.equal(step, self.end_step),
        )
        return ops.logical_and(in_window, on_beat)


def _leaf_layers(layer):
    children = getattr(layer, "layers", None)
    if children:
        for child in children:
            yield from _leaf_layers(child)
    else:
        yield layer


def select_weights(model, layers=None, prune_biases=False,
                   trainable_only=True):
    """The weights pruned for `layers`, in the optimizer's order.

    Args:
        model: A built Keras model.
        layers: See `PruningSpec`. Defaults to `None`.
        prune_biases: See `PruningSpec`. Defaults to `False`.
        trainable_only: Only trainable weights (the optimizer never touches
            the others, so they cannot be pruned). Defaults to `True`.

    Returns:
        A list of `(layer, variable)` pairs.

    Raises:
        ValueError: If a named layer does not exist, a selected layer has no
            weight to prune, or nothing at all is selected.
    """
    leaves = list(_leaf_layers(model))
    if layers is None:
        chosen = [ly for ly in leaves if isinstance(ly, DEFAULT_LAYER_TYPES)]
    elif callable(layers):
        chosen = [ly for ly in leaves if layers(ly)]
    else:
        by_name = {ly.name: ly for ly in leaves}
        chosen = []
        for item in layers:
            if isinstance(item, str) and item not in by_name:
                raise ValueError(
                    f"Argument `layers` names a layer that is not in the "
                    f"model: {item!r}. Available: {sorted(by_name)}"
                )
            chosen.append(by_name[item] if isinstance(item, str) else item)
    min_ndim = 1 if prune_biases else 2
    owner = {}
    for layer in chosen:
        candidates = layer.trainable_weights if trainable_only else (
            layer.weights)
        weights = [w for w in candidates if len(w.shape) >= min_ndim]
        if not weights and layers is not None and not callable(layers):
            raise ValueError(
                f"Layer {layer.name!r} has no trainable weight to prune "
                f"(1-D weights need prune_biases=True). Received: "
                f"layers={layers!r}"
            )
        for weight in weights:
            owner.setdefault(id(weight), layer)
    ordered = model.trainable_variables if trainable_only else model.weights
    selected = [(owner[id(v)], v) for v in ordered if id(v) in owner]
    if not selected:
        raise ValueError(
            "Nothing to prune: the model has no trainable weight in the "
            f"selected layers. Received: layers={layers!r}"
        )
    return selected


def _rank_keep(magnitude, num_pruned):
    """Keep-mask of a 1-D `magnitude`: all but the `num_pruned` smallest.

    Ranks (not a threshold) make the count exact even with ties.
    """
    ranks = ops.argsort(ops.argsort(magnitude))
    return ranks >= num_pruned


def _n_m_keep(magnitude, n, m):
    """Keep the `n` largest of each `m` consecutive weights on axis -2."""
    shape = tuple(magnitude.shape)
    fan_in, fan_out = shape[-2], shape[-1]
    x = ops.reshape(magnitude, (-1, fan_in, fan_out))
    x = ops.transpose(x, (0, 2, 1))
    x = ops.reshape(x, (-1, fan_out, fan_in // m, m))
    keep = ops.argsort(ops.argsort(x, axis=-1), axis=-1) >= m - n
    keep = ops.reshape(keep, (-1, fan_out, fan_in))
    return ops.reshape(ops.transpose(keep, (0, 2, 1)), shape)


class _MaskConstraint(keras.constraints.Constraint):
    """Applies mask `index` after the wrapped constraint; index 0 drives.

    The optimizer applies constraints after all the gradient updates of a
    step, in `model.trainable_variables` order, and the targets follow that
    order: when the first target's constraint runs, every pruned weight is
    already updated, so its mask update (global scope included) sees them all.
    """

    def __init__(self, pruner, index, inner):
        self.pruner = pruner
        self.index = index
        self.inner = inner

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        if self.index == 0:
            self.pruner.advance()
        return w * self.pruner.masks[self.index]


class MagnitudePruner:
    """Masks and step of one model being pruned (internal machinery).

    `attach()` installs the masking constraints, `detach()` restores the
    original ones (the weights keep their zeros); `strip()` bakes the masks
    into the weights and detaches.

    Args:
        model: A built Keras model.
        spec: A `PruningSpec`.
    """

    def __init__(self, model, spec):
        check_backend("Magnitude pruning", ("jax",), _JAX_REASON)
        if not model.built:
            raise ValueError(
                "The model must be built before pruning (call it on data or "
                f"give it an `Input`). Received: model={model.name!r}"
            )
        self.model = model
        self.spec = spec
        self.targets = select_weights(model, spec.layers, spec.prune_biases)
        for layer, variable in self.targets:
            if getattr(variable.constraint, "pruner", None) is not None:
                raise ValueError(
                    f"Layer {layer.name!r} is already being pruned; strip or "
                    "detach the previous pruning first."
                )
            if spec.structure is not None:
                self._check_structure(layer, variable)
        # Under `tf.distribute`, variables made outside the model's strategy
        # scope are not mirrored: every replica would advance the one step
        # variable (a 2-replica run pruned twice as fast). Mirrored, each
        # replica updates its own copy, identically.
        with _strategy_scope(model):
            self.masks = [
                keras.Variable(np.ones(v.shape), dtype=v.dtype,
                               trainable=False,
                               name=f"{v.name}_pruning_mask")
                for _, v in self.targets
            ]
            self.step = keras.Variable(0, dtype="int32", trainable=False,
                                       name="pruning_step")
            self._last_iteration = keras.Variable(
                -1, dtype="int64", trainable=False,
                name="pruning_last_iteration")
        self._saved_constraints = None

    def _check_structure(self, layer, variable):
        n, m = self.spec.structure
        shape = tuple(variable.shape)
        if len(shape) < 2 or shape[-2] % m:
            raise ValueError(
                f"structure='{n}:{m}' needs weights whose input axis (-2) "
                f"is a multiple of {m}; {variable.path} of layer "
                f"{layer.name!r} has shape {shape}."
            )

    @property
    def attached(self):
        return self._saved_constraints is not None

    def attach(self):
        """Install the masking constraints (idempotent)."""
        if self.attached:
            return
        self._saved_constraints = [v.constraint for _, v in self.targets]
        for index, (_, variable) in enumerate(self.targets):
            variable.constraint = _MaskConstraint(
                self, index, self._saved_constraints[index]
            )
        _rebuild_train_function(self.model)

    def detach(self):
        """Restore the original constraints; weights keep their zeros."""
        if not self.attached:
            return
        for (_, variable), inner in zip(self.targets,
                                        self._saved_constraints, strict=True):
            variable.constraint = inner
        self._saved_constraints = None
        _rebuild_train_function(self.model)

    def strip(self):
        """Multiply the weights by their masks, then detach."""
        for (_, variable), mask in zip(self.targets, self.masks, strict=True):
            variable.assign(variable * mask)
        self.detach()

    def advance(self):
        """Count the optimizer update, then recompute masks if scheduled.

        `step` counts the optimizer updates seen; the update being masked
        is pruning step `step - 1`. Repeated calls within one update (micro
        batches of gradient accumulation) recompute the same step's masks,
        which changes nothing unless the weights moved: the masks then
        follow the weights after the real update.
        """
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            # An uncompiled model in a custom loop: one call, one update.
            new = ops.ones((), "int32")
        else:
            iteration = ops.cast(optimizer.iterations, "int64")
            new = ops.cast(ops.not_equal(iteration, self._last_iteration),
                           "int32")
            self._last_iteration.assign(iteration)
        self.step.assign_add(new)
        step = ops.convert_to_tensor(self.step) - 1
        ops.cond(self.spec.is_update_step(step),
                 lambda: self._update_masks(step),
                 lambda: ops.zeros((), "int32"))

    def _update_masks(self, step):
        sparsity = self.spec.sparsity_at(step)
        weights = [v for _, v in self.targets]
        magnitudes = [ops.abs(ops.convert_to_tensor(v) * mask)
                      for v, mask in zip(weights, self.masks, strict=True)]
        if self.spec.structure is not None:
            keeps = [_n_m_keep(mag, *self.spec.structure)
                     for mag in magnitudes]
        elif self.spec.scope == "global":
            flat = ops.concatenate(
                [ops.reshape(ops.cast(mag, "float32"), (-1,))
                 for mag in magnitudes]
            )
            keep = _rank_keep(flat, _count(sparsity, int(flat.shape[0])))
            splits = np.cumsum([int(np.prod(m.shape)) for m in magnitudes])
            keeps = ops.split(keep, [int(s) for s in splits[:-1]])
        else:
            keeps = [
                _rank_keep(ops.reshape(mag, (-1,)),
                           _count(sparsity, int(np.prod(mag.shape))))
                for mag in magnitudes
            ]
        for mask, keep in zip(self.masks, keeps, strict=True):
            mask.assign(ops.cast(ops.reshape(keep, mask.shape), mask.dtype))
        return ops.zeros((), "int32")


def _count(sparsity, size):
    return ops.cast(ops.round(sparsity * size), "int32")


def _strategy_scope(model):
    # `distribute_strategy` is the TensorFlow backend's public property of
    # a model (the strategy it was built under); other backends lack it.
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None:
        return contextlib.nullcontext()
    return strategy.scope()


def _rebuild_train_function(model):
    # A traced train step has the old constraints baked in.
    if getattr(model, "compiled", False):
        keras_compat.rebuild_train_function(model)


class Pruning(keras.callbacks.Callback):
    """Magnitude pruning during `model.fit` (Zhu & Gupta, 2017).

    Keeps one non-trainable mask per pruned weight and applies it in-graph
    right after every optimizer update, through the weights' constraints, so
    no Python runs per batch. The sparsity follows a polynomial schedule
    from `initial_sparsity` to `target_sparsity` between `begin_step` and
    `end_step`; masks are recomputed every `frequency` steps from the
    magnitudes of the (already masked) weights, so pruned weights stay
    pruned. By default the kernels of Dense, EinsumDense and convolution
    layers are pruned; biases, normalization and embedding weights are not.

    Steps count optimizer updates (`model.optimizer.iterations`, so with
    `gradient_accumulation_steps` one step is one real update, not one
    micro-batch) made while the callback is active; using the same
    instance in a later `fit` resumes the schedule and keeps the masks.
    At the end of `fit` the masks are applied to the weights once more
    (an optimizer may move weights after the constraints ran, as
    Lookahead's slow-weight sync does) and the original constraints are
    restored: the model is a plain Keras model whose pruned weights are
    exactly zero.

    Args:
        target_sparsity: Fraction of zeros at the end, in `[0, 1)`.
            Defaults to `0.8`.
        schedule: `"polynomial"` or `"constant"`. Defaults to
            `"polynomial"`.
        begin_step: First mask update. Defaults to `0`.
        end_step: Last mask update (target reached). Defaults to `1000`.
        frequency: Steps between mask updates. Defaults to `100`.
        initial_sparsity: Sparsity at `begin_step`. Defaults to `0.0`.
        power: Exponent of the polynomial schedule. Defaults to `3`.
        scope: `"per_layer"` or `"global"` threshold. Defaults to
            `"per_layer"`.
        layers: `None`, a list of layer names or layers, or a callable
            `layer -> bool`. Defaults to `None`.
        prune_biases: Also prune 1-D weights of the selected layers.
            Defaults to `False`.
        structure: `None` or `"N:M"` (e.g. `"2:4"`). Defaults to `None`.

    Raises:
        ValueError: If an argument is out of range (checked here), or at
            the start of `fit` if the model has nothing to prune.
        NotImplementedError: On the JAX backend (the masks are updated in
            the compiled step, in variables the JAX trainer does not carry).

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> model.compile("adam", "mse")
    >>> pruning = Pruning(0.5, begin_step=0, end_step=4, frequency=2)
    >>> _ = model.fit(np.ones((16, 8)), np.ones((16, 4)), batch_size=4,
    ...               epochs=2, callbacks=[pruning], verbose=0)
    >>> float(np.mean(model.layers[0].kernel.numpy() == 0))
    0.5

    References:
        - [Zhu & Gupta, 2017](https://arxiv.org/abs/1710.01878): To prune,
          or not to prune: exploring the efficacy of pruning for model
          compression.
    """

    def __init__(self, target_sparsity=0.8, schedule="polynomial",
                 begin_step=0, end_step=1000, frequency=100,
                 initial_sparsity=0.0, power=3, scope="per_layer",
                 layers=None, prune_biases=False, structure=None):
        check_backend("Pruning", ("jax",), _JAX_REASON)
        super().__init__()
        self.spec = PruningSpec(
            target_sparsity=target_sparsity, schedule=schedule,
            begin_step=begin_step, end_step=end_step, frequency=frequency,
            initial_sparsity=initial_sparsity, power=power, scope=scope,
            layers=layers, prune_biases=prune_biases, structure=structure,
        )
        self.pruner = None

    def on_train_begin(self, logs=None):
        if self.pruner is None or self.pruner.model is not self.model:
            self.pruner = MagnitudePruner(self.model, self.spec)
        self.pruner.attach()

    def on_train_end(self, logs=None):
        self.pruner.strip()
