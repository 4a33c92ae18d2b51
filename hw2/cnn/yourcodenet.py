"""YourCodeNet, the book's architecture for experiment 2, and its parts.

A small, fast residual network: one stage per width, each pooling right after
its first convolution, residual units with BatchNorm whose last BatchNorm
starts at zero, and a global-average-pool head (ideas from the fast CIFAR-10
training scripts, Jordan 2024, and from ResNets, He et al. 2016).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hw2 import _checks
from hw2.cnn.plain import ConvClassifier, _check_images
from hw2.cnn.shapes import feature_map_shape, layer_output_hw

__all__ = ["ConvBN", "BasicUnit", "YourCodeNet"]


class ConvBN(nn.Module):
    """``Conv(k×k, 'same', no bias) → BatchNorm2d``, as ``conv`` and ``bn``.

    The convolution has no bias: the batchnorm's shift right after it would
    make one redundant.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                              padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.out_channels = out_channels

    # The Block protocol (hw2.cnn.shapes).
    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        return h, w

    def receptive_path(self) -> list[nn.Module]:
        return [self.conv]

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class BasicUnit(nn.Module):
    """``act(x + body(x))`` with ``body = ConvBN → act → ConvBN`` (or one ConvBN).

    The residual unit of torchvision's ``BasicBlock`` (He et al. 2016); it
    keeps the channels and the spatial size, so the skip is the identity.
    With ``zero_init=True`` the scale of the unit's last BatchNorm
    (:attr:`last_bn`) starts at zero, so ``body(x) = 0`` and the unit starts
    as ``act(x)`` (Goyal et al., 2017): a deep stack of units starts shallow
    and grows into its depth.
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
        self.out_channels = channels
        if zero_init:
            nn.init.zeros_(self.last_bn.weight)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm that ends the body (zero-initialised with ``zero_init``)."""
        return self.body[-1].bn

    # The Block protocol (hw2.cnn.shapes).
    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        return h, w

    def receptive_path(self) -> nn.Sequential:
        return self.body

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

    # The Block protocol (hw2.cnn.shapes): out_channels is set in __init__.
    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        """Only the transition's pooling changes the size (the convs are 'same')."""
        for layer in self.transition:
            h, w = layer_output_hw(layer, h, w)
        return h, w

    def receptive_path(self) -> list[nn.Module]:
        return [*self.transition, *self.units]

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

    6. **For the full-data speedrun** (all off by default): ``whiten=k``
       puts a frozen ``k``×``k`` patch-whitening convolution first, computed
       from training images by :meth:`init_from_data` (the runner calls it once
       the data is loaded), as airbench does; ``tta=1`` averages the scores of
       each image and its mirror image at evaluation, ``tta=2`` also those of
       the image shifted by one pixel up-left and down-right;
       ``global_pool='max'`` takes each channel's maximum instead of its mean;
       ``logit_scale`` multiplies the scores (airbench: 1/9).

    Same constructor as :class:`ConvClassifier`, minus ``conv_params`` (3×3
    convs throughout), plus ``dropout``, ``width``, ``zero_init_residual`` and
    the speedrun's keywords. The default activation is GELU, as in airbench.
    """

    def __init__(
        self,
        in_size,
        out_classes: int,
        channels: Sequence[int],
        pool_every: int,
        hidden_dims: Sequence[int],
        activation_type: str = "gelu",
        activation_params: dict | None = None,
        pooling_type: str = "max",
        pooling_params: dict | None = None,
        *,
        dropout: float = 0.0,
        width: float = 1.0,
        zero_init_residual: bool = True,
        conv_params: dict | None = None,
        whiten: int = 0,
        tta: int = 0,
        global_pool: str = "avg",
        logit_scale: float = 1.0,
    ):
        if conv_params:
            raise ValueError(
                f"YourCodeNet uses 3×3 convolutions; conv_params is not "
                f"supported (got {conv_params!r})"
            )
        dropout = _checks.real_in("dropout", dropout, 0.0, 1.0)
        _checks.positive_real("width", width)
        self.dropout = dropout
        self.width = width
        self.zero_init_residual = _checks.flag("zero_init_residual", zero_init_residual)
        self.whiten = _checks.non_negative_int("whiten", whiten)
        self.tta = _checks.one_of("tta", tta, (0, 1, 2))
        self.global_pool = _checks.one_of("global_pool", global_pool, ("avg", "max"))
        self.logit_scale = _checks.positive_real("logit_scale", logit_scale)
        channels = _checks.int_list("channels", channels)
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
        if self.whiten:
            # 2·C·k² filters: every whitened patch direction, and its negative.
            out = 2 * in_channels * self.whiten ** 2
            conv = nn.Conv2d(in_channels, out, self.whiten, padding=0, bias=True)
            conv.weight.requires_grad_(False)  # set by init_from_data, then frozen
            stages.append(nn.Sequential(conv, self._make_activation()))
            in_channels = out
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
        pool = nn.AdaptiveMaxPool2d(1) if self.global_pool == "max" \
            else nn.AdaptiveAvgPool2d(1)
        layers = [pool, nn.Flatten()]  # (B, C, H, W) -> (B, C)
        in_features = self._n_features()
        for i, width in enumerate([*self.hidden_dims, self.out_classes]):
            if self.dropout > 0:
                layers.append(nn.Dropout(self.dropout))
            layers.append(nn.Linear(in_features, width))
            if i < len(self.hidden_dims):
                layers.append(self._make_activation())
            in_features = width
        return nn.Sequential(*layers)

    @torch.no_grad()
    def init_from_data(self, images: Tensor, eps: float = 5e-4) -> None:
        """Set the whitening convolution from training images (normalised, float).

        The covariance of every ``k``×``k`` patch of ``images`` is
        eigendecomposed; each filter projects a patch onto one eigenvector
        scaled by ``1/√(λ + eps)``, and its negative follows (a GELU after it
        keeps both signs). Does nothing without ``whiten``.
        """
        if not self.whiten:
            return
        conv = self.feature_extractor[0][0]
        k = self.whiten
        x = images.float()
        c = x.shape[1]
        patches = x.unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5)
        patches = patches.reshape(-1, c * k * k).double()  # (patches, C·k·k)
        covariance = patches.T @ patches / len(patches)
        values, vectors = torch.linalg.eigh(covariance)
        values, vectors = values.flip(0), vectors.flip(1)  # largest first
        filters = (vectors.T / torch.sqrt(values + eps)[:, None]).reshape(-1, c, k, k)
        conv.weight.copy_(torch.cat([filters, -filters]).to(conv.weight))

    def _scores(self, x: Tensor) -> Tensor:
        return self.classifier(self.feature_extractor(x)) * self.logit_scale

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, C, H, W)`` → class scores ``(B, out_classes)``.

        In evaluation mode with ``tta``, the scores averaged over the image's
        views: itself and its mirror image (and, with ``tta=2``, both shifted by
        one pixel up-left and down-right, reflecting at the border).
        """
        _check_images(x, type(self).__name__, self.in_size[0], self.in_size[1:])
        if self.training or not self.tta:
            return self._scores(x)
        views = [x, x.flip(-1)]
        if self.tta == 2:
            padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
            h, w = x.shape[2:]
            for shifted in (padded[..., :h, :w], padded[..., 2:, 2:]):
                views += [shifted, shifted.flip(-1)]
        scores = self._scores(torch.cat(views))
        return scores.view(len(views), len(x), -1).mean(0)
