"""Feature-map sizes, receptive fields and parameter counts, in closed form.

No forward pass: each layer's output size follows from its configuration by
the output-size formula of :func:`conv_output_size`. Convolutions and poolings
are PyTorch's; a *block* of this package (a residual block, a residual unit, a
stage of YourCodeNet) describes itself through the :class:`Block` protocol, so
adding a block means writing its three methods here, not teaching three
``isinstance`` switches.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from torch import nn

__all__ = ["Block", "as_pair", "conv_output_size", "layer_output_hw",
           "layer_out_channels", "feature_map_shape", "receptive_field",
           "count_parameters"]


@runtime_checkable
class Block(Protocol):
    """What the shape arithmetic needs of a block made of several layers.

    Attributes:
        out_channels: channels of the block's output.
    """

    out_channels: int

    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        """Spatial size of the output for an ``h``×``w`` input."""

    def receptive_path(self) -> Sequence[nn.Module]:
        """The layers, in order, along the path that sees the most input pixels."""


def as_pair(value) -> tuple:
    """``(v, v)`` for one value, a pair as it is: PyTorch's size arguments."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length along one spatial axis of a convolution or pooling window.

    A window of ``kernel_size`` taps spaced ``dilation`` apart spans
    ``d(k−1)+1`` input positions; sliding it with step ``s`` over the padded
    input of length ``H + 2p`` fits

        H_out = ⌊(H + 2p − d(k−1) − 1) / s⌋ + 1

    positions (the formula of ``nn.Conv2d`` / ``nn.MaxPool2d``). With
    ``ceil_mode`` the division rounds up, except that a last window starting
    beyond the input and its left padding is dropped (PyTorch's rule).
    The result may be ≤ 0: the caller decides what a vanished map means.
    """
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def layer_output_hw(layer: nn.Module, h: int, w: int) -> tuple[int, int]:
    """Spatial size after one layer: a conv, a pooling or a :class:`Block`."""
    if isinstance(layer, nn.Conv2d):
        if layer.padding == "same":
            return h, w
        padding = (0, 0) if layer.padding == "valid" else layer.padding
        return tuple(
            conv_output_size(n, k, s, p, d)
            for n, k, s, p, d in zip(
                (h, w), layer.kernel_size, layer.stride, padding, layer.dilation
            )
        )
    if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
        kernel = as_pair(layer.kernel_size)
        stride = as_pair(layer.stride or layer.kernel_size)
        padding = as_pair(layer.padding)
        dilation = as_pair(getattr(layer, "dilation", 1))
        return tuple(
            conv_output_size(n, k, s, p, d, layer.ceil_mode)
            for n, k, s, p, d in zip((h, w), kernel, stride, padding, dilation)
        )
    if isinstance(layer, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        out = as_pair(layer.output_size)
        return (out[0] or h, out[1] or w)
    if isinstance(layer, Block):
        return layer.output_hw(h, w)
    if isinstance(layer, nn.Sequential):
        for child in layer:
            h, w = layer_output_hw(child, h, w)
    return h, w


def layer_out_channels(layer: nn.Module, channels: int) -> int:
    """Channels after one layer: a conv's or a :class:`Block`'s; others keep them."""
    if isinstance(layer, (nn.Conv2d, Block)):
        return layer.out_channels
    if isinstance(layer, nn.Sequential):
        for child in layer:
            channels = layer_out_channels(child, channels)
    return channels


def feature_map_shape(
    layers: nn.Sequential, in_size: Sequence[int]
) -> tuple[int, int, int]:
    """``(channels, height, width)`` after ``layers``, from their configuration.

    No forward pass is run.

    Raises:
        ValueError: naming the first layer (its index in ``layers`` and its
            type) whose output map has no pixels left.
    """
    c, h, w = in_size
    for index, layer in enumerate(layers):
        new_h, new_w = layer_output_hw(layer, h, w)
        if new_h < 1 or new_w < 1:
            # One line: a container's repr (a stage, a Sequential) spans many.
            shown = layer.__class__.__name__
            if "\n" not in str(layer):
                shown += f": {layer}"
            raise ValueError(
                f"feature map vanishes at layer {index} ({shown}): "
                f"input {h}×{w} -> output {max(new_h, 0)}×{max(new_w, 0)}; "
                f"use fewer poolings (a larger pool_every), smaller strides "
                f"or more padding"
            )
        c, h, w = layer_out_channels(layer, c), new_h, new_w
    return c, h, w


def _rf_step(layers, rf: list[int], jump: list[int]) -> None:
    """Grow the receptive field ``rf`` (per axis) through ``layers``.

    ``jump`` = input pixels per output step.
    """
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            kernel = as_pair(layer.kernel_size)
            stride = as_pair(layer.stride or layer.kernel_size)
            dilation = as_pair(getattr(layer, "dilation", 1))
            for axis in (0, 1):
                rf[axis] += (kernel[axis] - 1) * dilation[axis] * jump[axis]
                jump[axis] *= stride[axis]
        elif isinstance(layer, Block):
            _rf_step(layer.receptive_path(), rf, jump)
        elif isinstance(layer, nn.Sequential):
            _rf_step(layer, rf, jump)


def receptive_field(layers) -> tuple[int, int]:
    """``(height, width)`` of the input region one output pixel of ``layers`` sees.

    Each layer with kernel ``k``, dilation ``d`` and stride ``s`` widens the
    field by ``d(k−1)`` of *its input's* pixels, i.e. by ``d(k−1)·J`` image
    pixels, where ``J`` is the product of the strides before it:

        r_l = r_{l−1} + d_l (k_l − 1) J_{l−1},   J_l = J_{l−1} s_l,
        r_0 = J_0 = 1.

    A residual block counts through its main path (the widest path).
    """
    rf, jump = [1, 1], [1, 1]
    if not isinstance(layers, Sequence | nn.Sequential):
        layers = [layers]
    _rf_step(layers, rf, jump)
    return tuple(rf)


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters of ``module`` (all of them, trainable or not).

    Every tensor in ``module.parameters()`` counts once with all its elements,
    so a weight shared between two layers is counted once.
    """
    return sum(p.numel() for p in module.parameters())
