"""The plain convolutional classifier, and the argument checks every model shares.

:class:`ConvClassifier` is ``[(CONV→ACT)×P → POOL]×(N/P) → (FC→ACT)×M → FC``:
the network of the original assignment, and the base of the residual
classifier and of YourCodeNet, which replace its feature extractor.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from hw2 import _checks
from hw2.cnn.shapes import as_pair, feature_map_shape

__all__ = ["ACTIVATIONS", "POOLINGS", "DEFAULT_CONV_PARAMS", "DEFAULT_POOLING_PARAMS",
           "ConvClassifier"]

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

def _activation(activation_type: str, activation_params: dict | None) -> nn.Module:
    _checks.one_of("activation_type", activation_type, tuple(ACTIVATIONS))
    return ACTIVATIONS[activation_type](**(activation_params or {}))


def _check_map_size(size) -> tuple[int, int] | None:
    """None, or a positive int / pair of positive ints as ``(h, w)``."""
    if size is None:
        return None
    pair = list(size) if isinstance(size, (tuple, list)) else [size, size]
    if len(pair) != 2 or not all(_checks.is_int(v) and v > 0 for v in pair):
        _checks.fail("head_map_size", "a positive int or (h, w)", size)
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
        _checks.fail(name, "a dict of keyword arguments", params)

    def pair_of(key, minimum):
        value = params[key]
        items = list(value) if isinstance(value, (tuple, list)) else [value]
        if len(items) not in (1, 2) or not all(
                _checks.is_int(v) and v >= minimum for v in items):
            what = "positive" if minimum else "non-negative"
            _checks.fail(f"{name}[{key!r}]", f"a {what} int or a pair of them", value)
        return items * (2 // len(items))

    for key in _POSITIVE_WINDOW_KEYS:
        if key in params and params[key] is not None:
            pair_of(key, 1)
    if "padding" in params and not (not pooling and params["padding"] in
                                    ("same", "valid")):
        padding = pair_of("padding", 0)
        if pooling:
            kernel = as_pair(params.get("kernel_size", 2))
            if any(p > k // 2 for p, k in zip(padding, kernel)):
                _checks.fail(f"{name}['padding']", f"at most half the window "
                             f"({params.get('kernel_size', 2)!r})", params["padding"])
    for key in _FLAG_KEYS:
        if key in params:
            _checks.flag(f"{name}[{key!r}]", params[key])
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
        conv_params: dict | None = None,
        activation_type: str = "relu",
        activation_params: dict | None = None,
        pooling_type: str = "max",
        pooling_params: dict | None = None,
        head_map_size: int | Sequence[int] | None = None,
    ):
        super().__init__()
        self.in_size = _checks.int_tuple("in_size", in_size, 3,
                                         "(channels, height, width)")
        self.out_classes = _checks.positive_int("out_classes", out_classes)
        self.channels = _checks.int_list("channels", channels)
        self.pool_every = _checks.positive_int("pool_every", pool_every)
        self.hidden_dims = _checks.int_list("hidden_dims", hidden_dims,
                                            allow_empty=True)
        # Copies: a caller's dicts are never modified.
        self.conv_params = {**DEFAULT_CONV_PARAMS,
                            **_check_window_params("conv_params", conv_params or {},
                                                   pooling=False)}
        _activation(activation_type, activation_params)  # fail early on a bad name
        self.activation_type = activation_type
        self.activation_params = dict(activation_params or {})
        self.pooling_type = _checks.one_of("pooling_type", pooling_type,
                                           tuple(POOLINGS))
        self.pooling_params = _check_window_params(
            "pooling_params", {**DEFAULT_POOLING_PARAMS, **(pooling_params or {})},
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
