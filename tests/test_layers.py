"""hw2.layers: every forward against torch.nn.functional, every backward against
torch.autograd (float64, max |Δ| < 1e-12) and centred finite differences, and
clear errors for bad input."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import hw2.layers as layers
from hw2.grad_check import compare_layer_to_torch, numerical_gradient, relative_error

F64 = torch.float64
TOL = 1e-12  # float64 rounding level for these sizes
SETTINGS = settings(max_examples=30, deadline=None)

seeds = st.integers(0, 2**31 - 1)
batch = st.integers(1, 8)
features = st.integers(1, 12)
# Any input shape (N, *): one to three trailing dims.
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3).flatmap(
    lambda tail: batch.map(lambda n: (n, *tail))
)
scales = st.sampled_from([1e-3, 1.0, 10.0])


def randn(shape, seed, scale=1.0, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=dtype) * scale


def assert_close_to_torch(layer, x, y=None):
    diff = compare_layer_to_torch(layer, x, y)
    assert diff.max < TOL, diff
    return diff


# --------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------
ACTIVATIONS = [
    (lambda: layers.ReLU(), F.relu),
    (lambda: layers.LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2)),
    (lambda: layers.Sigmoid(), torch.sigmoid),
    (lambda: layers.TanH(), torch.tanh),
]
ACTIVATION_IDS = ["relu", "lrelu", "sigmoid", "tanh"]


@pytest.mark.parametrize("make, torch_fn", ACTIVATIONS, ids=ACTIVATION_IDS)
@SETTINGS
@given(shape=shapes, seed=seeds, scale=scales)
def test_activation_matches_autograd(make, torch_fn, shape, seed, scale):
    x = randn(shape, seed, scale)
    layer = make()
    assert torch.equal(layer(x), layer(x))  # deterministic
    assert (layer(x) - torch_fn(x)).abs().max() < TOL
    assert_close_to_torch(layer, x)


@SETTINGS
@given(alpha=st.floats(0, 1, exclude_max=True), shape=shapes, seed=seeds)
def test_leaky_relu_any_alpha(alpha, shape, seed):
    x = randn(shape, seed)
    assert_close_to_torch(layers.LeakyReLU(alpha), x)


@pytest.mark.parametrize("make, torch_fn", ACTIVATIONS, ids=ACTIVATION_IDS)
def test_activation_float32(make, torch_fn):
    x = randn((6, 3, 4), 0, dtype=torch.float32)
    layer = make()
    out = layer(x)
    assert out.dtype == torch.float32
    assert layer.backward(torch.ones_like(out)).dtype == torch.float32
    assert compare_layer_to_torch(layer, x).max < 1e-5


@pytest.mark.parametrize("make", [layers.Sigmoid, layers.TanH, layers.ReLU])
def test_activation_extreme_inputs_are_finite(make):
    x = torch.tensor([[-1e4, -800.0, 0.0, 800.0, 1e4]], dtype=F64)
    layer = make()
    out = layer(x)
    assert torch.isfinite(out).all()
    assert torch.isfinite(layer.backward(torch.ones_like(out))).all()


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("alpha", [0.0, 0.01, 0.3])
def test_relu_family_bitwise_equal_to_torch(alpha, dtype):
    """Forward and backward are exactly F.relu / F.leaky_relu and their autograd
    gradient, infinities, signed zeros and NaN included (except the gradient of
    ReLU at a NaN input: autograd passes dout through, the mask x > 0 gives 0)."""
    special = [-torch.inf, -1e4, -2.5, -1e-30, -0.0, 0.0, 1e-30, 0.7, 1e4, torch.inf, torch.nan]
    x = torch.cat([torch.tensor(special, dtype=dtype), randn(199, 0, dtype=dtype)]).reshape(-1, 7)
    dout = randn(x.shape, 1, dtype=dtype)
    for layer, torch_fn in [(layers.LeakyReLU(alpha), lambda t: F.leaky_relu(t, alpha)),
                            (layers.ReLU(), F.relu)]:
        if alpha and isinstance(layer, layers.ReLU):
            continue
        xt = x.clone().requires_grad_(True)
        expected = torch_fn(xt)
        expected.backward(dout)
        out = layer(x)
        assert out.dtype == dtype
        torch.testing.assert_close(out, expected.detach(), rtol=0, atol=0, equal_nan=True)
        dx = layer.backward(dout)
        if isinstance(layer, layers.ReLU):
            dx, expected_dx = dx[~x.isnan()], xt.grad[~x.isnan()]
        else:
            expected_dx = xt.grad
        torch.testing.assert_close(dx, expected_dx, rtol=0, atol=0, equal_nan=True)


def test_activation_reprs():
    # The original assignment's notebooks compare str(layer) with the names.
    assert str(layers.ReLU()) == "ReLU"
    assert str(layers.Sigmoid()) == "Sigmoid"
    assert str(layers.TanH()) == "TanH"
    assert str(layers.LeakyReLU(0.3)) == "LeakyReLU(alpha=0.3)"


# --------------------------------------------------------------------------
# Linear
# --------------------------------------------------------------------------
@SETTINGS
@given(n=batch, d_in=features, d_out=features, seed=seeds, scale=scales)
def test_linear_matches_autograd(n, d_in, d_out, seed, scale):
    torch.manual_seed(seed)
    layer = layers.Linear(d_in, d_out, wstd=scale, dtype=F64)
    layer.b.copy_(randn(d_out, seed + 1))  # a non-zero bias
    x = randn((n, d_in), seed + 2, scale)
    assert (layer(x) - F.linear(x, layer.w, layer.b)).abs().max() < TOL
    diff = assert_close_to_torch(layer, x)
    assert set(diff.params) == {"w", "b"}


def test_linear_parameters():
    torch.manual_seed(0)
    layer = layers.Linear(300, 200, wstd=0.5)
    (w, dw), (b, db) = layer.params()
    assert w is layer.w and dw is layer.dw and b is layer.b and db is layer.db
    assert w.shape == (200, 300) and b.shape == (200,)
    assert w.dtype == torch.get_default_dtype()
    assert abs(w.std().item() - 0.5) < 0.01  # 60,000 draws: std error ~ 0.0015
    assert torch.all(b == 0) and torch.all(dw == 0) and torch.all(db == 0)
    assert str(layer).startswith("Linear") and "300" in str(layer) and "200" in str(layer)


def test_linear_gradients_accumulate():
    """Two forward/backward passes add their gradients, like torch's .grad."""
    torch.manual_seed(0)
    layer = layers.Linear(5, 3, dtype=F64)
    x1, x2 = randn((4, 5), 1), randn((6, 5), 2)
    g1, g2 = randn((4, 3), 3), randn((6, 3), 4)
    dw_before, db_before = layer.dw, layer.db
    layer(x1)
    layer.backward(g1)
    layer(x2)
    layer.backward(g2)
    assert layer.dw is dw_before and layer.db is db_before  # updated in place

    w = layer.w.clone().requires_grad_(True)
    b = layer.b.clone().requires_grad_(True)
    (F.linear(x1, w, b) * g1).sum().backward()
    (F.linear(x2, w, b) * g2).sum().backward()
    assert (layer.dw - w.grad).abs().max() < TOL
    assert (layer.db - b.grad).abs().max() < TOL

    # zeroing in place (what an optimizer does) starts afresh
    layer.dw.zero_()
    layer.db.zero_()
    assert compare_layer_to_torch(layer, x1).max < TOL


@pytest.mark.parametrize("dtype, tol", [(F64, TOL), (torch.float32, 1e-5)])
def test_linear_without_input_grad(dtype, tol):
    """input_grad=False: the same parameter gradients, and backward returns None."""
    torch.manual_seed(0)
    with_dx = layers.Linear(6, 4, dtype=dtype)
    without = layers.Linear(6, 4, dtype=dtype, input_grad=False)
    without.w.copy_(with_dx.w)
    without.b.normal_()
    with_dx.b.copy_(without.b)
    assert with_dx.input_grad and not without.input_grad
    x, dout = randn((5, 6), 1, dtype=dtype), randn((5, 4), 2, dtype=dtype)
    assert torch.equal(without(x), with_dx(x))
    assert without.backward(dout) is None
    assert with_dx.backward(dout) is not None
    assert torch.equal(without.dw, with_dx.dw) and torch.equal(without.db, with_dx.db)
    diff = compare_layer_to_torch(without, x, input_grad=False)
    assert diff.dx is None and set(diff.params) == {"w", "b"}
    assert diff.max < tol
    assert "input_grad=False" in repr(without) and "input_grad" not in repr(with_dx)


def test_linear_bad_input_grad():
    with pytest.raises(TypeError, match=r"Linear: input_grad must be True or False, got 'no'"):
        layers.Linear(3, 2, input_grad="no")


def test_linear_float32():
    layer = layers.Linear(8, 4, dtype=torch.float32)
    x = randn((5, 8), 0, dtype=torch.float32)
    assert layer(x).dtype == torch.float32
    assert compare_layer_to_torch(layer, x).max < 1e-5


# --------------------------------------------------------------------------
# Cross-entropy
# --------------------------------------------------------------------------
@SETTINGS
@given(n=batch, c=st.integers(1, 10), seed=seeds, scale=st.sampled_from([1e-3, 1.0, 30.0]))
def test_cross_entropy_matches_autograd(n, c, seed, scale):
    x = randn((n, c), seed, scale)
    y = torch.randint(c, (n,), generator=torch.Generator().manual_seed(seed))
    loss_fn = layers.CrossEntropyLoss()
    loss = loss_fn(x, y)
    assert loss.dim() == 0
    assert abs(loss - F.cross_entropy(x, y)) < TOL
    assert_close_to_torch(loss_fn, x, y)


def test_cross_entropy_huge_scores_are_finite():
    x = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0], [3.0, 3.0, -1e4]])
    y = torch.tensor([1, 1, 0])
    loss_fn = layers.CrossEntropyLoss()
    loss = loss_fn(x, y)
    assert torch.isfinite(loss)
    assert abs(loss - F.cross_entropy(x, y)) < 1e-3 * (1 + abs(loss))
    dx = loss_fn.backward()
    assert torch.isfinite(dx).all()
    assert compare_layer_to_torch(loss_fn, x.double(), y).max < TOL


def test_cross_entropy_dout_scales_gradient():
    x, y = randn((4, 3), 0), torch.tensor([0, 2, 1, 1])
    loss_fn = layers.CrossEntropyLoss()
    loss_fn(x, y)
    assert torch.allclose(loss_fn.backward(2.5), 2.5 * loss_fn.backward(), atol=0, rtol=1e-15)
    # rows of dL/dx sum to zero: softmax minus a one-hot, both summing to one
    assert loss_fn.backward().sum(dim=1).abs().max() < TOL


def test_cross_entropy_positional_and_keyword_labels():
    x, y = randn((4, 3), 0), torch.tensor([0, 2, 1, 1])
    loss_fn = layers.CrossEntropyLoss()
    assert loss_fn(x, y) == loss_fn(x, y=y)


# --------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------
def test_dropout_eval_is_identity():
    x = randn((10, 20), 0)
    layer = layers.Dropout(0.6).train(False)
    assert torch.equal(layer(x), x)
    dout = randn((10, 20), 1)
    assert torch.equal(layer.backward(dout), dout)
    assert_close_to_torch(layer, x)


@pytest.mark.parametrize("p", [0.0, 0.2, 0.6, 0.9])
def test_dropout_train_keeps_expectation(p):
    torch.manual_seed(0)
    n = 200_000
    x = torch.full((n,), 3.0, dtype=F64)
    out = layers.Dropout(p)(x)
    kept = out != 0
    # every kept unit is scaled by 1/(1-p), every other one is zero
    assert torch.allclose(out[kept], torch.full_like(out[kept], 3.0 / (1 - p)))
    # mean of n iid units of variance 9·p/(1-p): within 5 standard errors of 3
    stderr = 3.0 * math.sqrt(p / (1 - p) / n)
    assert abs(out.mean().item() - 3.0) <= 5 * stderr + 1e-12
    assert abs((1 - kept.double().mean()).item() - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-12


def test_dropout_backward_masks():
    torch.manual_seed(1)
    p = 0.5
    layer = layers.Dropout(p)
    x = randn((50, 40), 2)
    out = layer(x)
    dout = randn((50, 40), 3)
    dx = layer.backward(dout)
    dropped = out == 0
    assert dropped.any() and (~dropped).any()
    assert torch.all(dx[dropped] == 0)
    assert torch.allclose(dx[~dropped], dout[~dropped] / (1 - p), rtol=1e-15, atol=0)
    assert_close_to_torch(layer, x)


def test_dropout_repr():
    assert str(layers.Dropout(0.4)).startswith("Dropout")


# --------------------------------------------------------------------------
# Finite differences: an oracle independent of autograd
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [layers.ReLU, lambda: layers.LeakyReLU(0.1), layers.Sigmoid, layers.TanH,
     lambda: layers.Linear(4, 3, dtype=F64)],
    ids=["relu", "lrelu", "sigmoid", "tanh", "linear"],
)
def test_backward_matches_finite_differences(make):
    torch.manual_seed(0)
    layer = make()
    x = randn((3, 4), 5)
    x[x.abs() < 1e-3] = 0.5  # stay away from ReLU's kink
    dout = randn(layer(x).shape, 6)
    dx = layer.backward(dout)
    assert relative_error(dx, numerical_gradient(layer, x, 1e-6, dout)) < 1e-7
    for p, grad in layer.params():
        grad.zero_()
        layer(x)
        layer.backward(dout)
        num = numerical_gradient(lambda _: layer(x), p, 1e-6, dout)
        assert relative_error(grad, num) < 1e-7


def test_cross_entropy_matches_finite_differences():
    x, y = randn((5, 4), 0), torch.tensor([0, 3, 1, 1, 2])
    loss_fn = layers.CrossEntropyLoss()
    loss_fn(x, y)
    dx = loss_fn.backward()
    assert relative_error(dx, numerical_gradient(lambda s: loss_fn(s, y), x)) < 1e-7


# --------------------------------------------------------------------------
# Sequential and MLP
# --------------------------------------------------------------------------
def test_sequential_long_chain_matches_autograd():
    torch.manual_seed(0)
    d = 20
    seq = layers.Sequential(
        layers.Linear(d, 30, dtype=F64),
        layers.Linear(30, 40, dtype=F64),
        layers.ReLU(),
        layers.Linear(40, 50, dtype=F64),
        layers.LeakyReLU(alpha=0.01),
        layers.Linear(50, 20, dtype=F64),
        layers.TanH(),
        layers.Linear(20, 1, dtype=F64),
        layers.Sigmoid(),
    )
    diff = assert_close_to_torch(seq, randn((16, d), 1))
    assert len(diff.params) == 10
    assert len(seq) == 9 and isinstance(seq[2], layers.ReLU)
    assert isinstance(seq[1:], layers.Sequential) and len(seq[1:]) == 8
    assert [type(l) for l in seq][:2] == [layers.Linear, layers.Linear]


def test_sequential_passes_labels_to_loss():
    torch.manual_seed(0)
    seq = layers.Sequential(layers.Linear(6, 4, dtype=F64), layers.ReLU(),
                            layers.Linear(4, 3, dtype=F64), layers.CrossEntropyLoss())
    x, y = randn((10, 6), 1), torch.randint(3, (10,))
    loss = seq(x, y=y)
    assert loss.dim() == 0
    assert_close_to_torch(seq, x, y)


def test_sequential_train_propagates_and_params_concatenate():
    inner = layers.Sequential(layers.Linear(3, 4), layers.Dropout(0.5))
    seq = layers.Sequential(inner, layers.ReLU(), layers.Linear(4, 2))
    seq.train(False)
    assert not inner[1].training_mode and not seq[2].training_mode
    seq.train()
    assert inner[1].training_mode
    assert seq.eval() is seq and not inner[1].training_mode  # eval() = train(False)
    assert [p for p, _ in seq.params()] == [inner[0].w, inner[0].b, seq[2].w, seq[2].b]


@SETTINGS
@given(
    hidden=st.lists(st.integers(1, 10), min_size=0, max_size=3),
    activation=st.sampled_from(["relu", "lrelu", "sigmoid", "tanh"]),
    dropout=st.sampled_from([0, 0.3]),
    n=batch, d=features, c=st.integers(1, 6), seed=seeds,
)
def test_mlp_matches_autograd(hidden, activation, dropout, n, d, c, seed):
    torch.manual_seed(seed)
    mlp = layers.MLP(d, c, hidden, activation=activation, dropout=dropout, dtype=F64)
    x = randn((n, d), seed)
    assert mlp(x).shape == (n, c)
    assert_close_to_torch(mlp, x)
    y = torch.randint(c, (n,))
    assert_close_to_torch(layers.Sequential(mlp, layers.CrossEntropyLoss()), x, y)


@pytest.mark.parametrize("dtype, tol", [(F64, TOL), (torch.float32, 1e-5)])
@pytest.mark.parametrize("hidden", [[], [7, 5]])
def test_mlp_without_input_grad(hidden, dtype, tol):
    """input_grad=False reaches the first Linear only; the parameter gradients
    are those of the default MLP (bit for bit) and of autograd."""
    models = []
    for input_grad in (True, False):
        torch.manual_seed(3)
        models.append(layers.MLP(9, 3, hidden, dtype=dtype, input_grad=input_grad))
    with_dx, without = models
    assert with_dx.input_grad and not without.input_grad
    linears = [l for l in without.sequence if isinstance(l, layers.Linear)]
    assert [l.input_grad for l in linears] == [False] + [True] * len(hidden)
    x, y = randn((8, 9), 4, dtype=dtype), torch.randint(3, (8,))
    loss_fn = layers.CrossEntropyLoss()
    for model in models:
        loss_fn(model(x), y)
        dx = model.backward(loss_fn.backward())
        assert (dx is None) == (model is without)
    for (_, g1), (_, g2) in zip(with_dx.params(), without.params()):
        assert torch.equal(g1, g2)
    diff = compare_layer_to_torch(layers.Sequential(without, loss_fn), x, y, input_grad=False)
    assert diff.dx is None and len(diff.params) == 2 * (len(hidden) + 1)
    assert diff.max < tol


def test_sequential_needs_input_grads_after_the_first_layer():
    seq = layers.Sequential(layers.Linear(3, 4), layers.ReLU(), layers.Linear(4, 2, input_grad=False))
    seq(torch.randn(5, 3))
    with pytest.raises(RuntimeError, match=r"layer 2 \(Linear\(in_features=4, out_features=2, "
                       r"input_grad=False\)\) returned no input gradient, but the layers before it need one; only the first layer"):
        seq.backward(torch.ones(5, 2))


def test_mlp_structure_like_the_assignment():
    hidden = [100, 50, 100]
    mlp = layers.MLP(30, num_classes=10, hidden_features=hidden, activation="relu")
    assert len(mlp.sequence) == 2 * len(hidden) + 1
    num_linear = 0
    for b1, b2 in zip(mlp.sequence, mlp.sequence[1:]):
        if str(b2).lower() == "relu":
            assert str(b1).startswith("Linear")
            num_linear += 1
    assert str(mlp.sequence[-1]).startswith("Linear")
    assert num_linear == len(hidden)

    mlp_dropout = layers.MLP(30, 10, hidden, dropout=0.6)
    assert len(mlp_dropout.sequence) == 3 * len(hidden) + 1
    for b1, b2 in zip(mlp_dropout.sequence, mlp_dropout.sequence[1:]):
        if str(b1).lower() == "relu":
            assert str(b2).startswith("Dropout")
    assert len(mlp.params()) == 2 * (len(hidden) + 1)


def test_mlp_activation_options():
    assert isinstance(layers.MLP(4, 2, [3], activation="tanh").sequence[1], layers.TanH)
    assert isinstance(layers.MLP(4, 2, [3], activation=layers.Sigmoid).sequence[1], layers.Sigmoid)
    lrelu = layers.MLP(4, 2, [3], activation="lrelu", activation_params=dict(alpha=0.2)).sequence[1]
    assert isinstance(lrelu, layers.LeakyReLU) and lrelu.alpha == 0.2
    mlp = layers.MLP(4, 2, [3], wstd=0.0)
    assert all(torch.all(p == 0) for p, _ in mlp.params())


def test_mlp_train_eval_switches_dropout():
    torch.manual_seed(0)
    mlp = layers.MLP(5, 3, [50], dropout=0.5, dtype=F64)
    x = randn((4, 5), 0)
    mlp.train(False)
    assert torch.equal(mlp(x), mlp(x))
    mlp.train(True)
    assert not torch.equal(mlp(x), mlp(x))


# --------------------------------------------------------------------------
# Bad input: clear errors where it enters
# --------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [-0.1, 1.0, 2])
def test_leaky_relu_bad_alpha(alpha):
    with pytest.raises(ValueError, match=r"LeakyReLU: alpha must satisfy 0 <= alpha < 1"):
        layers.LeakyReLU(alpha)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_bad_p(p):
    with pytest.raises(ValueError, match=r"Dropout: p must satisfy 0 <= p < 1"):
        layers.Dropout(p)


@pytest.mark.parametrize("args", [(0, 3), (3, -1), (2.5, 3), (True, 3)])
def test_linear_bad_sizes(args):
    with pytest.raises(ValueError, match=r"Linear: (in|out)_features must be a positive int"):
        layers.Linear(*args)


def test_linear_bad_wstd():
    with pytest.raises(ValueError, match=r"Linear: wstd must be >= 0"):
        layers.Linear(3, 4, wstd=-1)


def test_linear_wrong_input_shape():
    layer = layers.Linear(12, 4)
    with pytest.raises(ValueError, match=r"Linear: expected input of shape \(N, 12\), got \(2, 3, 4\)"):
        layer(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 12\), got \(2, 5\)"):
        layer(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"got \(12,\)"):
        layer(torch.randn(12))


def test_linear_wrong_dtype():
    layer = layers.Linear(3, 4, dtype=torch.float32)
    with pytest.raises(TypeError, match=r"input is torch.float64 but the parameters are torch.float32"):
        layer(torch.randn(2, 3, dtype=F64))
    with pytest.raises(TypeError, match=r"Linear: input must be a floating-point tensor"):
        layer(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"Linear: input must be a torch.Tensor, got list"):
        layer([[1.0, 2.0, 3.0]])


@pytest.mark.parametrize("make", [layers.ReLU, layers.Sigmoid, layers.TanH, layers.Dropout])
def test_activation_rejects_scalar(make):
    layer = make()
    with pytest.raises(ValueError, match=rf"{layer.name}: expected a batch of shape \(N, \*\)"):
        layer(torch.tensor(1.0))


@pytest.mark.parametrize(
    "make",
    [layers.ReLU, layers.Sigmoid, layers.TanH, layers.Dropout, layers.CrossEntropyLoss,
     lambda: layers.Linear(3, 2), lambda: layers.Sequential(layers.Linear(3, 2), layers.ReLU())],
    ids=["relu", "sigmoid", "tanh", "dropout", "ce", "linear", "sequential"],
)
def test_backward_before_forward(make):
    layer = make()
    with pytest.raises(RuntimeError, match=r"\w+\.backward\(\) was called before \w+\.forward\(\)"):
        layer.backward(torch.ones(4, 2))


def test_backward_error_names_the_layer():
    with pytest.raises(RuntimeError, match=r"^TanH\.backward\(\) was called before TanH\.forward\(\)"):
        layers.TanH().backward(torch.ones(2))


def test_backward_wrong_dout_shape():
    layer = layers.Linear(3, 2)
    layer(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"Linear.backward: dout has shape \(5, 3\) but the forward output had shape \(5, 2\)"):
        layer.backward(torch.ones(5, 3))
    relu = layers.ReLU()
    relu(torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"ReLU.backward: dout has shape"):
        relu.backward(torch.ones(2, 4))


def test_cross_entropy_bad_labels():
    loss_fn = layers.CrossEntropyLoss()
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\) to match scores \(4, 3\), got \(3,\)"):
        loss_fn(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\).*got \(4, 1\)"):
        loss_fn(x, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(TypeError, match=r"labels must be an integer tensor \(e.g. int64\), got dtype torch.float32"):
        loss_fn(x, torch.zeros(4))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\) for 3 classes, got values from 0 to 3"):
        loss_fn(x, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"got values from -1 to 2"):
        loss_fn(x, torch.tensor([0, -1, 2, 1]))
    with pytest.raises(TypeError, match=r"labels are missing"):
        loss_fn(x)
    with pytest.raises(TypeError, match=r"labels must be a torch.Tensor, got list"):
        loss_fn(x, [0, 1, 2, 1])


def test_cross_entropy_bad_scores():
    loss_fn = layers.CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: scores must have shape \(N, C\), got \(4,\)"):
        loss_fn(torch.randn(4), torch.tensor([0, 1, 2, 1]))
    with pytest.raises(TypeError, match=r"scores must be a floating-point tensor"):
        loss_fn(torch.ones(2, 3, dtype=torch.long), torch.tensor([0, 1]))
    loss_fn(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"dout must be a scalar"):
        loss_fn.backward(torch.ones(2))


def test_unknown_activation():
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'; supported: 'relu', 'lrelu', 'sigmoid', 'tanh'"):
        layers.MLP(4, 2, [3], activation="gelu")


def test_mlp_bad_dropout_and_kwargs():
    with pytest.raises(ValueError, match=r"MLP: dropout must satisfy 0 <= dropout < 1, got 1"):
        layers.MLP(4, 2, [3], dropout=1)
    with pytest.raises(TypeError, match=r"MLP: unknown keyword argument\(s\) wsdt; extra keywords go to every Linear: device, dtype, wstd"):
        layers.MLP(4, 2, [3], wsdt=0.1)  # typo: not silently accepted


def test_sequential_rejects_non_layers():
    with pytest.raises(TypeError, match=r"Sequential: item 1 is a function, not an hw2.layers.Layer"):
        layers.Sequential(layers.ReLU(), lambda x: x)


# --------------------------------------------------------------------------
# The original course's checker: forward under autograd, then compare
# --------------------------------------------------------------------------
def course_style_check(layer, x, y=None):
    """What the course's gradient checker does: x and every parameter require
    grad, the layer's own forward runs under autograd, autograd's gradients are
    compared with the layer's backward on the same upstream gradient."""
    x = x.clone().requires_grad_(True)
    for p, _ in layer.params():
        p.requires_grad_(True)
    try:
        z = layer(x) if y is None else layer(x, y=y)
        dz = torch.randn_like(z) if z.dim() else torch.tensor(1.0, dtype=z.dtype)
        z.backward(dz)
        dx = layer.backward(dz if z.dim() else 1.0)
        assert dx is not None and not dx.requires_grad, "backward must build no graph"
        torch.testing.assert_close(dx, x.grad, rtol=0, atol=1e-12)
        for p, g in layer.params():
            assert not g.requires_grad
            torch.testing.assert_close(g, p.grad, rtol=0, atol=1e-12)
    finally:
        for p, _ in layer.params():
            p.requires_grad_(False)
            p.grad = None


COURSE_LAYERS = {
    "LeakyReLU": lambda: layers.LeakyReLU(0.05),
    "ReLU": layers.ReLU,
    "Sigmoid": layers.Sigmoid,
    "TanH": layers.TanH,
    "Linear": lambda: layers.Linear(12, 5, wstd=0.3, dtype=torch.float64),
    "Dropout-eval": lambda: layers.Dropout(0.3).train(False),
}


@pytest.mark.parametrize("name", list(COURSE_LAYERS))
def test_forward_is_differentiable_by_autograd_like_the_course_checks_it(name):
    torch.manual_seed(0)
    x = torch.randn(8, 12, dtype=torch.float64)
    course_style_check(COURSE_LAYERS[name](), x)


def test_dropout_in_training_mode_under_autograd():
    torch.manual_seed(0)
    layer = layers.Dropout(0.4)
    x = torch.randn(64, 12, dtype=torch.float64, requires_grad=True)
    z = layer(x)
    z.backward(torch.ones_like(z))
    torch.testing.assert_close(layer.backward(torch.ones_like(z)), x.grad, rtol=0, atol=0)


def test_cross_entropy_and_mlp_with_a_loss_under_autograd():
    torch.manual_seed(0)
    x = torch.randn(16, 12, dtype=torch.float64)
    y = torch.randint(0, 5, (16,))
    course_style_check(layers.CrossEntropyLoss(), torch.randn(16, 5, dtype=torch.float64), y)
    mlp = layers.MLP(12, 5, [20, 10], activation="tanh", wstd=0.5, dtype=torch.float64)
    course_style_check(layers.Sequential(mlp, layers.CrossEntropyLoss()), x, y)
    seq = layers.Sequential(layers.Linear(12, 7, dtype=torch.float64), layers.LeakyReLU(0.1),
                            layers.Linear(7, 5, dtype=torch.float64), layers.Sigmoid())
    course_style_check(seq, x)
    # Without autograd the loss still reuses its exp buffer: the same numbers.
    with torch.no_grad():
        loss_fn = layers.CrossEntropyLoss()
        scores = torch.randn(16, 5, dtype=torch.float64)
        plain = loss_fn(scores, y), loss_fn.backward()
    tracked = layers.CrossEntropyLoss()
    loss = tracked(scores.clone().requires_grad_(True), y)
    torch.testing.assert_close((loss.detach(), tracked.backward()), plain, rtol=0, atol=0)


# --------------------------------------------------------------------------
# Bad input at the layer API's boundary: named errors, not torch's
# --------------------------------------------------------------------------
def test_cross_entropy_takes_labels_of_any_integer_dtype():
    x = torch.randn(5, 4, dtype=torch.float64)
    y = torch.tensor([0, 3, 1, 2, 3])
    expected = layers.CrossEntropyLoss()(x, y)
    for dtype in (torch.uint8, torch.int8, torch.int16, torch.int32):
        loss_fn = layers.CrossEntropyLoss()
        assert loss_fn(x, y.to(dtype)) == expected
        torch.testing.assert_close(loss_fn.backward(), F.softmax(x, 1) / 5
                                   - F.one_hot(y, 4).double() / 5, rtol=0, atol=1e-15)


def test_cross_entropy_refuses_an_empty_batch():
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: the batch is empty .*\(0, 10\)"):
        layers.CrossEntropyLoss()(torch.randn(0, 10), torch.zeros(0, dtype=torch.long))


def test_backward_refuses_a_dout_of_another_dtype():
    lin = layers.Linear(4, 3)
    lin(torch.randn(2, 4))
    with pytest.raises(TypeError, match=r"Linear.backward: dout has dtype torch.float64 but the "
                                        r"forward output had dtype torch.float32"):
        lin.backward(torch.randn(2, 3, dtype=torch.float64))
    relu = layers.ReLU()
    relu(torch.randn(2, 4))
    with pytest.raises(TypeError, match="ReLU.backward: dout has dtype torch.float64"):
        relu.backward(torch.randn(2, 4, dtype=torch.float64))

