"""Backpropagation from scratch: layers with hand-written backward passes.

Every layer works on plain torch tensors with autograd out of the picture.
``forward`` computes the output and caches exactly what ``backward`` needs;
``backward(dout)`` receives dL/d(output) and returns dL/d(input), adding the
gradients of the layer's parameters into its gradient tensors.

Each backward pass is a *vector-Jacobian product*: the local derivative is
written beside the code as a comment (``# dL/dW = doutᵀ X``) and applied to
``dout`` directly. No Jacobian matrix is ever built.

Conventions (as in cs231n):

- shapes are given in every docstring, ``x: (N, D)`` with N the batch size;
- gradients are named ``dx``, ``dw``, ``db``;
- a layer computes in the dtype of its input (float32 or float64); a
  ``Linear`` layer's parameters have a fixed dtype chosen at construction.

Layers accept and ignore keyword arguments meant for other layers, so that
``Sequential(..., CrossEntropyLoss())(x, y=labels)`` hands the labels to the
loss through every layer before it.

Why one module of some 680 lines: it holds one class per layer, the subject of
Part 1's chapters, which show them one by one; each class reads on its own.
"""
from __future__ import annotations

import abc
from collections.abc import Iterable

import torch

__all__ = [
    "Layer",
    "LeakyReLU",
    "ReLU",
    "Sigmoid",
    "TanH",
    "Linear",
    "CrossEntropyLoss",
    "Dropout",
    "Sequential",
    "MLP",
    "ACTIVATIONS",
    "activation_class",
]


# --------------------------------------------------------------------------
# Input checks shared by the layers: raised where bad input enters, naming it.
# --------------------------------------------------------------------------
def _check_float_tensor(layer: "Layer", name: str, t) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(
            f"{layer.name}: {name} must be a torch.Tensor, "
            f"got {type(t).__name__}"
        )
    if not t.is_floating_point():
        raise TypeError(
            f"{layer.name}: {name} must be a floating-point tensor "
            f"(float32 or float64), got dtype {t.dtype}"
        )


def _check_batched(layer: "Layer", x) -> None:
    """Activations and dropout accept any shape (N, *), at least one dim."""
    _check_float_tensor(layer, "input", x)
    if x.dim() < 1:
        raise ValueError(
            f"{layer.name}: expected a batch of shape (N, *), "
            "got a 0-dim tensor"
        )


def _check_dout(layer: "Layer", dout, shape: torch.Size, dtype: torch.dtype) -> None:
    _check_float_tensor(layer, "dout", dout)
    if dout.shape != shape:
        raise ValueError(
            f"{layer.name}.backward: dout has shape {tuple(dout.shape)} "
            f"but the forward output had shape {tuple(shape)}"
        )
    if dout.dtype != dtype:
        raise TypeError(
            f"{layer.name}.backward: dout has dtype {dout.dtype} but the forward "
            f"output had dtype {dtype}; convert it (dout.to({dtype}))"
        )


class Layer(abc.ABC):
    """A block of a network with a hand-written backward pass.

    Subclasses implement ``forward`` (caching what ``backward`` needs in
    ``self.grad_cache``) and ``backward``; layers with parameters also
    implement ``params``.

    A forward pass is also differentiable by ``torch.autograd`` when its
    input (or a parameter) requires grad, as the original course's gradient
    checker runs it: forward makes no in-place change to a tensor autograd
    saved, and caches *detached* tensors, so backward builds no graph.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # backward is a hand-written VJP: it never needs autograd, and must not
        # record a graph when a parameter requires grad (the course's checker).
        if "backward" in cls.__dict__:
            cls.backward = torch.no_grad()(cls.__dict__["backward"])

    def __init__(self):
        self.grad_cache: dict[str, torch.Tensor] = {}
        self.training_mode = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    @property
    def name(self) -> str:
        """The class name, used in error messages."""
        return type(self).__name__

    @abc.abstractmethod
    def forward(self, *args, **kwargs):
        """Compute the layer's output and cache what backward needs."""

    @abc.abstractmethod
    def backward(self, dout):
        """Given dL/d(output), return dL/d(input); add parameter gradients."""

    def params(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The layer's parameters as ``(tensor, gradient)`` pairs.

        Optimizers update the tensors in place and zero the gradients in
        place, so both keep their identity for the life of the layer.
        """
        return []

    def train(self, mode: bool = True) -> "Layer":
        """Switch training mode on (``mode=True``) or off (evaluation)."""
        self.training_mode = bool(mode)
        return self

    def eval(self) -> "Layer":
        """Evaluation mode: the same as ``train(False)``."""
        return self.train(False)

    def _cached(self, key: str) -> torch.Tensor:
        """A value cached by forward; a clear error if forward never ran."""
        try:
            return self.grad_cache[key]
        except KeyError:
            raise RuntimeError(
                f"{self.name}.backward() was called before "
                f"{self.name}.forward(): run a forward pass first, "
                "it caches what backward needs"
            ) from None

    def __repr__(self) -> str:
        return self.name


# --------------------------------------------------------------------------
# Activations: elementwise, no parameters, any input shape (N, *).
# --------------------------------------------------------------------------
class LeakyReLU(Layer):
    """Leaky rectified linear unit: ``f(x) = x`` if x > 0, else ``alpha·x``.

    Args:
        alpha: slope for negative inputs, 0 <= alpha < 1 (0 gives ReLU).
    """

    def __init__(self, alpha: float = 0.01):
        super().__init__()
        if not 0 <= alpha < 1:
            raise ValueError(
                f"LeakyReLU: alpha must satisfy 0 <= alpha < 1, got {alpha!r}"
            )
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor, **kw) -> torch.Tensor:
        """x: (N, *) -> out: (N, *)"""
        _check_batched(self, x)
        # f'(x), in the dtype of x, from a float 0/1 mask (torch.gt into a
        # float tensor): on the CPU, bool tensors and torch.where are many
        # times slower than float arithmetic.
        positive = torch.gt(x, 0, out=torch.empty_like(x))  # 1.0 or 0.0
        slope = positive.mul_(1 - self.alpha).add_(self.alpha)  # 1 or alpha
        self.grad_cache["slope"] = slope  # all that backward needs
        # f is linear on each side of 0, so f(x) = f'(x)·x
        return x * slope

    def backward(self, dout: torch.Tensor) -> torch.Tensor:
        """dout: (N, *) -> dx: (N, *)"""
        slope = self._cached("slope")
        _check_dout(self, dout, slope.shape, slope.dtype)
        # df/dx = 1 where x > 0, alpha elsewhere (a diagonal Jacobian):
        # dL/dx = dout ⊙ f'(x)
        dx = dout * slope
        return dx

    def __repr__(self) -> str:
        return f"LeakyReLU(alpha={self.alpha})"


class ReLU(LeakyReLU):
    """Rectified linear unit ``f(x) = max(0, x)``: LeakyReLU with alpha = 0."""

    def __init__(self):
        super().__init__(alpha=0.0)

    def forward(self, x: torch.Tensor, **kw) -> torch.Tensor:
        """x: (N, *) -> out: (N, *)"""
        _check_batched(self, x)
        # max(0, x) rather than f'(x)·x, which is 0·(-inf) = NaN at x = -inf
        out = x.clamp_min(0)
        # f'(x) = 1 where x > 0, else 0: the sign of the output
        self.grad_cache["slope"] = out.detach().sign()
        return out

    def __repr__(self) -> str:
        return "ReLU"


class Sigmoid(Layer):
    """Logistic sigmoid: ``σ(x) = 1 / (1 + e^{-x})``."""

    def forward(self, x: torch.Tensor, **kw) -> torch.Tensor:
        """x: (N, *) -> out: (N, *)"""
        _check_batched(self, x)
        # For x -> -inf, exp(-x) overflows to inf and 1/inf = 0: no NaN.
        out = 1 / (1 + torch.exp(-x))
        self.grad_cache["out"] = out.detach()  # σ'(x) is a function of σ(x) alone
        return out

    def backward(self, dout: torch.Tensor) -> torch.Tensor:
        """dout: (N, *) -> dx: (N, *)"""
        out = self._cached("out")
        _check_dout(self, dout, out.shape, out.dtype)
        # dσ/dx = σ(x)(1 - σ(x)):  dL/dx = dout ⊙ σ ⊙ (1 - σ)
        dx = dout * out * (1 - out)
        return dx


class TanH(Layer):
    """Hyperbolic tangent: ``tanh(x) = (e^x - e^{-x}) / (e^x + e^{-x})``."""

    def forward(self, x: torch.Tensor, **kw) -> torch.Tensor:
        """x: (N, *) -> out: (N, *)"""
        _check_batched(self, x)
        # torch.tanh is only the elementwise function (no autograd here); the
        # textbook formula overflows to inf/inf = NaN for |x| > ~710.
        out = torch.tanh(x)
        self.grad_cache["out"] = out.detach()  # tanh'(x) is a function of tanh(x) alone
        return out

    def backward(self, dout: torch.Tensor) -> torch.Tensor:
        """dout: (N, *) -> dx: (N, *)"""
        out = self._cached("out")
        _check_dout(self, dout, out.shape, out.dtype)
        # d tanh/dx = 1 - tanh²(x):  dL/dx = dout ⊙ (1 - out²)
        dx = dout * (1 - out * out)
        return dx


# --------------------------------------------------------------------------
# Linear (fully connected) layer.
# --------------------------------------------------------------------------
class Linear(Layer):
    """Fully connected layer ``Z = X Wᵀ + b``.

    Args:
        in_features: D, size of each input sample.
        out_features: M, size of each output sample.
        wstd: standard deviation of the zero-mean normal the weights are
            drawn from; the bias starts at zero.
        dtype, device: of the parameters (default: torch's default dtype, CPU).
            The input must have the same dtype.
        input_grad: whether ``backward`` computes dL/dX (default True). The
            first layer of a network can skip it: no parameter lies before
            it, and the input batch is data, not something to train.
            With ``input_grad=False``, ``backward`` still adds into ``dw``
            and ``db`` but returns ``None`` (as autograd leaves ``x.grad``
            at ``None`` for an input that does not require a gradient).

    Parameters: ``w`` of shape (M, D) (as ``torch.nn.Linear.weight``) and
    ``b`` of shape (M,), with gradients ``dw`` and ``db``. Gradients
    *accumulate* over backward passes, as in PyTorch, until an optimizer
    zeroes them.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        wstd: float = 0.1,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        input_grad: bool = True,
    ):
        super().__init__()
        for arg, value in (("in_features", in_features),
                           ("out_features", out_features)):
            if type(value) is not int or value < 1:  # bool is not accepted
                raise ValueError(
                    f"Linear: {arg} must be a positive int, got {value!r}"
                )
        if not wstd >= 0:
            raise ValueError(f"Linear: wstd must be >= 0, got {wstd!r}")
        if not isinstance(input_grad, bool):
            raise TypeError(
                f"Linear: input_grad must be True or False, got {input_grad!r}"
            )
        self.in_features = in_features
        self.out_features = out_features
        self.wstd = wstd
        self.input_grad = input_grad

        factory = dict(dtype=dtype, device=device)
        self.w = torch.randn(out_features, in_features, **factory) * wstd
        self.b = torch.zeros(out_features, **factory)
        self.dw = torch.zeros_like(self.w)
        self.db = torch.zeros_like(self.b)

    def params(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(self.w, self.dw), (self.b, self.db)]

    def forward(self, x: torch.Tensor, **kw) -> torch.Tensor:
        """x: (N, D) -> out: (N, M)"""
        self._check_input(x)
        self.grad_cache["x"] = x.detach()  # dL/dW needs the input
        # b + X Wᵀ in one call (a matrix product that adds onto the bias)
        return torch.addmm(self.b, x, self.w.T)

    def backward(self, dout: torch.Tensor) -> torch.Tensor | None:
        """dout: (N, M) -> dx: (N, D); adds into dw (M, D) and db (M,).

        Returns None, computing no dx, if the layer has ``input_grad=False``.
        """
        x = self._cached("x")
        _check_dout(self, dout, torch.Size((x.shape[0], self.out_features)), x.dtype)
        # Accumulate in place: the optimizer holds references to dw and db.
        self.dw.addmm_(dout.T, x)  # dL/dW = doutᵀ X, added into dw
        self.db.add_(dout.sum(dim=0))  # dL/db = Σ_n dout_n
        if not self.input_grad:
            return None
        dx = dout @ self.w  # dL/dX = dout W
        return dx

    def _check_input(self, x) -> None:
        _check_float_tensor(self, "input", x)
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"Linear: expected input of shape (N, {self.in_features}), "
                f"got {tuple(x.shape)}; flatten images first with "
                "x.reshape(len(x), -1)"
            )
        if x.dtype != self.w.dtype:
            raise TypeError(
                f"Linear: the input is {x.dtype} but the parameters are "
                f"{self.w.dtype}; create the layer with dtype={x.dtype}"
            )

    def __repr__(self) -> str:
        no_dx = "" if self.input_grad else ", input_grad=False"
        return (f"Linear(in_features={self.in_features}, "
                f"out_features={self.out_features}{no_dx})")


# --------------------------------------------------------------------------
# Loss.
# --------------------------------------------------------------------------
class CrossEntropyLoss(Layer):
    """Mean cross-entropy of softmax class scores against integer labels.

    ``L = -(1/N) Σ_n log softmax(x_n)[y_n]``, computed with the log-sum-exp
    shift so that scores of any magnitude give a finite loss.
    """

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                **kw) -> torch.Tensor:
        """x: (N, C) class scores, y: (N,) labels in [0, C) -> 0-dim loss."""
        self._check_inputs(x, y)
        # log softmax via log-sum-exp: subtract the row max before exp so
        # that the largest exponent is e^0 = 1 (no overflow, no log(0)).
        shifted = x - x.amax(dim=1, keepdim=True)  # (N, C)
        exp = shifted.exp()
        sum_exp = exp.sum(dim=1, keepdim=True)  # (N, 1), at least 1
        log_probs = shifted - sum_exp.log()  # (N, C)
        # (N, 1): the column index of each label; any integer dtype (uint8
        # labels too) becomes the int64 that indexing needs
        y_col = y.to(torch.int64).unsqueeze(1)
        loss = -log_probs.gather(1, y_col).mean()  # -mean_n log p_{n, y_n}

        if torch.is_grad_enabled() and x.requires_grad:
            # autograd saved exp for this graph's backward: leave it intact
            probs = exp.detach() / sum_exp.detach()
        else:
            probs = exp.div_(sum_exp)  # in place: one (N, C) tensor fewer
        self.grad_cache["probs"] = probs  # softmax(x): (N, C)
        self.grad_cache["y_col"] = y_col
        return loss

    def backward(self, dout: float | torch.Tensor = 1.0) -> torch.Tensor:
        """dout: scalar dL/d(loss), 1.0 for the loss itself -> dx: (N, C)."""
        probs = self._cached("probs")
        y_col = self.grad_cache["y_col"]
        if isinstance(dout, torch.Tensor) and dout.numel() != 1:
            raise ValueError(
                "CrossEntropyLoss.backward: dout must be a scalar, "
                f"got shape {tuple(dout.shape)}"
            )
        n = probs.shape[0]
        # dL/dx = (softmax(x) - onehot(y)) / N, scaled by the upstream dout:
        # subtract 1 at each row's label (a new tensor: probs stays cached)
        dx = probs.scatter_add(1, y_col, probs.new_full(y_col.shape, -1.0))
        dx *= dout / n
        return dx

    def _check_inputs(self, x, y) -> None:
        _check_float_tensor(self, "scores", x)
        if x.dim() != 2:
            raise ValueError(
                "CrossEntropyLoss: scores must have shape (N, C), "
                f"got {tuple(x.shape)}"
            )
        n, c = x.shape
        if n == 0:
            raise ValueError(
                "CrossEntropyLoss: the batch is empty (scores of shape "
                f"{tuple(x.shape)}); the mean loss of no samples is undefined"
            )
        if y is None:
            raise TypeError(
                "CrossEntropyLoss: labels are missing, call loss_fn(scores, y)"
            )
        if not isinstance(y, torch.Tensor):
            raise TypeError(
                "CrossEntropyLoss: labels must be a torch.Tensor, "
                f"got {type(y).__name__}"
            )
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise TypeError(
                "CrossEntropyLoss: labels must be an integer tensor (e.g. int64), "
                f"got dtype {y.dtype}"
            )
        if y.shape != (n,):
            raise ValueError(
                f"CrossEntropyLoss: labels must have shape ({n},) to match "
                f"scores {tuple(x.shape)}, got {tuple(y.shape)}"
            )
        low, high = (int(v) for v in torch.aminmax(y))
        if low < 0 or high >= c:
            raise ValueError(
                f"CrossEntropyLoss: labels must be in [0, {c}) for {c} "
                f"classes, got values from {low} to {high}"
            )


# --------------------------------------------------------------------------
# Dropout.
# --------------------------------------------------------------------------
class Dropout(Layer):
    """Inverted dropout (Srivastava et al., 2014).

    In training mode each unit is zeroed with probability ``p`` and the kept
    ones are scaled by ``1/(1-p)``, so E[out] = x; in evaluation mode the
    layer is the identity.

    Args:
        p: drop probability, 0 <= p < 1.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must satisfy 0 <= p < 1, got {p!r}")
        self.p = float(p)

    def forward(self, x: torch.Tensor, **kw) -> torch.Tensor:
        """x: (N, *) -> out: (N, *)"""
        _check_batched(self, x)
        if self.training_mode:
            keep = torch.rand_like(x) >= self.p  # each unit kept with prob 1-p
            scale = keep.to(x.dtype) / (1 - self.p)  # 0 or 1/(1-p)
        else:
            scale = torch.ones_like(x)  # identity
        self.grad_cache["scale"] = scale
        return x * scale

    def backward(self, dout: torch.Tensor) -> torch.Tensor:
        """dout: (N, *) -> dx: (N, *)"""
        scale = self._cached("scale")
        _check_dout(self, dout, scale.shape, scale.dtype)
        # out = x ⊙ scale, so dL/dx = dout ⊙ scale: zero where dropped
        dx = dout * scale
        return dx

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


# --------------------------------------------------------------------------
# Containers.
# --------------------------------------------------------------------------
class Sequential(Layer):
    """Layers applied one after another; backward runs them in reverse.

    Keyword arguments of ``forward`` (such as ``y=labels``) are passed to
    every layer, so a loss can sit at the end of the sequence.
    """

    def __init__(self, *layers: Layer):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"Sequential: item {i} is a {type(layer).__name__}, "
                    "not an hw2.layers.Layer"
                )
        self.layers = list(layers)

    def forward(self, x: torch.Tensor, **kw) -> torch.Tensor:
        out = x
        for layer in self.layers:
            out = layer(out, **kw)
        return out

    def backward(self, dout: torch.Tensor) -> torch.Tensor | None:
        # The chain rule, one layer at a time, from the output to the input.
        din = dout
        for i in reversed(range(len(self.layers))):
            din = self.layers[i].backward(din)
            if din is None and i > 0:  # input_grad=False, but not at layer 0
                raise RuntimeError(
                    f"Sequential.backward: layer {i} ({self.layers[i]!r}) "
                    "returned no input gradient, but the layers before it "
                    "need one; only the first layer may have input_grad=False"
                )
        return din  # None if the first layer computes no input gradient

    def params(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [pair for layer in self.layers for pair in layer.params()]

    def train(self, mode: bool = True) -> "Sequential":
        super().train(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return Sequential(*self.layers[item])
        return self.layers[item]

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self) -> str:
        lines = [f"  ({i}) {layer!r}".replace("\n", "\n  ")
                 for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"


ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU,
    "lrelu": LeakyReLU,
    "sigmoid": Sigmoid,
    "tanh": TanH,
}
"""Activation names accepted by :class:`MLP` (as in ``hw2.cnn``)."""


def activation_class(activation: str | type[Layer]) -> type[Layer]:
    """The Layer class of an activation name (``ACTIVATIONS``) or class."""
    if isinstance(activation, type) and issubclass(activation, Layer):
        return activation
    if isinstance(activation, str) and activation.lower() in ACTIVATIONS:
        return ACTIVATIONS[activation.lower()]
    raise ValueError(
        f"unknown activation {activation!r}; supported: "
        f"{', '.join(repr(k) for k in ACTIVATIONS)} "
        "or an hw2.layers.Layer subclass"
    )


# Keywords MLP hands to each of its Linear layers.
_MLP_LINEAR_KWARGS = {"wstd", "dtype", "device"}


class MLP(Layer):
    """Multilayer perceptron ``[Linear → Act (→ Dropout)] × H → Linear``.

    Args:
        in_features: D, size of each input sample.
        num_classes: C, number of output scores.
        hidden_features: sizes of the H hidden layers, e.g. ``[100, 50]``.
        activation: ``'relu'``, ``'lrelu'``, ``'sigmoid'``, ``'tanh'`` or a
            Layer class.
        dropout: drop probability after each activation (0: no Dropout layer).
        activation_params: keyword arguments of the activation, e.g.
            ``dict(alpha=0.2)`` for ``'lrelu'``.
        input_grad: whether ``backward`` returns dL/dx (default True). With
            False the first Linear layer skips that product (the largest one
            in the backward pass when D is large) and ``backward`` returns
            None; the parameter gradients are the same. Training needs only
            those: build the model with ``input_grad=False`` to train it.
        **kw: passed to every Linear layer (``wstd``, ``dtype``, ``device``).

    The layers are in ``self.sequence``, a :class:`Sequential`.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden_features=(),
        activation: str | type[Layer] = "relu",
        dropout: float = 0,
        *,
        activation_params: dict | None = None,
        input_grad: bool = True,
        **kw,
    ):
        super().__init__()
        act_cls = activation_class(activation)
        if not 0 <= dropout < 1:
            raise ValueError(
                f"MLP: dropout must satisfy 0 <= dropout < 1, got {dropout!r}"
            )
        unknown = sorted(set(kw) - _MLP_LINEAR_KWARGS)
        if unknown:
            raise TypeError(
                f"MLP: unknown keyword argument(s) {', '.join(unknown)}; extra "
                f"keywords go to every Linear: {', '.join(sorted(_MLP_LINEAR_KWARGS))}"
            )
        if isinstance(hidden_features, (str, bytes)) or not isinstance(
                hidden_features, Iterable):
            raise TypeError(
                f"MLP: hidden_features must be a list of layer widths, e.g. [100, 50] "
                f"(or [] for none), got {hidden_features!r}"
            )
        self.in_features = in_features
        self.num_classes = num_classes
        self.hidden_features = list(hidden_features)

        sizes = [in_features, *self.hidden_features, num_classes]
        # Only the first Linear may skip dL/d(its input): the inputs of the
        # others are activations, through which the chain rule must pass.
        layers: list[Layer] = [
            Linear(sizes[0], sizes[1], input_grad=input_grad, **kw)
        ]
        for d_in, d_out in zip(sizes[1:], sizes[2:]):
            layers.append(act_cls(**(activation_params or {})))
            if dropout > 0:
                layers.append(Dropout(dropout))
            layers.append(Linear(d_in, d_out, **kw))
        self.sequence = Sequential(*layers)

    def forward(self, x: torch.Tensor, **kw) -> torch.Tensor:
        """x: (N, D) -> scores: (N, C)"""
        return self.sequence(x, **kw)

    def backward(self, dout: torch.Tensor) -> torch.Tensor | None:
        """dout: (N, C) -> dx: (N, D), or None if ``input_grad=False``."""
        return self.sequence.backward(dout)

    @property
    def input_grad(self) -> bool:
        """Whether backward returns dL/dx (set by the constructor)."""
        return self.sequence[0].input_grad

    def params(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return self.sequence.params()

    def train(self, mode: bool = True) -> "MLP":
        super().train(mode)
        self.sequence.train(mode)
        return self

    def __repr__(self) -> str:
        return "MLP" + repr(self.sequence).removeprefix("Sequential")
