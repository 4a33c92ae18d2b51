"""Tests of hw2.cnn: layer layout, feature-map sizes, residual blocks, errors."""
from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from hw2.cnn import (
    ACTIVATIONS,
    POOLINGS,
    BasicUnit,
    ConvClassifier,
    ResidualBlock,
    ResidualBottleneckBlock,
    ResNetClassifier,
    YourCodeNet,
    conv_output_size,
    feature_map_shape,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_params_closed_form(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    """A k×k convolution c_in → c_out: c_out filters of c_in·k² weights, plus c_out biases."""
    return c_out * c_in * k * k + (c_out if bias else 0)


# --------------------------------------------------------------------------
# The original assignment's example calls (SPEC §3.6a)
# --------------------------------------------------------------------------

def spec_conv_classifier():
    return ConvClassifier(
        in_size=(3, 100, 100), out_classes=10, channels=[32] * 4, pool_every=2,
        hidden_dims=[100] * 2, conv_params=dict(kernel_size=5, stride=2, padding=3),
        activation_type='lrelu', activation_params=dict(negative_slope=0.05),
        pooling_type='avg', pooling_params=dict(kernel_size=3))


def test_spec_conv_classifier_runs():
    model = spec_conv_classifier()
    out = model(torch.randn(2, 3, 100, 100))
    assert out.shape == (2, 10)
    convs = [m for m in model.feature_extractor if isinstance(m, nn.Conv2d)]
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) and c.padding == (3, 3) for c in convs)
    pools = [m for m in model.feature_extractor if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == 2 and all(p.kernel_size == 3 for p in pools)
    acts = [m for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 4 + 2 and all(a.negative_slope == 0.05 for a in acts)
    # 100 -conv-> 51 -conv-> 27 -pool-> 9 -conv-> 6 -conv-> 4 -pool-> 1: 32·1·1 features
    assert model._n_features() == 32 * 1 * 1
    assert model.classifier[0].in_features == 32


def test_spec_residual_block_runs():
    block = ResidualBlock(in_channels=3, channels=[6, 4] * 2, kernel_sizes=[3, 5] * 2, batchnorm=True, dropout=0.2)
    out = block(torch.randn(2, 3, 17, 23))
    assert out.shape == (2, 4, 17, 23)


def test_spec_bottleneck_block_runs():
    block = ResidualBottleneckBlock(in_out_channels=256, inner_channels=[64, 32, 64],
                                   inner_kernel_sizes=[3, 5, 3], batchnorm=False, dropout=0.1,
                                   activation_type='lrelu')
    out = block(torch.randn(2, 256, 9, 7))
    assert out.shape == (2, 256, 9, 7)


# --------------------------------------------------------------------------
# ConvClassifier layout and sizes
# --------------------------------------------------------------------------

def expected_layout(n_convs: int, pool_every: int, n_hidden: int):
    """``[(CONV→ACT)×P → POOL]×(N/P)``, the rest without a pool; ``(FC→ACT)×M → FC``."""
    features = []
    for i in range(n_convs):
        features += [nn.Conv2d, nn.ReLU]
        if (i + 1) % pool_every == 0:
            features.append(nn.MaxPool2d)
    classifier = [nn.Linear, nn.ReLU] * n_hidden + [nn.Linear]
    return features, classifier


@pytest.mark.parametrize("n_convs, pool_every, hidden", [
    (1, 1, []), (4, 2, [100, 50]), (5, 2, [10]), (3, 4, []), (6, 3, [20, 20, 20]),
])
def test_conv_classifier_layout(n_convs, pool_every, hidden):
    model = ConvClassifier((3, 32, 32), 7, [8] * n_convs, pool_every, hidden)
    features, classifier = expected_layout(n_convs, pool_every, len(hidden))
    assert [type(m) for m in model.feature_extractor] == features
    assert [type(m) for m in model.classifier] == classifier
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 7)


def test_conv_classifier_defaults_and_overrides():
    model = ConvClassifier((3, 32, 32), 10, [16, 32], 1, [])
    conv, pool = model.feature_extractor[0], model.feature_extractor[2]
    assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.stride == (1, 1)
    assert isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 2 and pool.stride == 2
    model = ConvClassifier((3, 32, 32), 10, [16], 1, [], conv_params=dict(kernel_size=5),
                           pooling_params=dict(kernel_size=3, stride=1))
    conv, pool = model.feature_extractor[0], model.feature_extractor[2]
    assert conv.kernel_size == (5, 5) and conv.padding == (1, 1)  # padding default kept
    assert pool.kernel_size == 3 and pool.stride == 1


def test_default_arguments_not_mutated():
    ConvClassifier((3, 32, 32), 10, [16], 1, [], conv_params=dict(kernel_size=5))
    model = ConvClassifier((3, 32, 32), 10, [16], 1, [])
    assert model.feature_extractor[0].kernel_size == (3, 3)


@pytest.mark.parametrize("size, k, s, p, d", [
    (32, 3, 1, 1, 1), (32, 5, 2, 3, 1), (100, 5, 2, 3, 1), (31, 4, 3, 0, 1), (17, 3, 2, 2, 2),
    (7, 7, 1, 0, 1), (9, 3, 3, 1, 3), (64, 1, 4, 0, 1),
])
def test_conv_output_size_matches_torch(size, k, s, p, d):
    conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    assert conv(torch.zeros(1, 1, size, size)).shape[-1] == conv_output_size(size, k, s, p, d)


@pytest.mark.parametrize("size, k, s, p", [(5, 2, 2, 0), (6, 3, 2, 1), (7, 3, 2, 1), (33, 2, 2, 0), (10, 3, 3, 1)])
def test_pool_output_size_matches_torch_ceil_mode(size, k, s, p):
    for ceil_mode in (False, True):
        pool = nn.MaxPool2d(k, s, p, ceil_mode=ceil_mode)
        expected = pool(torch.zeros(1, 1, size, size)).shape[-1]
        assert conv_output_size(size, k, s, p, 1, ceil_mode) == expected


@pytest.mark.parametrize("in_size, conv_params, pooling_type, pooling_params, pool_every", [
    ((3, 100, 100), dict(kernel_size=5, stride=2, padding=3), 'avg', dict(kernel_size=3), 2),
    ((3, 32, 48), {}, 'max', {}, 1),                                  # non-square
    ((1, 28, 40), dict(kernel_size=3, dilation=2, padding=1), 'max', dict(kernel_size=3, stride=2), 2),
    ((3, 33, 21), dict(kernel_size=5, stride=1, padding='same'), 'avg', dict(kernel_size=2, ceil_mode=True), 1),
    ((2, 30, 19), dict(kernel_size=(3, 5), padding=(0, 2)), 'max', dict(kernel_size=(2, 3)), 2),
    ((3, 24, 24), dict(kernel_size=3, padding='valid'), 'avg', dict(kernel_size=2, padding=1), 3),
])
def test_n_features_matches_forward(in_size, conv_params, pooling_type, pooling_params, pool_every):
    model = ConvClassifier(in_size, 5, [4, 6, 8], pool_every, [12], conv_params=conv_params,
                           pooling_type=pooling_type, pooling_params=pooling_params)
    features = model.feature_extractor(torch.randn(2, *in_size))
    assert features[0].numel() == model._n_features()
    assert feature_map_shape(model.feature_extractor, in_size) == tuple(features.shape[1:])
    assert model(torch.randn(2, *in_size)).shape == (2, 5)


def test_vanishing_feature_map_names_the_layer():
    # 32 → 16 → 8 → 4 → 2 → 1 → 0 at the sixth pooling, feature_extractor[17].
    with pytest.raises(ValueError, match=r"layer 17 \(MaxPool2d.*1×1 -> output 0×0"):
        ConvClassifier((3, 32, 32), 10, [8] * 6, 1, [])
    # An unpadded 7×7 conv: 11 → 5, then ⌊(5 − 7)/1⌋ + 1 < 1 at feature_extractor[2].
    with pytest.raises(ValueError, match=r"layer 2 \(Conv2d.*5×5 -> output 0×0"):
        ConvClassifier((3, 11, 11), 10, [8, 8], 5, [], conv_params=dict(kernel_size=7, padding=0))
    # Non-square: only the height vanishes (4 → 2 → 1 → 0 at the third pooling).(4 → 2 → 1 → 0 at the third pooling).
    with pytest.raises(ValueError, match=r"layer 8 \(MaxPool2d.*1×8 -> output 0×4"):
        ConvClassifier((3, 4, 32), 10, [8] * 3, 1, [])


def test_vanishing_is_detected_before_any_forward(monkeypatch):
    def no_forward(*args, **kwargs):
        raise AssertionError("the size check must not run the network")
    monkeypatch.setattr(nn.Conv2d, "forward", no_forward)
    model = ConvClassifier((3, 32, 32), 10, [8] * 4, 1, [])
    assert model._n_features() == 8 * 2 * 2


def test_unknown_activation_and_pooling_list_supported():
    with pytest.raises(ValueError, match="activation_type must be one of 'relu', 'lrelu'.*"
                                         "got 'swishy'"):
        ConvClassifier((3, 32, 32), 10, [8], 1, [], activation_type='swishy')
    with pytest.raises(ValueError, match="pooling_type must be one of 'max', 'avg', "
                                         "got 'median'"):
        ConvClassifier((3, 32, 32), 10, [8], 1, [], pooling_type='median')
    with pytest.raises(ValueError, match="one of .*'tanh'.*'sigmoid'"):
        ResidualBlock(3, [3], [3], activation_type='softplus')
    assert {'relu', 'lrelu', 'tanh', 'sigmoid'} <= set(ACTIVATIONS) and set(POOLINGS) == {'max', 'avg'}


@pytest.mark.parametrize("activation, cls", [('relu', nn.ReLU), ('lrelu', nn.LeakyReLU), ('tanh', nn.Tanh),
                                             ('sigmoid', nn.Sigmoid), ('gelu', nn.GELU)])
def test_every_activation_builds(activation, cls):
    model = ConvClassifier((3, 16, 16), 4, [4, 4], 2, [8], activation_type=activation)
    assert sum(isinstance(m, cls) for m in model.modules()) == 3
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_size=(3, 32)), "in_size"),
    (dict(in_size=(3, 0, 32)), "in_size"),
    (dict(in_size=(3, 32.0, 32)), "in_size"),
    (dict(in_size="abc"), "in_size"),
    (dict(channels=[]), "channels must not be empty"),
    (dict(channels=[8, -1]), r"channels must be a list of positive integers; bad entries: \[-1\]"),
    (dict(channels=8), "channels must be a list"),
    (dict(pool_every=0), "pool_every"),
    (dict(pool_every=1.5), "pool_every"),
    (dict(hidden_dims=100), "hidden_dims must be a list"),
    (dict(hidden_dims=[100, 0]), "hidden_dims must be a list of positive integers; bad entries: \\[0\\]"),
    (dict(out_classes=0), "out_classes"),
])
def test_conv_classifier_rejects_bad_arguments(kwargs, match):
    args = dict(in_size=(3, 32, 32), out_classes=10, channels=[8], pool_every=1, hidden_dims=[])
    with pytest.raises(ValueError, match=match):
        ConvClassifier(**{**args, **kwargs})


def test_in_size_accepts_list_and_torch_size():
    for in_size in ([3, 16, 16], torch.Size([3, 16, 16])):
        assert ConvClassifier(in_size, 2, [4], 1, []).in_size == (3, 16, 16)


# --------------------------------------------------------------------------
# Residual blocks
# --------------------------------------------------------------------------

def test_residual_block_structure_between_convs():
    block = ResidualBlock(3, [6, 4, 5], [3, 5, 1], batchnorm=True, dropout=0.2, activation_type='lrelu')
    types = [type(m) for m in block.main_path]
    step = [nn.Dropout2d, nn.BatchNorm2d, nn.LeakyReLU]
    assert types == [nn.Conv2d, *step, nn.Conv2d, *step, nn.Conv2d]  # nothing after the last conv
    convs = [m for m in block.main_path if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [3, 5, 1]
    assert [c.padding[0] for c in convs] == [1, 2, 0]              # 'same' padding (k − 1)/2
    assert all(c.bias is not None for c in convs)                   # main path keeps biases
    plain = ResidualBlock(3, [6, 4], [3, 3])
    assert [type(m) for m in plain.main_path] == [nn.Conv2d, nn.ReLU, nn.Conv2d]


def test_residual_block_shortcut_identity_or_projection():
    same = ResidualBlock(8, [4, 8], [3, 3])
    assert len(same.shortcut_path) == 0 or isinstance(same.shortcut_path, nn.Identity)
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(same.shortcut_path(x), x)
    changed = ResidualBlock(8, [4, 6], [3, 3])
    (proj,) = [m for m in changed.shortcut_path.modules() if isinstance(m, nn.Conv2d)]
    assert proj.kernel_size == (1, 1) and proj.bias is None
    assert (proj.in_channels, proj.out_channels) == (8, 6)
    assert n_params(changed.shortcut_path) == 8 * 6


@pytest.mark.parametrize("activation, act", [('relu', torch.relu),
                                             ('lrelu', lambda x: nn.functional.leaky_relu(x, 0.01)),
                                             ('tanh', torch.tanh)])
def test_residual_block_with_zero_main_path_returns_relu_or_act_x(activation, act):
    """The course's block ends in ReLU whatever activation_type is; 'main' applies it there too."""
    x = torch.randn(2, 5, 6, 6)
    for output_activation, expected in (("relu", torch.relu(x)), ("main", act(x))):
        block = ResidualBlock(5, [7, 3, 5], [3, 5, 3], activation_type=activation,
                              output_activation=output_activation)
        with torch.no_grad():
            for conv in block.main_path:
                if isinstance(conv, nn.Conv2d):
                    conv.weight.zero_()
                    conv.bias.zero_()
        torch.testing.assert_close(block(x), expected)


def test_residual_block_rejects_unknown_output_activation():
    with pytest.raises(ValueError, match="output_activation must be 'relu'.*or 'main'.*'gelu'"):
        ResidualBlock(5, [5], [3], output_activation="gelu")


def test_residual_block_matches_hand_computation():
    block = ResidualBlock(2, [3, 4], [3, 1], activation_type='relu')
    x = torch.randn(1, 2, 4, 4)
    conv1, conv2 = block.main_path[0], block.main_path[2]
    proj = block.shortcut_path[0]
    expected = torch.relu(conv2(torch.relu(conv1(x))) + proj(x))
    torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize("kernel_sizes", [[2], [3, 4], [5, 3, 6]])
def test_even_kernel_sizes_rejected(kernel_sizes):
    with pytest.raises(ValueError, match=r"kernel sizes must be odd.*even kernel sizes"):
        ResidualBlock(3, [4] * len(kernel_sizes), kernel_sizes)
    with pytest.raises(ValueError, match="must be odd"):
        ResidualBottleneckBlock(16, [4] * len(kernel_sizes), kernel_sizes)


def test_residual_block_rejects_bad_arguments():
    with pytest.raises(ValueError, match="same length"):
        ResidualBlock(3, [4, 4], [3])
    with pytest.raises(ValueError, match="channels must not be empty"):
        ResidualBlock(3, [], [])
    with pytest.raises(ValueError, match="dropout"):
        ResidualBlock(3, [4], [3], dropout=1.0)
    with pytest.raises(ValueError, match="in_channels"):
        ResidualBlock(0, [4], [3])
    with pytest.raises(ValueError, match="inner_channels must not be empty"):
        ResidualBottleneckBlock(16, [], [])


def bottleneck_params_closed_form(c: int, inner: list[int], kernels: list[int], batchnorm: bool) -> int:
    """Parameters of ResidualBottleneckBlock(c, inner, kernels).

    Convolutions (weights c_in·c_out·k² plus c_out biases each):
      down 1×1: c → inner[0];  inner[0] → inner[0] (k_1);  inner[j−1] → inner[j] (k_j), j ≥ 2;
      up 1×1: inner[-1] → c.
    BatchNorm (γ and β) after every conv but the last: 2·(inner[0] + Σ_j inner[j]).
    Identity shortcut: 0.
    """
    total = c * inner[0] * 1 + inner[0]
    prev = inner[0]
    for width, k in zip(inner, kernels):
        total += prev * width * k * k + width
        prev = width
    total += prev * c * 1 + c
    if batchnorm:
        total += 2 * (inner[0] + sum(inner))
    return total


@pytest.mark.parametrize("c, inner, kernels, batchnorm", [
    (256, [64, 32, 64], [3, 5, 3], False),
    (256, [64, 32, 64], [3, 5, 3], True),
    (256, [64], [3], False),
    (32, [8, 16], [5, 1], True),
])
def test_bottleneck_parameter_count_closed_form(c, inner, kernels, batchnorm):
    block = ResidualBottleneckBlock(c, inner, kernels, batchnorm=batchnorm)
    assert n_params(block) == bottleneck_params_closed_form(c, inner, kernels, batchnorm)
    convs = [m for m in block.main_path if isinstance(m, nn.Conv2d)]
    assert [m.kernel_size[0] for m in convs] == [1, *kernels, 1]
    assert [m.out_channels for m in convs] == [inner[0], *inner, c]
    assert len(block.shortcut_path) == 0  # identity


def test_bottleneck_vs_regular_block_parameter_counts():
    # Question 1 of Part 3: two 3×3 convs on 256 channels vs 256→64→64→256.
    regular = ResidualBlock(256, [256, 256], [3, 3])
    bottleneck = ResidualBottleneckBlock(256, [64], [3])
    assert n_params(regular) == 2 * conv_params_closed_form(256, 256, 3) == 1_180_160
    assert n_params(bottleneck) == (conv_params_closed_form(256, 64, 1) + conv_params_closed_form(64, 64, 3)
                                    + conv_params_closed_form(64, 256, 1)) == 70_016


# --------------------------------------------------------------------------
# ResNetClassifier
# --------------------------------------------------------------------------

def residual_blocks(model):
    return [m for m in model.feature_extractor if isinstance(m, ResidualBlock)]


def grid_runs(name):
    """The runs of an experiment of hw2.experiments.EXPERIMENTS, as pytest params
    (ids like ``L8_K32``); pool_every is the runner's (auto_pool_every)."""
    from hw2.experiments import EXPERIMENTS

    return [pytest.param(cfg, id=f"L{cfg.layers_per_block}_K{'-'.join(map(str, cfg.filters_per_layer))}")
            for cfg in EXPERIMENTS[name].runs()]


@pytest.mark.parametrize("cfg", grid_runs("exp1_4"))
def test_resnet_exp1_4_grid_forward(cfg):
    """Experiment 1.4 (K=[32] with L=8,16,32; K=[64,128,256] with L=2,4,8), as the runner builds it."""
    from hw2.experiments import build_model

    channels, pool_every = cfg.channels, cfg.resolved_pool_every
    model = build_model(cfg)
    assert isinstance(model, ResNetClassifier)
    blocks = residual_blocks(model)
    assert len(blocks) == math.ceil(len(channels) / pool_every)
    n_pools = sum(isinstance(m, nn.MaxPool2d) for m in model.feature_extractor)
    assert n_pools == len(channels) // pool_every
    n_convs = sum(isinstance(m, nn.Conv2d) for b in blocks for m in b.main_path)
    assert n_convs == len(channels)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


def test_resnet_layout_and_remainder_group():
    model = ResNetClassifier((3, 32, 32), 10, [16, 16, 32, 32, 64], 2, [50], pooling_type='avg')
    types = [type(m) for m in model.feature_extractor]
    assert types == [ResidualBlock, nn.AvgPool2d, ResidualBlock, nn.AvgPool2d, ResidualBlock]
    blocks = residual_blocks(model)
    assert [[m.out_channels for m in b.main_path if isinstance(m, nn.Conv2d)] for b in blocks] == [[16, 16], [32, 32], [64]]
    assert all(m.kernel_size == (3, 3) for b in blocks for m in b.main_path if isinstance(m, nn.Conv2d))
    assert model._n_features() == 64 * 8 * 8
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnet_non_square_and_vanishing():
    model = ResNetClassifier((3, 20, 36), 4, [8] * 4, 2, [])
    assert model(torch.randn(2, 3, 20, 36)).shape == (2, 4)
    with pytest.raises(ValueError, match=r"layer 11 \(MaxPool2d"):
        ResNetClassifier((3, 32, 32), 10, [8] * 6, 1, [])


def test_resnet_bottleneck_rule():
    # group [64, 64, 256] after 256 input channels: the ResNet-50 bottleneck.
    channels = [256, 256, 256] + [64, 64, 256] + [64, 32, 256] + [128, 128, 128]
    model = ResNetClassifier((3, 16, 16), 10, channels, 3, [], bottleneck=True)
    kinds = [type(b) for b in residual_blocks(model)]
    # [256]*3 after 3 channels: in ≠ out → regular; [64, 64, 256]: bottleneck;
    # [64, 32, 256]: g[0] ≠ g[1] → regular; [128]*3 after 256: in ≠ out → regular.
    assert kinds == [ResidualBlock, ResidualBottleneckBlock, ResidualBlock, ResidualBlock]
    bott = residual_blocks(model)[1]
    convs = [m for m in bott.main_path if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [(64, 1), (64, 3), (256, 1)]
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    plain = ResNetClassifier((3, 16, 16), 10, channels, 3, [], bottleneck=False)
    assert all(type(b) is ResidualBlock for b in residual_blocks(plain))


def test_resnet_rejects_conv_params():
    with pytest.raises(ValueError, match="conv_params"):
        ResNetClassifier((3, 32, 32), 10, [8], 1, [], conv_params=dict(kernel_size=5))


# --------------------------------------------------------------------------
# YourCodeNet
# --------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", grid_runs("exp2"))
def test_your_code_net_exp2_grid_forward(cfg):
    """Experiment 2 (K=[32, 64, 128] with L=3,6,9,12), as the runner builds it."""
    from hw2.experiments import build_model

    channels = cfg.channels
    model = build_model(cfg)
    assert isinstance(model, YourCodeNet)
    n_convs = sum(isinstance(m, nn.Conv2d) for m in model.feature_extractor.modules())
    assert n_convs == len(channels)
    assert feature_map_shape(model.feature_extractor, (3, 32, 32)) == (128, 4, 4)
    x = torch.randn(4, 3, 32, 32)
    assert model(x).shape == (4, 10)
    model.eval()
    assert model(x).shape == (4, 10)


def test_your_code_net_units_start_as_activation():
    model = YourCodeNet((3, 32, 32), 10, [16] * 5, 5, [])
    units = [m for m in model.modules() if isinstance(m, BasicUnit)]
    assert len(units) == 2
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(units[0](x), nn.functional.gelu(x))


def test_your_code_net_options_and_errors():
    model = YourCodeNet((3, 24, 40), 5, [32, 32, 64, 64], 2, [], width=1.5, dropout=0.2,
                        activation_type='relu')
    assert feature_map_shape(model.feature_extractor, (3, 24, 40)) == (96, 6, 10)
    assert model(torch.randn(2, 3, 24, 40)).shape == (2, 5)
    with pytest.raises(ValueError, match=r"layer 5 \(_Stage"):
        YourCodeNet((3, 32, 32), 10, [8] * 6, 1, [])
    with pytest.raises(ValueError, match="conv_params"):
        YourCodeNet((3, 32, 32), 10, [8], 1, [], conv_params=dict(kernel_size=5))
    with pytest.raises(ValueError, match="activation_type must be one of"):
        YourCodeNet((3, 32, 32), 10, [8], 1, [], activation_type='nope')
    # A width scales the channels: a positive number, and a bool is not one.
    for width in (True, 0, -1.0, float("inf"), float("nan"), "2"):
        with pytest.raises(ValueError, match=f"width must be a positive number, got "
                                             f"{re.escape(repr(width))}"):
            YourCodeNet((3, 32, 32), 10, [8], 1, [], width=width)


# --------------------------------------------------------------------------
# Training: a ConvClassifier memorises a tiny data set with TorchTrainer
# --------------------------------------------------------------------------

def test_torch_trainer_overfits_tiny_set():
    training = pytest.importorskip("hw2.training")
    x = torch.randn(20, 3, 32, 32)
    y = torch.randint(0, 10, (20,))
    model = ConvClassifier((3, 32, 32), 10, [8, 16], 1, [32])
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    trainer = training.TorchTrainer(model, nn.CrossEntropyLoss(), optimizer, device=torch.device('cpu'))
    batches = [(x[:10], y[:10]), (x[10:], y[10:])]
    result = trainer.fit(batches, batches, num_epochs=15)  # 100% from epoch 9 with this seed
    assert result.train_acc[-1] == 100.0
    assert result.test_acc[-1] == 100.0  # same 20 images


# --------------------------------------------------------------------------
# Receptive fields: closed form against the support of an input gradient
# --------------------------------------------------------------------------

def gradient_support(layers: nn.Module, in_channels: int, size: int = 64) -> tuple[int, int]:
    """Height and width of the input region with a nonzero gradient of one central output."""
    layers.eval()
    with torch.no_grad():
        for m in layers.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(0.1)  # positive weights: no accidental cancellation
                if m.bias is not None:
                    m.bias.zero_()
    x = torch.ones(1, in_channels, size, size, requires_grad=True)
    y = layers(x)
    y[0, 0, y.shape[-2] // 2, y.shape[-1] // 2].backward()
    hit = x.grad[0].abs().sum(0) > 0
    rows, cols = hit.any(1).nonzero(), hit.any(0).nonzero()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)),
    lambda: nn.Sequential(nn.Conv2d(3, 4, 5, stride=2, padding=2), nn.AvgPool2d(2), nn.Conv2d(4, 4, 3, padding=1)),
    lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=2, dilation=2), nn.AvgPool2d(3, 2, 1),
                          nn.Conv2d(4, 4, (3, 5), padding=(1, 2))),
    lambda: nn.Sequential(ResidualBlock(3, [4, 4], [3, 5])),
    lambda: ResNetClassifier((3, 32, 32), 10, [4] * 4, 2, [], pooling_type='avg').feature_extractor,
    lambda: YourCodeNet((3, 32, 32), 10, [4] * 5, 2, [], pooling_type='avg', zero_init_residual=False).feature_extractor,
])
def test_receptive_field_matches_gradient_support(make):
    from hw2.cnn import receptive_field
    layers = make()
    assert receptive_field(layers) == gradient_support(layers, 3)


# --------------------------------------------------------------------------
# The speedrun's YourCodeNet: whitening, test-time views, the max-pool head
# --------------------------------------------------------------------------

def test_the_whitening_layer_decorrelates_patches_and_stays_frozen():
    torch.manual_seed(0)
    # Correlated channels: the whitened 2×2 patches must have identity covariance.
    base = torch.randn(200, 1, 12, 12)
    images = torch.cat([base, base + 0.1 * torch.randn_like(base),
                        torch.randn(200, 1, 12, 12)], dim=1)
    net = YourCodeNet((3, 12, 12), 10, [8, 8], 2, [], whiten=2)
    conv = net.feature_extractor[0][0]
    assert conv.weight.shape == (24, 3, 2, 2) and not conv.weight.requires_grad
    net.init_from_data(images, eps=1e-9)  # (the default eps damps the faintest ones)
    out = nn.functional.conv2d(images, conv.weight[:12])  # the 12 directions
    flat = out.permute(1, 0, 2, 3).reshape(12, -1)
    covariance = flat @ flat.T / flat.shape[1]
    assert torch.allclose(covariance, torch.eye(12), atol=0.02), covariance.diag()
    assert torch.equal(conv.weight[12:], -conv.weight[:12])
    # 12×12 → 11×11 (the 2×2 whitening, no padding) → 5×5 (the one stage's pool):
    # the shape arithmetic knows the whitening layer.
    assert feature_map_shape(net.feature_extractor, (3, 12, 12)) == (8, 5, 5)
    # Without whiten there is no such layer, and init_from_data does nothing.
    plain = YourCodeNet((3, 12, 12), 10, [8, 8], 2, [])
    before = [p.clone() for p in plain.parameters()]
    plain.init_from_data(images)
    assert all(torch.equal(a, b) for a, b in zip(before, plain.parameters()))


def test_test_time_views_average_the_scores_of_flips_and_shifts():
    torch.manual_seed(0)
    net = YourCodeNet((3, 16, 16), 10, [8, 16], 1, [], tta=1, global_pool="max",
                      logit_scale=0.5).eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        one = net._scores(x)
        both = (one + net._scores(x.flip(-1))) / 2
        assert torch.allclose(net(x), both, atol=1e-6)
        net.tta = 2
        padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
        views = [x, x.flip(-1), padded[..., :16, :16], padded[..., :16, :16].flip(-1),
                 padded[..., 2:, 2:], padded[..., 2:, 2:].flip(-1)]
        assert torch.allclose(net(x), sum(net._scores(v) for v in views) / 6, atol=1e-6)
        net.train()
        assert net(x).shape == (4, 10)  # training sees one view
    assert isinstance(net.classifier[0], nn.AdaptiveMaxPool2d)
    with pytest.raises(ValueError, match="tta must be one of 0, 1, 2"):
        YourCodeNet((3, 16, 16), 10, [8], 1, [], tta=3)
