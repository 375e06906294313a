"""Layers Keras 3 lacks: weight/instance/filter-response normalization,
stochastic depth, DropBlock, anti-aliased pooling and min-max scaling; and
`ClassifierDense`, an output layer that keeps its class names."""

from recipes.layers.blur_pool import BlurPool2D
from recipes.layers.classifier_dense import ClassifierDense
from recipes.layers.drop_block import DropBlock
from recipes.layers.filter_response_normalization import (
    TLU,
    FilterResponseNormalization,
)
from recipes.layers.instance_normalization import InstanceNormalization
from recipes.layers.min_max_scaling import MinMaxScaling
from recipes.layers.stochastic_depth import DropPath, StochasticDepth
from recipes.layers.weight_normalization import WeightNormalization

__all__ = [
    "BlurPool2D",
    "ClassifierDense",
    "DropBlock",
    "DropPath",
    "FilterResponseNormalization",
    "InstanceNormalization",
    "MinMaxScaling",
    "StochasticDepth",
    "TLU",
    "WeightNormalization",
]
