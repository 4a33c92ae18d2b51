"""Checking hand-written backward passes: autograd and finite differences.

Two independent oracles for the layers of :mod:`hw2.layers`:

- :func:`compare_layer_to_torch` runs a layer's own forward and backward,
  then the *same computation written with torch.nn.functional* through
  ``torch.autograd``, on copies of the layer's parameters, and reports the
  largest absolute difference of the output, the input gradient and every
  parameter gradient. In float64 a correct layer differs at rounding level
  (well below 1e-12).
- :func:`numerical_gradient` estimates a gradient by centred finite
  differences, needing nothing but forward evaluations (cs231n style).

The autograd reference of each layer type is registered with
:func:`torch_reference` (a ``functools.singledispatch`` function); a new
layer type gets a check by registering its functional equivalent.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from hw2 import layers as L

__all__ = [
    "GradDiff",
    "compare_layer_to_torch",
    "torch_reference",
    "param_names",
    "numerical_gradient",
    "relative_error",
]

# A reference computation: (x, iterator over parameter leaves, labels) -> out.
Reference = Callable[
    [torch.Tensor, Iterator[torch.Tensor], "torch.Tensor | None"], torch.Tensor
]


# --------------------------------------------------------------------------
# torch.nn.functional equivalents of the layers.
# --------------------------------------------------------------------------
@functools.singledispatch
def torch_reference(layer: L.Layer) -> Reference:
    """The layer's computation written with differentiable torch functions.

    Returns ``fn(x, params, y)`` where ``params`` yields leaf tensors in the
    order of ``layer.params()``; ``fn`` takes the ones it needs.
    """
    raise TypeError(
        f"no torch reference for {type(layer).__name__}; register one with "
        f"@hw2.grad_check.torch_reference.register({type(layer).__name__})"
    )


@torch_reference.register
def _(layer: L.LeakyReLU) -> Reference:
    return lambda x, params, y: F.leaky_relu(x, negative_slope=layer.alpha)


@torch_reference.register
def _(layer: L.ReLU) -> Reference:
    return lambda x, params, y: F.relu(x)


@torch_reference.register
def _(layer: L.Sigmoid) -> Reference:
    return lambda x, params, y: torch.sigmoid(x)


@torch_reference.register
def _(layer: L.TanH) -> Reference:
    return lambda x, params, y: torch.tanh(x)


@torch_reference.register
def _(layer: L.Linear) -> Reference:
    return lambda x, params, y: F.linear(x, next(params), next(params))


@torch_reference.register
def _(layer: L.CrossEntropyLoss) -> Reference:
    return lambda x, params, y: F.cross_entropy(x, y)


@torch_reference.register
def _(layer: L.Dropout) -> Reference:
    # Randomness cannot be replayed through F.dropout (it draws its mask
    # differently), so the reference reuses the mask of the layer's last
    # forward pass: out = x ⊙ keep / (1 - p), or x in eval mode.
    return lambda x, params, y: x * layer.grad_cache["scale"]


@torch_reference.register
def _(layer: L.Sequential) -> Reference:
    refs = [torch_reference(sub) for sub in layer.layers]

    def run(x, params, y):
        for ref in refs:
            x = ref(x, params, y)
        return x

    return run


@torch_reference.register
def _(layer: L.MLP) -> Reference:
    return torch_reference(layer.sequence)


def param_names(layer: L.Layer) -> list[str]:
    """Names of ``layer.params()`` in order, e.g. ``['0.w', '0.b', '2.w']``."""
    if isinstance(layer, L.MLP):
        return param_names(layer.sequence)
    if isinstance(layer, L.Sequential):
        return [f"{i}.{name}" for i, sub in enumerate(layer.layers)
                for name in param_names(sub)]
    if isinstance(layer, L.Linear):
        return ["w", "b"]
    return [f"param{i}" for i in range(len(layer.params()))]


# --------------------------------------------------------------------------
# The comparison.
# --------------------------------------------------------------------------
@dataclass
class GradDiff:
    """Largest absolute differences between a layer and its autograd reference.

    Iterating yields every difference (output, input gradient, then each
    parameter gradient), so ``max(diff)`` or ``all(d < tol for d in diff)``
    check them all.
    """

    out: float  #: forward output
    #: gradient w.r.t. the input; None when not compared (input_grad=False)
    dx: float | None
    #: each parameter gradient, by name (see param_names)
    params: dict[str, float] = field(default_factory=dict)

    def __iter__(self):
        yield self.out
        if self.dx is not None:
            yield self.dx
        yield from self.params.values()

    @property
    def max(self) -> float:
        """The largest of all the differences."""
        return max(self)


def _max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        raise ValueError(
            f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}"
        )
    return (a - b).abs().max().item() if a.numel() else 0.0


def compare_layer_to_torch(
    layer: L.Layer,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    seed: int = 42,
    input_grad: bool = True,
) -> GradDiff:
    """Compare a layer's forward and backward passes to torch.autograd.

    1. Zero the layer's parameter gradients (as ``optimizer.zero_grad()``).
    2. Run ``layer(x)`` (``layer(x, y=y)`` when labels are given) and
       ``layer.backward(dout)`` with ``dout = 1`` for a scalar output (a
       loss) and a random normal ``dout`` (seeded by ``seed``) otherwise.
    3. Run the functional equivalent (:func:`torch_reference`) on leaf
       copies of ``x`` and of the parameters, and ``backward(dout)`` there.
    4. Return the largest absolute differences (:class:`GradDiff`).

    Args:
        layer: any layer with a registered reference (all of hw2.layers).
        x: input, e.g. (N, D); use float64 for a rounding-level comparison.
        y: integer labels (N,) when the layer ends in a loss.
        seed: seed of the random upstream gradient.
        input_grad: compare dL/dx too (default). False compares only the
            output and the parameter gradients, for a model built with
            ``input_grad=False``, whose backward returns None.
    """
    for _, grad in layer.params():
        grad.zero_()
    out = layer(x) if y is None else layer(x, y=y)
    if out.dim() == 0:
        dout = torch.ones((), dtype=out.dtype, device=out.device)
    else:
        gen = torch.Generator(device=out.device).manual_seed(seed)
        dout = torch.randn(out.shape, generator=gen, dtype=out.dtype,
                           device=out.device)
    dx = layer.backward(dout if out.dim() else 1.0)
    if input_grad and dx is None:
        raise ValueError(
            f"{type(layer).__name__}.backward returned None instead of dL/dx "
            "(a missing `return dx`?); for a layer built with "
            "input_grad=False, call compare_layer_to_torch(..., "
            "input_grad=False) to compare only the parameter gradients"
        )

    # The same computation through autograd, on leaf copies.
    xt = x.detach().clone().requires_grad_(input_grad)
    leaves = [p.detach().clone().requires_grad_(True)
              for p, _ in layer.params()]
    out_t = torch_reference(layer)(xt, iter(leaves), y)
    if out_t.requires_grad:  # False only with neither dx nor parameters
        out_t.backward(dout)

    names = param_names(layer)
    return GradDiff(
        out=_max_abs_diff(out, out_t.detach()),
        dx=_max_abs_diff(dx, xt.grad) if input_grad else None,
        params={
            name: _max_abs_diff(grad, leaf.grad)
            for name, (_, grad), leaf in zip(names, layer.params(), leaves)
        },
    )


# --------------------------------------------------------------------------
# Finite differences.
# --------------------------------------------------------------------------
def numerical_gradient(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    eps: float = 1e-6,
    dout: torch.Tensor | None = None,
) -> torch.Tensor:
    """Centred finite-difference estimate of ``d <dout, f(x)> / dx``.

    For each element i:  ``(g(x + eps·e_i) - g(x - eps·e_i)) / (2·eps)``
    with ``g(x) = Σ dout ⊙ f(x)`` (``dout = 1`` when f returns a scalar).
    The error is O(eps²) plus rounding O(ulp / eps): use float64.
    Costs 2·x.numel() evaluations of f: keep x small.

    Args:
        f: the function. ``x`` is perturbed in place and restored, so f may
            read it through a reference (e.g. ``x = layer.w`` with
            ``f = lambda _: layer(inputs)``).
        x: the point, any shape.
        eps: the step.
        dout: the upstream gradient, f(x)'s shape (None: f returns a scalar).

    Returns:
        The estimate, x's shape.
    """
    grad = torch.zeros_like(x)
    flat_x = x.view(-1)  # shares storage with x
    flat_grad = grad.view(-1)
    for i in range(flat_x.numel()):
        old = flat_x[i].item()
        flat_x[i] = old + eps
        f_plus = f(x).detach().clone()
        flat_x[i] = old - eps
        f_minus = f(x).detach().clone()
        flat_x[i] = old
        weight = 1.0 if dout is None else dout
        flat_grad[i] = ((f_plus - f_minus) * weight).sum() / (2 * eps)
    return grad


def relative_error(a: torch.Tensor, b: torch.Tensor,
                   floor: float = 1e-12) -> float:
    """Largest difference relative to the largest entry.

    ``max|a - b| / max(max|a|, max|b|)``: measured against the scale of the
    whole gradient rather than entry by entry, so that tiny entries (from a
    softmax probability of 1e-9, say), whose finite-difference estimates are
    all rounding error, do not dominate.

    Args:
        a, b: tensors of one shape.
        floor: the smallest scale divided by (two zero tensors give 0).
    """
    scale = max(a.abs().max().item(), b.abs().max().item(), floor)
    return (a - b).abs().max().item() / scale
