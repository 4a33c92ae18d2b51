"""Convolutional and residual classifiers built from ``torch.nn`` blocks.

Part 3 of the book. Unlike :mod:`hw2.layers`, these models use PyTorch's own
layers and autograd: the point here is architecture, not backpropagation.

- :class:`ConvClassifier`: ``[(CONV→ACT)×P → POOL]×(N/P) → (FC→ACT)×M → FC``.
- :class:`ResidualBlock`, :class:`ResidualBottleneckBlock`: the building
  blocks of residual networks (He et al. 2016).
- :class:`ResNetClassifier`: the same layout as ``ConvClassifier`` with every
  ``P`` convolutions wrapped in one residual block.
- :class:`YourCodeNet`: the book's own architecture for experiment 2.

Feature-map sizes are computed from the layer configuration with the
closed-form output-size formula (:func:`conv_output_size`), so a configuration
whose maps would shrink to nothing is rejected when the model is built, with
the offending layer named, rather than failing somewhere inside training.

The modules, each importing only those before it: :mod:`~hw2.cnn.shapes`
(sizes, receptive fields, parameter counts, and the :class:`Block` protocol a
block implements for them), :mod:`~hw2.cnn.plain`, :mod:`~hw2.cnn.residual`,
:mod:`~hw2.cnn.yourcodenet`.
"""
from hw2.cnn.plain import (ACTIVATIONS, DEFAULT_CONV_PARAMS, DEFAULT_POOLING_PARAMS,
                           POOLINGS, ConvClassifier)
from hw2.cnn.residual import ResidualBlock, ResidualBottleneckBlock, ResNetClassifier
from hw2.cnn.shapes import (Block, conv_output_size, count_parameters,
                            feature_map_shape, receptive_field)
from hw2.cnn.yourcodenet import BasicUnit, ConvBN, YourCodeNet

__all__ = [
    "ACTIVATIONS",
    "POOLINGS",
    "DEFAULT_CONV_PARAMS",
    "DEFAULT_POOLING_PARAMS",
    "Block",
    "conv_output_size",
    "count_parameters",
    "feature_map_shape",
    "receptive_field",
    "ConvClassifier",
    "ResidualBlock",
    "ResidualBottleneckBlock",
    "ResNetClassifier",
    "ConvBN",
    "BasicUnit",
    "YourCodeNet",
]
