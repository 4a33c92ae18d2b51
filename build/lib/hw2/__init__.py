"""hw2: backpropagation, optimizers, training and convolutional networks.

The package behind the book "Backprop, Optimizers & ResNets". Submodules are
imported explicitly (``import hw2.layers as layers``); importing ``hw2`` itself
does no work.
"""

__version__ = "0.1.0"
