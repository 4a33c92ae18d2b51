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
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from hw2 import _checks

__all__ = [
    "ACTIVATIONS",
    "POOLINGS",
    "conv_output_size",
    "count_parameters",
    "feature_map_shape",
    "receptive_field",
    "ConvClassifier",
    "ResidualBlock",
    "ResidualBottleneckBlock",
    "ResNetClassifier",
    "YourCodeNet",
]

# Names accepted by ``activation_type`` and ``pooling_type``.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "lrelu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
POOLINGS: dict[str, type[nn.Module]] = {
    "max": nn.MaxPool2d,
    "avg": nn.AvgPool2d,
}

# Defaults that explicit ``conv_params`` / ``pooling_params`` override key by key.
DEFAULT_CONV_PARAMS = dict(kernel_size=3, padding=1)
DEFAULT_POOLING_PARAMS = dict(kernel_size=2)


# --------------------------------------------------------------------------
# Argument checks and small factories
# --------------------------------------------------------------------------

def _activation(activation_type: str, activation_params: dict) -> nn.Module:
    if activation_type not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation_type {activation_type!r}; "
            f"supported: {', '.join(map(repr, ACTIVATIONS))}"
        )
    return ACTIVATIONS[activation_type](**activation_params)


def _check_pooling_type(pooling_type: str) -> None:
    if pooling_type not in POOLINGS:
        raise ValueError(
            f"unknown pooling_type {pooling_type!r}; "
            f"supported: {', '.join(map(repr, POOLINGS))}"
        )


def _is_positive_int(value) -> bool:
    return _checks.is_int(value) and value > 0


def _check_in_size(in_size) -> tuple[int, int, int]:
    if (
        isinstance(in_size, (str, bytes))
        or not isinstance(in_size, Sequence)
        or len(in_size) != 3
        or not all(_is_positive_int(v) for v in in_size)
    ):
        raise ValueError(
            f"in_size must be (channels, height, width) of positive ints, "
            f"got {in_size!r}"
        )
    return tuple(int(v) for v in in_size)


def _check_positive_ints(name: str, values, allow_empty: bool) -> list[int]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a list of positive ints, got {values!r}")
    values = list(values)
    if not values and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    bad = [v for v in values if not _is_positive_int(v)]
    if bad:
        raise ValueError(f"{name} must hold positive ints; bad entries: {bad!r}")
    return [int(v) for v in values]


def _check_map_size(size) -> tuple[int, int] | None:
    """None, or a positive int / pair of positive ints as ``(h, w)``."""
    if size is None:
        return None
    pair = list(size) if isinstance(size, (tuple, list)) else [size, size]
    if len(pair) != 2 or not all(_is_positive_int(v) for v in pair):
        raise ValueError(
            f"head_map_size must be a positive int or (h, w), got {size!r}"
        )
    return int(pair[0]), int(pair[1])


#: The ``conv_params`` / ``pooling_params`` entries checked, and how.
_POSITIVE_WINDOW_KEYS = ("kernel_size", "stride", "dilation")
_FLAG_KEYS = ("bias", "ceil_mode", "count_include_pad")


def _check_window_params(name: str, params, *, pooling: bool) -> dict:
    """``params`` (``conv_params`` or ``pooling_params``) as a dict, checked.

    Sizes, strides and dilations are positive ints or pairs of them, padding
    a non-negative int or pair (or 'same' / 'valid' for a convolution), a
    pooling's padding at most half its window (PyTorch's rule), flags bools.
    Other keys are left to the PyTorch layer, which names a wrong one.

    Raises:
        ValueError: naming the entry, e.g. ``conv_params['stride'] must be ...``.
    """
    if not isinstance(params, dict):
        raise ValueError(f"{name} must be a dict of keyword arguments, got {params!r}")

    def pair_of(key, minimum):
        value = params[key]
        items = list(value) if isinstance(value, (tuple, list)) else [value]
        if len(items) not in (1, 2) or not all(
                _checks.is_int(v) and v >= minimum for v in items):
            what = "positive" if minimum else "non-negative"
            raise ValueError(f"{name}[{key!r}] must be a {what} int or a pair of "
                             f"them, got {value!r}")
        return items * (2 // len(items))

    for key in _POSITIVE_WINDOW_KEYS:
        if key in params and params[key] is not None:
            pair_of(key, 1)
    if "padding" in params and not (not pooling and params["padding"] in
                                    ("same", "valid")):
        padding = pair_of("padding", 0)
        if pooling:
            kernel = _pair(params.get("kernel_size", 2))
            if any(p > k // 2 for p, k in zip(padding, kernel)):
                raise ValueError(f"{name}['padding'] must be at most half the window "
                                 f"({params.get('kernel_size', 2)!r}), got "
                                 f"{params['padding']!r}")
    for key in _FLAG_KEYS:
        if key in params and not isinstance(params[key], bool):
            raise ValueError(f"{name}[{key!r}] must be true or false, got "
                             f"{params[key]!r}")
    return dict(params)


def _check_images(x, owner: str, channels: int, size: tuple[int, int] | None = None):
    """``x`` must be a float batch ``(B, channels, H, W)`` (of ``size`` when given).

    Raises:
        TypeError: not a tensor, or not floating point (the message says how
            to convert uint8 images).
        ValueError: the wrong number of dimensions, channels or pixels, named.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner} takes a tensor of images, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{owner} takes a batch of images (B, C, H, W), got a tensor "
                         f"of shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{owner} takes images of {channels} channels, got "
                         f"{x.shape[1]} (shape {tuple(x.shape)})")
    if size is not None and tuple(x.shape[2:]) != tuple(size):
        raise ValueError(f"{owner} was built for {size[0]}×{size[1]} images, got "
                         f"{x.shape[2]}×{x.shape[3]}")
    if not x.is_floating_point():
        raise TypeError(f"{owner} takes floating-point images, got {x.dtype} (scale "
                        f"uint8 images with x.float() / 255)")


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


# --------------------------------------------------------------------------
# Feature-map sizes, in closed form
# --------------------------------------------------------------------------

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


def _layer_output_hw(layer: nn.Module, h: int, w: int) -> tuple[int, int]:
    """Spatial size after one layer (convs and poolings; others keep the size)."""
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
        kernel = _pair(layer.kernel_size)
        stride = _pair(layer.stride or layer.kernel_size)
        padding = _pair(layer.padding)
        dilation = _pair(getattr(layer, "dilation", 1))
        return tuple(
            conv_output_size(n, k, s, p, d, layer.ceil_mode)
            for n, k, s, p, d in zip((h, w), kernel, stride, padding, dilation)
        )
    if isinstance(layer, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        out = _pair(layer.output_size)
        return (out[0] or h, out[1] or w)
    if isinstance(layer, (ResidualBlock, _Stage)):
        return layer.output_hw(h, w)
    return h, w


def _out_channels(layer: nn.Module, channels: int) -> int:
    if isinstance(layer, nn.Conv2d):
        return layer.out_channels
    if isinstance(layer, (ResidualBlock, _Stage)):
        return layer.out_channels
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
        new_h, new_w = _layer_output_hw(layer, h, w)
        if new_h < 1 or new_w < 1:
            raise ValueError(
                f"feature map vanishes at layer {index} "
                f"({layer.__class__.__name__}: {layer}): "
                f"input {h}×{w} -> output {max(new_h, 0)}×{max(new_w, 0)}; "
                f"use fewer poolings (a larger pool_every), smaller strides "
                f"or more padding"
            )
        c, h, w = _out_channels(layer, c), new_h, new_w
    return c, h, w


def _rf_step(layers, rf: list[int], jump: list[int]) -> None:
    """Grow the receptive field ``rf`` (per axis) through ``layers``.

    ``jump`` = input pixels per output step.
    """
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            kernel = _pair(layer.kernel_size)
            stride = _pair(layer.stride or layer.kernel_size)
            dilation = _pair(getattr(layer, "dilation", 1))
            for axis in (0, 1):
                rf[axis] += (kernel[axis] - 1) * dilation[axis] * jump[axis]
                jump[axis] *= stride[axis]
        elif isinstance(layer, ResidualBlock):
            # the 1×1 or identity shortcut sees less
            _rf_step(layer.main_path, rf, jump)
        elif isinstance(layer, BasicUnit):
            _rf_step(layer.body, rf, jump)
        elif isinstance(layer, _Stage):
            _rf_step([*layer.transition, *layer.units], rf, jump)
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


# --------------------------------------------------------------------------
# The plain convolutional classifier
# --------------------------------------------------------------------------

class ConvClassifier(nn.Module):
    """A VGG-style classifier: ``[(CONV→ACT)×P → POOL]×(N/P) → (FC→ACT)×M → FC``.

    ``N = len(channels)`` convolutions; a pooling layer follows every ``P``-th
    one. If ``P`` does not divide ``N``, the last ``N mod P`` convolutions come
    without a pooling after them (as in the original assignment).

    ``feature_shape`` is the ``(C, H, W)`` that enters the classifier head.

    Args:
        in_size: ``(C, H, W)`` of one input image; inputs are ``(B, C, H, W)``.
        out_classes: number of class scores produced, output
            ``(B, out_classes)``.
        channels: output channels of each convolution (length ``N``).
        pool_every: ``P``, convolutions between poolings.
        hidden_dims: widths of the hidden fully connected layers (length
            ``M``, may be empty).
        conv_params: ``nn.Conv2d`` keyword arguments; default 3×3 with
            padding 1 (given keys override the default ones).
        activation_type: one of :data:`ACTIVATIONS` ('relu', 'lrelu', ...).
        activation_params: keyword arguments of the activation (e.g.
            ``negative_slope``).
        pooling_type: 'max' or 'avg'.
        pooling_params: pooling keyword arguments; default a 2×2 window
            (stride = window).
        head_map_size: ``(h, w)`` (or one int for both) that the last feature
            map is average-pooled to (``nn.AdaptiveAvgPool2d``) before it is
            flattened, as torchvision's VGG does with 7×7. Networks whose maps
            end at different sizes then feed the same features into the same
            head. None (the default, the original assignment's layout)
            flattens the map as it is.
    """

    def __init__(
        self,
        in_size,
        out_classes: int,
        channels: Sequence[int],
        pool_every: int,
        hidden_dims: Sequence[int],
        conv_params: dict = {},
        activation_type: str = "relu",
        activation_params: dict = {},
        pooling_type: str = "max",
        pooling_params: dict = {},
        head_map_size: int | Sequence[int] | None = None,
    ):
        super().__init__()
        self.in_size = _check_in_size(in_size)
        if not _is_positive_int(out_classes):
            raise ValueError(f"out_classes must be a positive int, got {out_classes!r}")
        self.out_classes = out_classes
        self.channels = _check_positive_ints("channels", channels, allow_empty=False)
        if not _is_positive_int(pool_every):
            raise ValueError(f"pool_every must be a positive int, got {pool_every!r}")
        self.pool_every = pool_every
        self.hidden_dims = _check_positive_ints(
            "hidden_dims", hidden_dims, allow_empty=True
        )
        # Copies: the mutable default arguments are never modified.
        self.conv_params = {**DEFAULT_CONV_PARAMS,
                            **_check_window_params("conv_params", conv_params,
                                                   pooling=False)}
        _activation(activation_type, activation_params)  # fail early on a bad name
        self.activation_type = activation_type
        self.activation_params = dict(activation_params)
        _check_pooling_type(pooling_type)
        self.pooling_type = pooling_type
        self.pooling_params = _check_window_params(
            "pooling_params", {**DEFAULT_POOLING_PARAMS, **pooling_params},
            pooling=True)
        self.head_map_size = _check_map_size(head_map_size)

        self.feature_extractor = self._make_feature_extractor()
        self.feature_shape = self._feature_shape()
        if self.head_map_size is not None:
            self.head_pool = nn.AdaptiveAvgPool2d(self.head_map_size)
        self.classifier = self._make_classifier()

    def _make_activation(self) -> nn.Module:
        return _activation(self.activation_type, self.activation_params)

    def _make_pooling(self) -> nn.Module:
        return POOLINGS[self.pooling_type](**self.pooling_params)

    def _make_feature_extractor(self) -> nn.Sequential:
        """``[(CONV→ACT)×P → POOL]×(N/P)``, then ``(CONV→ACT)×(N mod P)``."""
        layers = []
        in_channels = self.in_size[0]
        for i, out_channels in enumerate(self.channels):
            layers.append(nn.Conv2d(in_channels, out_channels, **self.conv_params))
            layers.append(self._make_activation())
            if (i + 1) % self.pool_every == 0:
                layers.append(self._make_pooling())
            in_channels = out_channels
        return nn.Sequential(*layers)

    def _feature_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` entering the classifier.

        The last map, average-pooled to ``head_map_size``. Computed layer by
        layer with the output-size formula (no dummy forward pass).

        Raises:
            ValueError: naming the layer where the map vanishes.
        """
        c, h, w = feature_map_shape(self.feature_extractor, self.in_size)
        if self.head_map_size is None:
            return c, h, w
        if self.head_map_size[0] > h or self.head_map_size[1] > w:
            raise ValueError(
                f"head_map_size {self.head_map_size} is larger than the last "
                f"feature map ({h}×{w}): average pooling cannot enlarge it"
            )
        return (c, *self.head_map_size)

    def _n_features(self) -> int:
        """Number of features entering the classifier.

        ``C·H·W`` of :attr:`feature_shape`.
        """
        c, h, w = self.feature_shape
        return c * h * w

    def _make_classifier(self) -> nn.Sequential:
        """``(FC→ACT)×M → FC`` on the flattened feature map."""
        layers = []
        in_features = self._n_features()
        for width in self.hidden_dims:
            layers += [nn.Linear(in_features, width), self._make_activation()]
            in_features = width
        layers.append(nn.Linear(in_features, self.out_classes))
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, C, H, W)`` → class scores ``(B, out_classes)``."""
        _check_images(x, type(self).__name__, self.in_size[0], self.in_size[1:])
        features = self.feature_extractor(x)                # (B, C', H', W')
        if self.head_map_size is not None:
            features = self.head_pool(features)             # (B, C', h, w)
        return self.classifier(features.flatten(start_dim=1))  # (B, out_classes)


# --------------------------------------------------------------------------
# Residual blocks
# --------------------------------------------------------------------------

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
        activation_params: dict = {},
        output_activation: str = "relu",
    ):
        super().__init__()
        if not _is_positive_int(in_channels):
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        channels = _check_positive_ints("channels", channels, allow_empty=False)
        kernel_sizes = _check_positive_ints(
            "kernel_sizes", kernel_sizes, allow_empty=False
        )
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
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
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

    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        """'Same' padding with stride 1: the block keeps the spatial size."""
        return h, w

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
        inner_channels = _check_positive_ints(
            "inner_channels", inner_channels, allow_empty=False
        )
        inner_kernel_sizes = _check_positive_ints(
            "inner_kernel_sizes", inner_kernel_sizes, allow_empty=False
        )
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


# --------------------------------------------------------------------------
# The residual classifier
# --------------------------------------------------------------------------

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
        self.batchnorm = batchnorm
        self.dropout = dropout
        self.bottleneck = bottleneck
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


# --------------------------------------------------------------------------
# YourCodeNet: the book's architecture for experiment 2
# --------------------------------------------------------------------------

class ConvBN(nn.Sequential):
    """``Conv(k×k, 'same', no bias) → BatchNorm2d``.

    The convolution has no bias: the batchnorm's shift right after it would
    make one redundant.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size,
                      padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
        )


class BasicUnit(nn.Module):
    """``act(x + body(x))`` with ``body = ConvBN → act → ConvBN`` (or one ConvBN).

    The residual unit of torchvision's ``BasicBlock`` (He et al. 2016); it
    keeps the channels and the spatial size, so the skip is the identity.
    With ``zero_init=True`` the last BatchNorm's scale starts at zero, so
    ``body(x) = 0`` and the unit starts as ``act(x)`` (Goyal et al., 2017):
    a deep stack of units starts shallow and grows into its depth.
    """

    def __init__(
        self, channels: int, n_convs: int, make_activation, zero_init: bool = True
    ):
        super().__init__()
        body = []
        for i in range(n_convs):
            body.append(ConvBN(channels, channels))
            if i < n_convs - 1:
                body.append(make_activation())
        self.body = nn.Sequential(*body)
        self.activation = make_activation()
        if zero_init:
            nn.init.zeros_(self.body[-1][1].weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(x + self.body(x))


class _Stage(nn.Module):
    """One resolution of :class:`YourCodeNet`.

    ``Conv(in → widths[0]) → pool → BN → act``, then the remaining convs as
    :class:`BasicUnit` s of two convs (one if their count is odd).
    """

    def __init__(self, in_channels: int, widths: list[int], pool: nn.Module | None,
                 make_activation, zero_init_residual: bool):
        super().__init__()
        # 1. Transition: change width, then pool before normalising (airbench's
        #    order): every later conv of the stage runs on a 4× smaller map.
        self.transition = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            *([pool] if pool is not None else []),
            nn.BatchNorm2d(widths[0]),
            make_activation(),
        )
        # 2. The other convs in residual units of two (one if the count is
        #    odd); a conv that changes the width gets no skip.
        units, c = [], widths[0]
        rest = widths[1:]
        for i in range(0, len(rest), 2):
            pair = rest[i:i + 2]
            if all(w == c for w in pair):
                units.append(
                    BasicUnit(c, len(pair), make_activation, zero_init_residual)
                )
            else:
                for w in pair:
                    units += [ConvBN(c, w), make_activation()]
                    c = w
        self.units = nn.Sequential(*units)
        self.out_channels = c

    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        """Only the transition's pooling changes the size (the convs are 'same')."""
        for layer in self.transition:
            h, w = _layer_output_hw(layer, h, w)
        return h, w

    def forward(self, x: Tensor) -> Tensor:
        return self.units(self.transition(x))


class YourCodeNet(ConvClassifier):
    """The book's architecture for experiment 2: a small, fast residual network.

    Design (aim: the best CIFAR-10 accuracy per GPU-second at the widths of
    experiment 2, ``K = [32, 64, 128]``, ``L = 3 … 12``; ideas from the fast
    CIFAR-10 training scripts (Jordan 2024, airbench) and ResNets
    (He et al. 2016)):

    1. **Stages.** ``channels`` is cut into stages of ``pool_every`` convs, as
       ``ConvClassifier`` cuts it between poolings; the runner passes
       ``P = L`` so each width ``K`` is one stage (32×32 → 16 → 8 → 4).
       A trailing stage of ``N mod P`` convs has no pooling.
    2. **Pool early.** Each stage starts with a transition conv that changes
       the width, immediately followed by a 2×2 max-pool, then BatchNorm and
       the activation (airbench's order). All other convs of the stage run on
       the pooled map: a quarter of the FLOPs of pooling at the stage's end.
    3. **Residual units with BatchNorm.** The stage's other convs form
       :class:`BasicUnit` s, ``act(x + BN(conv(act(BN(conv(x))))))``, with
       identity skips, so depth ``L = 12`` (36 convs) trains as easily as
       ``L = 3`` (He et al. 2016; Ioffe & Szegedy 2015). Convs have no bias
       (BN follows). The last BN of each unit starts with zero scale, so every
       unit starts as (almost) the identity (``zero_init_residual``).
    4. **Global-average-pool head.** The last map is averaged per channel
       (no large flatten layer: the head's size does not depend on the input
       size) then ``(FC→act)×M → FC`` with ``hidden_dims``, and an optional
       dropout before each FC layer.
    5. **Width multiplier.** ``width`` scales every entry of ``channels``
       (rounded to a multiple of 8, which tensor cores like); 1 keeps the
       widths of experiment 2.

    Same constructor as :class:`ConvClassifier`, minus ``conv_params`` (3×3
    convs throughout), plus ``dropout``, ``width`` and ``zero_init_residual``.
    The default activation is GELU, as in airbench.
    """

    def __init__(
        self,
        in_size,
        out_classes: int,
        channels: Sequence[int],
        pool_every: int,
        hidden_dims: Sequence[int],
        activation_type: str = "gelu",
        activation_params: dict = {},
        pooling_type: str = "max",
        pooling_params: dict = {},
        *,
        dropout: float = 0.0,
        width: float = 1.0,
        zero_init_residual: bool = True,
        conv_params: dict = {},
    ):
        if conv_params:
            raise ValueError(
                f"YourCodeNet uses 3×3 convolutions; conv_params is not "
                f"supported (got {conv_params!r})"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if not (isinstance(width, (int, float)) and width > 0):
            raise ValueError(f"width must be a positive number, got {width!r}")
        self.dropout = dropout
        self.width = width
        self.zero_init_residual = zero_init_residual
        channels = _check_positive_ints("channels", channels, allow_empty=False)
        if width != 1.0:
            channels = [max(8, 8 * round(c * width / 8)) for c in channels]
        super().__init__(in_size, out_classes, channels, pool_every, hidden_dims,
                         activation_type=activation_type,
                         activation_params=activation_params,
                         pooling_type=pooling_type, pooling_params=pooling_params)

    def _make_feature_extractor(self) -> nn.Sequential:
        """One :class:`_Stage` per ``pool_every`` convs.

        The trailing rest forms a stage without a pool.
        """
        stages = []
        in_channels = self.in_size[0]
        P = self.pool_every
        for start in range(0, len(self.channels), P):
            widths = self.channels[start:start + P]
            pool = self._make_pooling() if len(widths) == P else None
            stages.append(_Stage(in_channels, widths, pool, self._make_activation,
                                 self.zero_init_residual))
            in_channels = stages[-1].out_channels
        return nn.Sequential(*stages)

    def _feature_shape(self) -> tuple[int, int, int]:
        # Check that no map vanishes; the global average pool then leaves C features.
        c, _, _ = feature_map_shape(self.feature_extractor, self.in_size)
        return c, 1, 1

    def _make_classifier(self) -> nn.Sequential:
        """Global average pool → flatten, then ``(Dropout→FC→act)×M → Dropout→FC``."""
        layers = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]  # (B, C, H, W) -> (B, C)
        in_features = self._n_features()
        for i, width in enumerate([*self.hidden_dims, self.out_classes]):
            if self.dropout > 0:
                layers.append(nn.Dropout(self.dropout))
            layers.append(nn.Linear(in_features, width))
            if i < len(self.hidden_dims):
                layers.append(self._make_activation())
            in_features = width
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, C, H, W)`` → class scores ``(B, out_classes)``."""
        _check_images(x, type(self).__name__, self.in_size[0], self.in_size[1:])
        return self.classifier(self.feature_extractor(x))
