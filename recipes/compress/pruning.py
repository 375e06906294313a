"""Magnitude pruning for Keras 3 models: prune, strip, report.

tensorflow-model-optimization only prunes Keras 2 models; this recipe uses
the in-graph masking mechanism of `callbacks.pruning` (masks applied by the
weights' constraints after each optimizer update) and keeps it attached to
the model, so any later `model.fit` prunes without extra callbacks.
"""

import dataclasses

import numpy as np

from callbacks.pruning import MagnitudePruner, PruningSpec, select_weights


def prune(model, target_sparsity=0.8, schedule="polynomial", begin_step=0,
          end_step=1000, frequency=100, initial_sparsity=0.0, power=3,
          scope="per_layer", layers=None, prune_biases=False,
          structure=None):
    """Make every later `model.fit` prune `model` by weight magnitude.

    Attaches one non-trainable mask per pruned weight and a constraint that
    applies it in-graph right after each optimizer update (Zhu & Gupta,
    2017). Sparsity follows the schedule over pruning steps (optimizer
    updates since this call); masks are recomputed every `frequency` steps
    until `end_step` and stay applied afterwards, through any number of
    `fit` calls, until `strip_pruning(model)`. The model is modified in
    place; its architecture and config do not change, so it saves to and
    reloads from `.keras` (`safe_mode=True`) as a plain model with its zeros.

    Args:
        model: A built Keras model (compiled or not).
        target_sparsity: Fraction of zeros at `end_step`, in `[0, 1)`.
            Defaults to `0.8`.
        schedule: `"polynomial"` (cubic ramp from `initial_sparsity`) or
            `"constant"`. Defaults to `"polynomial"`.
        begin_step: First mask update. Defaults to `0`.
        end_step: Last mask update; the target is reached here. Defaults
            to `1000`.
        frequency: Steps between mask updates. Defaults to `100`.
        initial_sparsity: Sparsity at `begin_step`. Defaults to `0.0`.
        power: Exponent of the polynomial ramp. Defaults to `3`.
        scope: `"per_layer"` (each weight reaches the target) or `"global"`
            (one threshold over all pruned weights). Defaults to
            `"per_layer"`.
        layers: `None` (Dense, EinsumDense and convolution kernels), a list
            of layer names or layers (e.g. an `Embedding`), or a callable
            `layer -> bool`. Defaults to `None`.
        prune_biases: Also prune the 1-D weights of the selected layers.
            Defaults to `False`.
        structure: `None` or `"N:M"` semi-structured sparsity such as
            `"2:4"` (then `target_sparsity` must be `1 - N / M`). Defaults
            to `None`.

    Returns:
        `model`, now pruning during training.

    Raises:
        ValueError: If an argument is out of range, the model is not built,
            has nothing to prune, or is already being pruned.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> model = prune(model, 0.75, end_step=4, frequency=1)
    >>> model.compile("sgd", "mse")
    >>> _ = model.fit(np.ones((32, 8)), np.ones((32, 4)), batch_size=4,
    ...               verbose=0)
    >>> sparsity_report(model).sparsity
    0.75

    References:
        - [Zhu & Gupta, 2017](https://arxiv.org/abs/1710.01878): To prune,
          or not to prune: exploring the efficacy of pruning for model
          compression.
    """
    spec = PruningSpec(
        target_sparsity=target_sparsity, schedule=schedule,
        begin_step=begin_step, end_step=end_step, frequency=frequency,
        initial_sparsity=initial_sparsity, power=power, scope=scope,
        layers=layers, prune_biases=prune_biases, structure=structure,
    )
    MagnitudePruner(model, spec).attach()
    return model


def attached_pruners(model):
    """The pruners currently attached to `model`'s weights."""
    pruners = {}
    for variable in model.weights:
        pruner = getattr(variable.constraint, "pruner", None)
        if isinstance(pruner, MagnitudePruner):
            pruners[id(pruner)] = pruner
    return list(pruners.values())


def strip_pruning(model):
    """Bake the pruning masks into the weights and remove the machinery.

    After this call `model` is a plain Keras model: pruned weights are
    exactly zero, the original weight constraints are back, and further
    training may regrow the zeros. A model that is not being pruned is
    returned unchanged.

    Args:
        model: A model passed to `prune` (modified in place).

    Returns:
        `model`.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> model = prune(model, 0.5, schedule="constant", frequency=1)
    >>> model.compile("sgd", "mse")
    >>> _ = model.fit(np.ones((4, 8)), np.ones((4, 4)), verbose=0)
    >>> model = strip_pruning(model)
    >>> model.layers[0].kernel.constraint is None
    True
    """
    for pruner in attached_pruners(model):
        pruner.strip()
    return model


@dataclasses.dataclass(frozen=True)
class WeightSparsity:
    """Zeros in one weight: `layer` name, weight `path`, `zeros`, `size`."""

    layer: str
    path: str
    zeros: int
    size: int

    @property
    def sparsity(self):
        return self.zeros / self.size


@dataclasses.dataclass(frozen=True)
class SparsityReport:
    """Per-weight and total sparsity; `str(report)` is a text table."""

    weights: tuple

    @property
    def zeros(self):
        return sum(w.zeros for w in self.weights)

    @property
    def size(self):
        return sum(w.size for w in self.weights)

    @property
    def sparsity(self):
        return self.zeros / self.size

    def __str__(self):
        width = max(len(w.path) for w in self.weights) + 2
        lines = [f"{'weight':<{width}}{'zeros':>10}{'size':>10}"
                 f"{'sparsity':>10}"]
        rows = list(self.weights) + [
            WeightSparsity("", "total", self.zeros, self.size)
        ]
        for w in rows:
            lines.append(f"{w.path:<{width}}{w.zeros:>10}{w.size:>10}"
                         f"{w.sparsity:>10.2%}")
        return "\n".join(lines)


def sparsity_report(model, layers=None, prune_biases=False):
    """Count the exact zeros of the (prunable) weights of `model`.

    Args:
        model: A built Keras model, pruned or not.
        layers: Which layers to count, as in `prune`. Defaults to `None`
            (Dense, EinsumDense and convolution kernels).
        prune_biases: Also count the 1-D weights of those layers. Defaults
            to `False`.

    Returns:
        A `SparsityReport` with `.weights` (one `WeightSparsity` each) and
        the totals `.zeros`, `.size`, `.sparsity`.

    Example:

    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> _ = model.layers[0].kernel.assign([[0.0, 1.0], [0.0, 2.0]])
    >>> sparsity_report(model).sparsity
    0.5
    """
    entries = []
    for layer, variable in select_weights(model, layers, prune_biases,
                                          trainable_only=False):
        value = np.asarray(variable.numpy())
        entries.append(WeightSparsity(layer.name, variable.path,
                                      int(np.sum(value == 0)),
                                      int(value.size)))
    return SparsityReport(tuple(entries))
