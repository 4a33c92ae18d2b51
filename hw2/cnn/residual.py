"""Residual blocks and the residual classifier (He et al. 2016).

:class:`ResidualBlock` and :class:`ResidualBottleneckBlock` are the building
blocks; :class:`ResNetClassifier` is ``ConvClassifier``'s layout with every
``P`` convolutions wrapped in one residual block.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from hw2 import _checks
from hw2.cnn.plain import ConvClassifier, _activation, _check_images

__all__ = ["ResidualBlock", "ResidualBottleneckBlock", "ResNetClassifier"]


class ResidualBlock(nn.Module):
    """``out = ReLU(main_path(x) + shortcut_path(x))`` (He et al. 2016).

    The main path is a chain of convolutions with 'same' padding (so odd
    kernel sizes only), and ``Dropout2d → BatchNorm2d → activation`` between
    consecutive convolutions (not after the last one; each part only when
    requested). Its convolutions keep their biases, as ``nn.Conv2d`` does by
    default. The shortcut is the identity (an empty ``nn.Sequential``) when the
    block keeps the number of channels, and a bias-free 1×1 convolution that
    projects ``in_channels → channels[-1]`` otherwise.

    Args:
        in_channels: channels of the input ``(B, in_channels, H, W)``.
        channels: output channels of each main-path convolution; the block
            outputs ``(B, channels[-1], H, W)``.
        kernel_sizes: odd kernel size of each main-path convolution.
        batchnorm: insert ``BatchNorm2d`` between convolutions.
        dropout: ``Dropout2d`` probability between convolutions (0 = none).
        activation_type: activation between the main path's convolutions,
            one of :data:`ACTIVATIONS`; ``activation_params`` are its keywords.
        output_activation: the activation after the sum. ``'relu'`` (the
            default) is the original course's block, whatever
            ``activation_type`` is; ``'main'`` applies ``activation_type``
            there too, with ``activation_params``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        kernel_sizes: Sequence[int],
        batchnorm: bool = False,
        dropout: float = 0.0,
        activation_type: str = "relu",
        activation_params: dict | None = None,
        output_activation: str = "relu",
    ):
        super().__init__()
        _checks.positive_int("in_channels", in_channels)
        channels = _checks.int_list("channels", channels)
        kernel_sizes = _checks.int_list("kernel_sizes", kernel_sizes)
        if len(channels) != len(kernel_sizes):
            raise ValueError(
                f"channels and kernel_sizes must have the same length, "
                f"got {len(channels)} and {len(kernel_sizes)}"
            )
        even = [k for k in kernel_sizes if k % 2 == 0]
        if even:
            raise ValueError(
                f"kernel sizes must be odd so that 'same' padding (k-1)/2 keeps "
                f"the map size; got even kernel sizes {even} in {kernel_sizes}"
            )
        dropout = _checks.real_in("dropout", dropout, 0.0, 1.0)
        _checks.flag("batchnorm", batchnorm)
        # a bad name fails even with one conv
        _activation(activation_type, activation_params)
        if output_activation not in ("relu", "main"):
            raise ValueError(
                f"output_activation must be 'relu' (the course's block) or 'main' "
                f"(activation_type after the sum too), got {output_activation!r}"
            )
        self.in_channels = in_channels
        self.out_channels = channels[-1]

        main = []
        c_in = in_channels
        for i, (c_out, k) in enumerate(zip(channels, kernel_sizes)):
            main.append(nn.Conv2d(c_in, c_out, kernel_size=k, padding=(k - 1) // 2))
            if i < len(channels) - 1:  # between convolutions only
                if dropout > 0:
                    main.append(nn.Dropout2d(dropout))
                if batchnorm:
                    main.append(nn.BatchNorm2d(c_out))
                main.append(_activation(activation_type, activation_params))
            c_in = c_out
        self.main_path = nn.Sequential(*main)

        if in_channels == channels[-1]:
            self.shortcut_path = nn.Sequential()  # identity
        else:
            self.shortcut_path = nn.Sequential(
                nn.Conv2d(in_channels, channels[-1], kernel_size=1, bias=False)
            )
        self.output_activation = output_activation
        if output_activation == "main":
            self.activation = _activation(activation_type, activation_params)
        else:
            self.activation = nn.ReLU()

    # The Block protocol (hw2.cnn.shapes): out_channels is set in __init__.
    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        """'Same' padding with stride 1: the block keeps the spatial size."""
        return h, w

    def receptive_path(self) -> nn.Sequential:
        """The main path: the 1×1 or identity shortcut sees less."""
        return self.main_path

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, in_channels, H, W)`` → ``(B, channels[-1], H, W)``."""
        _check_images(x, type(self).__name__, self.in_channels)
        out = self.main_path(x)
        out = out + self.shortcut_path(x)
        return self.activation(out)


class ResidualBottleneckBlock(ResidualBlock):
    """A residual block that works in a narrower space (He et al. 2016).

    ``in_out_channels → inner_channels[0]`` (1×1 down-projection), then the
    inner convolutions ``inner_channels[0] → inner_channels[0] → … →
    inner_channels[-1]`` with ``inner_kernel_sizes``, then
    ``inner_channels[-1] → in_out_channels`` (1×1 up-projection). Input and
    output have the same channels, so the shortcut is the identity. This is a
    :class:`ResidualBlock` with ``channels = [inner[0], *inner, in_out]`` and
    ``kernel_sizes = [1, *inner_kernel_sizes, 1]``: ``2 + len(inner_channels)``
    convolutions. Keyword arguments go to :class:`ResidualBlock`.
    """

    def __init__(self, in_out_channels: int, inner_channels: Sequence[int],
                 inner_kernel_sizes: Sequence[int], **kwargs):
        inner_channels = _checks.int_list("inner_channels", inner_channels)
        inner_kernel_sizes = _checks.int_list("inner_kernel_sizes", inner_kernel_sizes)
        if len(inner_channels) != len(inner_kernel_sizes):
            raise ValueError(
                "inner_channels and inner_kernel_sizes must have the same length, "
                f"got {len(inner_channels)} and {len(inner_kernel_sizes)}"
            )
        super().__init__(
            in_channels=in_out_channels,
            channels=[inner_channels[0], *inner_channels, in_out_channels],
            kernel_sizes=[1, *inner_kernel_sizes, 1],
            **kwargs,
        )

class ResNetClassifier(ConvClassifier):
    """``ConvClassifier``'s layout with every ``P`` convolutions in one residual block.

    Feature extractor: ``[ResidualBlock(P convs) → POOL]×(N/P)``, then one
    residual block of the remaining ``N mod P`` convolutions without a pooling
    after it. All main-path convolutions are 3×3 with 'same' padding (so
    ``conv_params`` is not accepted). The pooling is the one named by
    ``pooling_type`` / ``pooling_params`` (max 2×2 by default), as in the
    original assignment: the plain and the residual network then differ only
    in their skip connections (and in batchnorm/dropout if requested), which is
    the comparison experiment 1.4 makes.

    With ``bottleneck=True`` a group of widths ``g = channels[i:i+P]`` becomes a
    :class:`ResidualBottleneckBlock` when

    1. it has at least 3 convolutions (two 1×1 projections and one inner conv),
    2. its last width equals the block's input width (identity shortcut), and
    3. ``g[0] == g[1]`` (the down-projection feeds the first inner conv at its width),

    so that the block's convolutions have exactly the widths ``g``, with
    kernels ``1, 3, …, 3, 1``: 256 input channels followed by the group
    ``[64, 64, 256]`` is the bottleneck of ResNet-50. Every other group is an
    ordinary :class:`ResidualBlock` of 3×3 convolutions.
    """

    def __init__(
        self,
        in_size,
        out_classes: int,
        channels: Sequence[int],
        pool_every: int,
        hidden_dims: Sequence[int],
        batchnorm: bool = False,
        dropout: float = 0.0,
        bottleneck: bool = False,
        output_activation: str = "relu",
        **kwargs,
    ):
        if kwargs.get("conv_params"):
            raise ValueError(
                "ResNetClassifier uses 3×3 convolutions with 'same' padding; "
                f"conv_params is not supported (got {kwargs['conv_params']!r})"
            )
        kwargs.pop("conv_params", None)
        self.batchnorm = _checks.flag("batchnorm", batchnorm)
        self.dropout = dropout
        self.bottleneck = _checks.flag("bottleneck", bottleneck)
        self.output_activation = output_activation
        super().__init__(
            in_size, out_classes, channels, pool_every, hidden_dims, **kwargs
        )

    def _is_bottleneck_group(self, in_channels: int, group: list[int]) -> bool:
        return (
            self.bottleneck
            and len(group) >= 3
            and group[-1] == in_channels
            and group[0] == group[1]
        )

    def _make_block(self, in_channels: int, group: list[int]) -> ResidualBlock:
        common = dict(
            batchnorm=self.batchnorm,
            dropout=self.dropout,
            activation_type=self.activation_type,
            activation_params=self.activation_params,
            output_activation=self.output_activation,
        )
        if self._is_bottleneck_group(in_channels, group):
            inner = group[1:-1]
            return ResidualBottleneckBlock(
                in_channels, inner, [3] * len(inner), **common
            )
        return ResidualBlock(in_channels, group, [3] * len(group), **common)

    def _make_feature_extractor(self) -> nn.Sequential:
        """``[ResidualBlock(P convs) → POOL]×(N/P)``.

        Then one block of the remaining ``N mod P`` convolutions.
        """
        layers = []
        in_channels = self.in_size[0]
        P = self.pool_every
        for start in range(0, len(self.channels), P):
            group = self.channels[start:start + P]
            layers.append(self._make_block(in_channels, group))
            if len(group) == P:
                layers.append(self._make_pooling())
            in_channels = group[-1]
        return nn.Sequential(*layers)
