"""Layer-sequential unit-variance initialization (Mishkin & Matas, 2015)."""

import dataclasses

import keras
import numpy as np

from callbacks._internal import check_number
from recipes.initializers._common import check_functional_model


@dataclasses.dataclass(frozen=True)
class LSUVLayerResult:
    """What `lsuv` did to one layer.

    Attributes:
        name: The layer's name.
        initial_variance: Variance of the layer's pre-activation output on
            the batch before scaling (after the orthogonal initialization).
        final_variance: The same variance after scaling.
        iterations: How many times the kernel was rescaled.
        converged: Whether `|final_variance - 1| < tol`.
    """

    name: str
    initial_variance: float
    final_variance: float
    iterations: int
    converged: bool


@dataclasses.dataclass(frozen=True)
class LSUVReport:
    """The result of `lsuv`: one `LSUVLayerResult` per initialized layer.

    Attributes:
        layers: The per-layer results, in the model's layer order.
        tol: The tolerance used.
    """

    layers: list
    tol: float

    @property
    def converged(self):
        """Whether every layer reached `|variance - 1| < tol`."""
        return all(result.converged for result in self.layers)

    def __str__(self):
        lines = [f"{'layer':<24}{'before':>12}{'after':>10}{'iters':>7}  ok"]
        for r in self.layers:
            lines.append(
                f"{r.name:<24}{r.initial_variance:>12.4g}"
                f"{r.final_variance:>10.4f}{r.iterations:>7d}  "
                f"{'yes' if r.converged else 'NO'}"
            )
        return "\n".join(lines)


def _layer_input(model, inputs, layer, batch):
    try:
        tensor = layer.input
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"lsuv cannot probe layer {layer.name!r}: it must be called "
            "exactly once in the model (shared or nested layers are not "
            "supported)."
        ) from error
    if any(tensor is t for t in keras.tree.flatten(inputs)):
        return batch
    probe = keras.Model(inputs, tensor)
    return probe(batch, training=False)


def _pre_activation_variance(layer, x):
    """Variance of the layer's output with its fused activation disabled.

    LSUV targets the linear response (in the paper the nonlinearity is a
    separate layer); with a fused `tanh`, for example, a unit-variance
    output would need saturated units.
    """
    activation = getattr(layer, "activation", None)
    if activation is not None:
        layer.activation = keras.activations.linear
    try:
        outputs = layer(x, training=False)
    finally:
        if activation is not None:
            layer.activation = activation
    return float(np.var(keras.ops.convert_to_numpy(outputs).astype("float64")))


def lsuv(model, batch, tol=0.1, max_iter=10, orthogonal=True, seed=None):
    """Layer-sequential unit-variance (LSUV) initialization of a model.

    LSUV is data-dependent, so it is a procedure run once on a built model
    before training, not a per-tensor initializer:

    1. every `kernel` of the model (`Dense`, `Conv*`, `EinsumDense`...)
       is re-initialized orthogonally and its bias set to zero
       (`orthogonal=True`);
    2. then, from the first layer to the last, the layer's output on
       `batch` is computed and its kernel divided by the square root of the
       output variance, until the variance is within `tol` of 1 or
       `max_iter` rescalings were made.

    The variance is that of the layer's pre-activation output (its fused
    activation, if any, is switched off while measuring), taken over all
    elements of the batch's output, as in the paper where the nonlinearity
    is a separate layer. Layers without a `kernel` (normalization, pooling,
    activations...) are left alone.

    Args:
        model: A built functional or `Sequential` `keras.Model`. Its weights
            are modified in place.
        batch: A batch of model inputs (NumPy array or tensor, or a list of
            them for a multi-input model), e.g. a few hundred training
            examples.
        tol: Tolerance on `|variance - 1|`, > 0. Defaults to `0.1`.
        max_iter: Maximum number of rescalings per layer, an integer >= 1.
            Defaults to `10`.
        orthogonal: Whether to start from an orthogonal initialization (and
            zero biases). Defaults to `True`.
        seed: Optional integer seed of the orthogonal initialization.
            Defaults to `None`.

    Returns:
        An `LSUVReport`: per layer, the variance before and after, the
        number of rescalings and whether it converged; `report.converged`
        tells whether all did, `print(report)` shows a table.

    Raises:
        TypeError: If `model` is not a `keras.Model`.
        ValueError: If `tol`, `max_iter` or `seed` are invalid, the model
            is not a built functional/Sequential model, `batch` is empty,
            a kernel layer is shared, or a layer outputs only zeros (its
            variance cannot be set by scaling).

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential(
    ...     [keras.Input((8,))]
    ...     + [keras.layers.Dense(16, activation="relu") for _ in range(4)])
    >>> report = lsuv(model, np.random.rand(64, 8).astype("float32"))
    >>> report.converged
    True

    References:
        - [Mishkin & Matas, 2015](https://arxiv.org/abs/1511.06422): All you
          need is a good init.
    """
    tol = check_number("tol", tol, low=0.0, low_inclusive=False)
    max_iter = check_number("max_iter", max_iter, low=1, integer=True)
    seed = check_number("seed", seed, integer=True, allow_none=True)
    inputs = check_functional_model(model)
    if batch is None or any(b is None for b in keras.tree.flatten(batch)):
        raise ValueError(
            "Argument `batch` must be a batch of inputs (an array, or a "
            f"structure of arrays). Received: batch={batch!r}"
        )
    if any(keras.ops.size(b) == 0 for b in keras.tree.flatten(batch)):
        raise ValueError(
            "Argument `batch` must hold at least one example. Received: "
            f"batch={batch!r}"
        )
    layers = [
        layer for layer in model.layers
        if isinstance(getattr(layer, "kernel", None), keras.Variable)
    ]
    if orthogonal:
        for index, layer in enumerate(layers):
            init = keras.initializers.Orthogonal(
                seed=None if seed is None else seed + index)
            layer.kernel.assign(init(layer.kernel.shape, "float32"))
            if getattr(layer, "bias", None) is not None:
                bias = layer.bias
                bias.assign(keras.ops.zeros(bias.shape, bias.dtype))
    results = []
    for layer in layers:
        x = _layer_input(model, inputs, layer, batch)
        variance = initial = _pre_activation_variance(layer, x)
        iterations = 0
        while abs(variance - 1.0) >= tol and iterations < max_iter:
            if not variance > 0.0 or not np.isfinite(variance):
                raise ValueError(
                    f"lsuv: layer {layer.name!r} outputs a variance of "
                    f"{variance} on `batch`; rescaling its kernel cannot "
                    "bring it to 1 (dead or non-finite inputs?)."
                )
            layer.kernel.assign(layer.kernel / np.sqrt(variance))
            iterations += 1
            variance = _pre_activation_variance(layer, x)
        results.append(LSUVLayerResult(
            name=layer.name, initial_variance=initial,
            final_variance=variance, iterations=iterations,
            converged=abs(variance - 1.0) < tol))
    return LSUVReport(layers=results, tol=tol)
