"""Discriminative learning rates: one optimizer per parameter group.

Fine-tuning a pretrained network trains its new head faster than its
pretrained body (Howard & Ruder, 2018). Keras optimizers take a single
learning rate, and scaling gradients does not help with Adam-type
optimizers (their update is invariant to the gradient's scale), so the
recipes wrap two complete optimizers: one for the head, one for the
backbone, each with its own learning rate or schedule and its own slots.
"""

import keras

from callbacks._api import register
from recipes.optimizers._wrapper import WrapperOptimizer


@register
class DiscriminativeOptimizer(WrapperOptimizer):
    """Update the backbone's variables with their own optimizer.

    Variables whose `path` is in `backbone_paths` are updated by
    `backbone_optimizer`; every other variable by `optimizer` (the head's).
    The learning rate, step counter and loss scaling the training loop sees
    are the head optimizer's. Both optimizers' states are saved with the
    model, so a `.keras` file holding it reloads with `safe_mode=True`.

    Args:
        optimizer: Optimizer of the head (every variable not listed).
        backbone_optimizer: Optimizer of the backbone variables.
        backbone_paths: Paths (`variable.path`) of the backbone variables.
        name: Name of the wrapper. Defaults to `None`.
        **kwargs: Base optimizer arguments are refused: set them on the
            wrapped optimizers.

    Raises:
        TypeError: If an optimizer is not a Keras optimizer.

    Example:

    >>> head = keras.Variable([1.0], name="head")
    >>> body = keras.Variable([1.0], name="body")
    >>> opt = DiscriminativeOptimizer(
    ...     keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.01),
    ...     backbone_paths=[body.path])
    >>> opt.apply([keras.ops.ones(1), keras.ops.ones(1)], [head, body])
    >>> [round(float(v.numpy()[0]), 4) for v in (head, body)]
    [0.9, 0.99]

    References:
        - [Howard & Ruder, 2018](https://arxiv.org/abs/1801.06146)
    """

    def __init__(self, optimizer, backbone_optimizer, backbone_paths,
                 name=None, **kwargs):
        super().__init__(optimizer, name=name, **kwargs)
        if not isinstance(backbone_optimizer, keras.optimizers.Optimizer):
            raise TypeError(
                "Argument `backbone_optimizer` must be a "
                "`keras.optimizers.Optimizer` instance. Received: "
                f"backbone_optimizer={backbone_optimizer!r}"
            )
        self.backbone_optimizer = backbone_optimizer
        self.backbone_paths = sorted(backbone_paths)
        self._backbone_set = frozenset(self.backbone_paths)

    def _groups(self, variables):
        head, body = [], []
        for i, variable in enumerate(variables):
            (body if variable.path in self._backbone_set else head).append(i)
        return head, body

    def build(self, var_list):
        if self.built:
            return
        var_list = list(var_list)
        head, body = self._groups(var_list)
        self.inner_optimizer.build([var_list[i] for i in head])
        self.backbone_optimizer.build([var_list[i] for i in body])
        # The averages (`use_ema`) live in the two wrapped optimizers.
        self._building_wrapper = True
        try:
            keras.optimizers.Optimizer.build(self, var_list)
        finally:
            self._building_wrapper = False

    @property
    def variables(self):
        return super().variables + list(self.backbone_optimizer.variables)

    def apply(self, grads, trainable_variables=None):
        variables = self._build_for(trainable_variables)
        grads = list(grads)
        for optimizer, group in zip(
                (self.inner_optimizer, self.backbone_optimizer),
                self._groups(variables), strict=True):
            if group:
                optimizer.apply([grads[i] for i in group],
                                [variables[i] for i in group])

    def finalize_variable_values(self, var_list):
        head, body = self._groups(var_list)
        self.inner_optimizer.finalize_variable_values(
            [var_list[i] for i in head])
        self.backbone_optimizer.finalize_variable_values(
            [var_list[i] for i in body])

    def get_config(self):
        return {
            **super().get_config(),
            "backbone_optimizer": keras.optimizers.serialize(
                self.backbone_optimizer),
            "backbone_paths": list(self.backbone_paths),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["backbone_optimizer"] = keras.optimizers.deserialize(
            config["backbone_optimizer"], custom_objects=custom_objects)
        return super().from_config(config, custom_objects=custom_objects)
