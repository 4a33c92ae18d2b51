"""hw2.grad_check: the checkers themselves catch wrong gradients."""
import pytest
import torch

import hw2.layers as layers
from hw2.grad_check import (
    GradDiff,
    compare_layer_to_torch,
    numerical_gradient,
    param_names,
    relative_error,
    torch_reference,
)

F64 = torch.float64


class DoubleReLUWrongGrad(layers.ReLU):
    """A layer whose backward is off by a factor of two."""

    def backward(self, dout):
        return 2 * super().backward(dout)


class LinearWrongSign(layers.Linear):
    def backward(self, dout):
        dx = super().backward(dout)
        self.dw.neg_()
        return dx


@torch_reference.register
def _(layer: DoubleReLUWrongGrad):
    return lambda x, params, y: torch.relu(x)


def test_compare_detects_wrong_input_gradient():
    x = torch.randn(5, 4, dtype=F64)
    diff = compare_layer_to_torch(DoubleReLUWrongGrad(), x)
    assert diff.out == 0 and diff.dx > 0.1


def test_compare_detects_wrong_parameter_gradient():
    torch.manual_seed(0)
    layer = LinearWrongSign(4, 3, dtype=F64)
    diff = compare_layer_to_torch(layer, torch.randn(5, 4, dtype=F64))
    assert diff.dx < 1e-12 and diff.params["b"] < 1e-12 and diff.params["w"] > 0.1


def test_graddiff_iterates_over_all_differences():
    diff = GradDiff(out=1.0, dx=2.0, params={"w": 3.0, "b": 0.5})
    assert list(diff) == [1.0, 2.0, 3.0, 0.5]
    assert diff.max == 3.0


def test_graddiff_without_input_gradient():
    diff = GradDiff(out=1.0, dx=None, params={"w": 3.0})
    assert list(diff) == [1.0, 3.0] and diff.max == 3.0


def test_compare_refuses_a_missing_input_gradient():
    """backward returning None is a bug (a missing `return dx`) unless asked for."""

    class ForgotReturn(layers.TanH):
        def backward(self, dout):
            super().backward(dout)

    @torch_reference.register
    def _(layer: ForgotReturn):
        return lambda x, params, y: torch.tanh(x)

    x = torch.randn(3, 4, dtype=F64)
    for layer in [ForgotReturn(), layers.Linear(4, 2, dtype=F64, input_grad=False)]:
        with pytest.raises(ValueError, match=r"backward returned None instead of dL/dx.*input_grad=False"):
            compare_layer_to_torch(layer, x)
    # A parameterless layer compared without dx checks the forward output only.
    assert list(compare_layer_to_torch(ForgotReturn(), x, input_grad=False)) == [0.0]


def test_compare_parameters_only_still_catches_wrong_gradients():
    torch.manual_seed(0)
    layer = LinearWrongSign(4, 3, dtype=F64, input_grad=False)
    diff = compare_layer_to_torch(layer, torch.randn(5, 4, dtype=F64), input_grad=False)
    assert diff.dx is None and diff.params["b"] < 1e-12 and diff.params["w"] > 0.1


def test_compare_zeroes_gradients_and_leaves_parameters_alone():
    torch.manual_seed(0)
    layer = layers.Linear(4, 3, dtype=F64)
    w = layer.w.clone()
    layer.dw.fill_(100.0)  # stale gradient from an earlier pass
    diff = compare_layer_to_torch(layer, torch.randn(5, 4, dtype=F64))
    assert diff.max < 1e-12
    assert torch.equal(layer.w, w)


def test_compare_uses_the_given_seed():
    x = torch.randn(3, 4, dtype=F64)
    a, b = layers.TanH(), layers.TanH()
    compare_layer_to_torch(a, x, seed=1)
    compare_layer_to_torch(b, x, seed=1)
    assert torch.equal(a.grad_cache["out"], b.grad_cache["out"])


def test_no_reference_for_unknown_layer():
    class Custom(layers.Layer):
        def forward(self, x, **kw):
            return x

        def backward(self, dout):
            return dout

    with pytest.raises(TypeError, match=r"no torch reference for Custom; register one"):
        compare_layer_to_torch(Custom(), torch.randn(2, 3))


def test_param_names():
    mlp = layers.MLP(4, 2, [3, 5])
    assert param_names(mlp) == ["0.w", "0.b", "2.w", "2.b", "4.w", "4.b"]


def test_numerical_gradient_of_known_functions():
    x = torch.tensor([[0.5, -1.0], [2.0, 3.0]], dtype=F64)
    # scalar f: d/dx Σ x³ = 3x²
    assert relative_error(numerical_gradient(lambda t: (t**3).sum(), x), 3 * x**2) < 1e-8
    # tensor f with an upstream gradient: d/dx Σ dout ⊙ sin(x) = dout ⊙ cos(x)
    dout = torch.tensor([[1.0, 2.0], [-1.0, 0.5]], dtype=F64)
    num = numerical_gradient(torch.sin, x, 1e-6, dout)
    assert relative_error(num, dout * torch.cos(x)) < 1e-8
    # x is restored after the perturbations
    assert torch.equal(x, torch.tensor([[0.5, -1.0], [2.0, 3.0]], dtype=F64))


def test_relative_error():
    a = torch.tensor([1.0, 2.0])
    assert relative_error(a, a) == 0
    assert relative_error(a, torch.tensor([1.0, 2.2])) == pytest.approx(0.2 / 2.2)


def test_grad_compare_compatibility_module():
    from hw2.grad_compare import compare_layer_to_torch as old_name

    assert old_name is compare_layer_to_torch
