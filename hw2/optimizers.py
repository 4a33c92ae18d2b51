"""SGD-family optimizers written from scratch, in the style of ``torch.optim``.

An optimizer here works on the ``(param, grad)`` pairs that
``hw2.layers.Layer.params()`` returns: the backward pass of a layer fills
``grad`` in place, and ``step()`` updates ``param`` in place from it. The
gradient tensors are never replaced, so the layers keep writing into the same
storage the optimizer reads from.

Every class docstring gives the update rule and the exact ``torch.optim``
configuration it corresponds to; ``tests/test_optimizers.py`` checks each
correspondence over 1000 steps in float64.

Notation: θ a parameter, ∇L its gradient, η the learning rate, λ the L2
regularisation strength (the gradient of ``λ/2 ‖θ‖²`` is ``λθ``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from hw2 import _checks
from hw2._checks import FLOAT32_MAX

__all__ = ["Hyper", "Optimizer", "VanillaSGD", "MomentumSGD", "RMSProp", "Adam"]

ParamPair = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class Hyper:
    """How one hyperparameter is checked: a real number in an interval.

    Each optimizer names its hyperparameters once, in ``hyperparameters``
    (``{"learn_rate": Hyper(low=0), ...}``, as ``torch.optim`` names them in
    ``defaults``): the constructor, ``load_state_dict`` and ``repr`` all read
    that one specification. ``pair=True`` is a pair of such numbers (Adam's
    ``betas``).
    """

    low: float = 0.0
    high: float = FLOAT32_MAX
    high_open: bool = False
    pair: bool = False

    def check(self, name: str, value):
        """``value`` checked (a float, or a tuple of two).

        Raises:
            TypeError: not a real number (or a pair), naming ``name``.
            ValueError: outside the interval, naming ``name`` and the interval.
        """
        if not self.pair:
            return _checks.real_in(name, value, self.low, self.high,
                                   high_open=self.high_open, type_error=TypeError)
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            raise ValueError(f"{name} must be a pair ({name}[0], {name}[1]), got "
                             f"{value!r}")
        return tuple(Hyper(self.low, self.high, self.high_open).check(f"{name}[{i}]", v)
                     for i, v in enumerate(value))


class Optimizer:
    """Base class: holds the ``(param, grad)`` pairs and per-parameter state.

    Subclasses specify their hyperparameters once, in ``hyperparameters``
    (name → :class:`Hyper`), pass their values to ``__init__``, and implement
    ``update``, which changes one parameter in place. ``step`` calls it under
    ``torch.no_grad()`` for every pair. (A subclass may instead override
    ``step`` itself, as in the original assignment.)

    Args:
        params: the ``(param, grad)`` pairs to optimise, e.g.
            ``model.params()`` of an ``hw2.layers`` model. Each pair holds two
            tensors of the same shape.
        **hyper: the values of the subclass's ``hyperparameters``, checked and
            set as attributes.
    """

    #: Each hyperparameter's check, by name: what ``__init__`` takes and sets,
    #: what ``state_dict`` saves and ``load_state_dict`` checks again.
    hyperparameters: dict[str, Hyper] = {}
    #: The L2 strength λ of ``_regularized_grad`` (a hyperparameter of every
    #: optimizer of this module; 0 for one that does not take it).
    reg: float = 0.0

    def __init__(self, params: Iterable[ParamPair], **hyper):
        if type(self).update is Optimizer.update and type(self).step is Optimizer.step:
            raise TypeError(
                f"{type(self).__name__} is abstract: a subclass of Optimizer must "
                "implement update(p, dp, state) or step()"
            )
        if isinstance(params, Tensor) or not isinstance(params, Iterable):
            raise TypeError(
                f"params must be a list of (param, grad) tensor pairs, "
                f"got {type(params).__name__}"
            )
        params = list(params)
        if not params:
            raise ValueError("params is empty: the optimizer has nothing to optimize")
        for i, pair in enumerate(params):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2
                    and all(isinstance(t, Tensor) for t in pair)):
                raise TypeError(
                    f"params[{i}] must be a (param, grad) pair of tensors, "
                    f"got {pair!r:.80}"
                )
            p, dp = pair
            if p.shape != dp.shape:
                raise ValueError(
                    f"params[{i}]: param shape {tuple(p.shape)} differs from "
                    f"grad shape {tuple(dp.shape)}"
                )
            if not (p.is_floating_point() and dp.is_floating_point()):
                raise TypeError(
                    f"params[{i}]: parameters and gradients must be floating-point "
                    f"tensors (a step moves them by fractions), got {p.dtype} and "
                    f"{dp.dtype}"
                )
        self._params: list[ParamPair] = [(p, dp) for p, dp in params]
        #: Per-parameter state, keyed by the parameter's index in ``params``.
        self.state: dict[int, dict[str, Any]] = {}
        self._set_hyperparameters(hyper)

    def _set_hyperparameters(self, values: dict[str, Any]) -> None:
        """Check every hyperparameter's value against its :class:`Hyper`, then set."""
        unknown = sorted(set(values) - set(self.hyperparameters))
        missing = sorted(set(self.hyperparameters) - set(values))
        if unknown or missing:
            raise TypeError(f"{type(self).__name__} has the hyperparameters "
                            f"{', '.join(self.hyperparameters) or 'none'}; got "
                            f"{', '.join(sorted(values)) or 'none'}")
        checked = {name: spec.check(name, values[name])
                   for name, spec in self.hyperparameters.items()}
        self._check_together(checked)
        for name, value in checked.items():
            setattr(self, name, value)

    def _check_together(self, checked: dict[str, Any]) -> None:
        """Checks that involve several hyperparameters (none here; see Adam).

        Args:
            checked: every hyperparameter's value, each already checked alone.
        """

    @property
    def params(self) -> list[ParamPair]:
        """The ``(param, grad)`` pairs, in the order they were given."""
        return list(self._params)

    def zero_grad(self) -> None:
        """Set every gradient to zero, in place (the layers accumulate into them)."""
        for _, dp in self._params:
            dp.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """Update every parameter once from its current gradient."""
        for i, (p, dp) in enumerate(self._params):
            self.update(p, dp, self.state.setdefault(i, {}))

    def update(self, p: Tensor, dp: Tensor, state: dict[str, Any]) -> None:
        """Update parameter ``p`` in place from its gradient ``dp``.

        Args:
            p: the parameter, any shape.
            dp: its gradient, the same shape.
            state: this parameter's state (empty on the first step); the
                method creates what it needs on first use.
        """
        raise NotImplementedError

    def _regularized_grad(self, p: Tensor, dp: Tensor) -> Tensor:
        """g = ∇L + λθ (a new tensor: the layer's gradient is left untouched)."""
        return dp.add(p, alpha=self.reg) if self.reg != 0 else dp

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and per-parameter state (tensors cloned), for checkpoints."""
        return {
            "hyperparameters": {
                name: getattr(self, name) for name in self.hyperparameters
            },
            "state": {
                i: {k: v.clone() if isinstance(v, Tensor) else v for k, v in s.items()}
                for i, s in self.state.items()
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved.

        State tensors move to their parameter's device.
        """
        if (not isinstance(state_dict, dict)
                or not isinstance(state_dict.get("hyperparameters"), dict)
                or not isinstance(state_dict.get("state"), dict)):
            keys = (sorted(state_dict) if isinstance(state_dict, dict)
                    else type(state_dict).__name__)
            raise ValueError(
                f"{type(self).__name__}.load_state_dict needs the dict of "
                f"state_dict(), with 'hyperparameters' and 'state'; got {keys}"
            )
        hyper = state_dict["hyperparameters"]
        unknown = set(hyper) - set(self.hyperparameters)
        if unknown:
            raise ValueError(f"state_dict has hyperparameters {sorted(unknown)} that "
                             f"{type(self).__name__} does not have")
        state = {}
        for i, s in state_dict["state"].items():
            i = int(i)
            if not 0 <= i < len(self._params):
                raise ValueError(
                    f"state_dict holds state for parameter {i}, but the optimizer "
                    f"has only {len(self._params)} parameters"
                )
            p = self._params[i][0]
            state[i] = {}
            for k, v in s.items():
                if isinstance(v, Tensor):
                    if v.shape != p.shape and v.dim() > 0:
                        raise ValueError(
                            f"state_dict: state {k!r} of parameter {i} has shape "
                            f"{tuple(v.shape)}, the parameter {tuple(p.shape)}"
                        )
                    dtype = p.dtype if v.is_floating_point() else v.dtype
                    v = v.to(device=p.device, dtype=dtype, copy=True)
                state[i][k] = v
        # The constructor's checks, on the restored hyperparameters.
        current = {name: getattr(self, name) for name in self.hyperparameters}
        self._set_hyperparameters({**current, **hyper})
        self.state = state

    def __repr__(self) -> str:
        hyper = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.hyperparameters)
        return f"{type(self).__name__}({len(self._params)} params, {hyper})"


class VanillaSGD(Optimizer):
    r"""Stochastic gradient descent with L2 regularisation.

    .. math::
        \theta \leftarrow \theta - \eta\,(\nabla L + \lambda\theta)

    Same as ``torch.optim.SGD(params, lr=η, weight_decay=λ)`` (momentum 0).

    Args:
        params: the ``(param, grad)`` pairs (see :class:`Optimizer`).
        learn_rate: η ≥ 0.
        reg: λ ≥ 0, the L2 regularisation strength.
    """

    hyperparameters = {"learn_rate": Hyper(), "reg": Hyper()}

    def __init__(self, params, learn_rate: float = 1e-3, reg: float = 1e-3):
        super().__init__(params, learn_rate=learn_rate, reg=reg)

    def update(self, p, dp, state):
        g = self._regularized_grad(p, dp)  # g = ∇L + λθ
        p.add_(g, alpha=-self.learn_rate)  # θ ← θ − η g


class MomentumSGD(Optimizer):
    r"""SGD with (heavy-ball) momentum and L2 regularisation.

    .. math::
        v \leftarrow \mu v - \eta\,(\nabla L + \lambda\theta), \qquad
        \theta \leftarrow \theta + v, \qquad v_0 = 0.

    ``torch.optim.SGD(params, lr=η, momentum=μ, weight_decay=λ)`` (dampening
    0, no Nesterov) keeps a buffer ``b ← μb + g`` and steps ``θ ← θ − ηb``.
    With a constant η the two are the same algorithm: ``v = −η b`` at every
    step, so the parameters agree exactly (up to rounding). If η changes
    during training they differ: torch applies the new η to the whole buffer,
    this class only to the new gradient.

    Args:
        params: the ``(param, grad)`` pairs (see :class:`Optimizer`).
        learn_rate: η ≥ 0.
        reg: λ ≥ 0, the L2 regularisation strength.
        momentum: μ in [0, 1), the fraction of the velocity kept each step.
    """

    hyperparameters = {"learn_rate": Hyper(), "reg": Hyper(),
                       "momentum": Hyper(high=1, high_open=True)}

    def __init__(self, params, learn_rate: float = 1e-3, reg: float = 1e-3,
                 momentum: float = 0.9):
        super().__init__(params, learn_rate=learn_rate, reg=reg, momentum=momentum)

    def update(self, p, dp, state):
        g = self._regularized_grad(p, dp)  # g = ∇L + λθ
        if "velocity" not in state:
            state["velocity"] = torch.zeros_like(p)
        v = state["velocity"]
        v.mul_(self.momentum).add_(g, alpha=-self.learn_rate)  # v ← μv − η g
        p.add_(v)  # θ ← θ + v


class RMSProp(Optimizer):
    r"""RMSProp: divide each gradient entry by a running RMS of its history.

    .. math::
        g = \nabla L + \lambda\theta, \qquad
        r \leftarrow \gamma r + (1-\gamma)\, g \odot g, \qquad
        \theta \leftarrow \theta - \eta\, \frac{g}{\sqrt{r + \varepsilon}},
        \qquad r_0 = 0.

    Here ε sits *inside* the square root (as in the original assignment).
    ``torch.optim.RMSprop(params, lr=η, alpha=γ, eps=ε', weight_decay=λ)``
    puts it outside, ``θ ← θ − η g / (√r + ε')``. The two agree exactly when
    ε = ε' = 0 (that is how the tests compare them); with ε > 0 they differ
    only where r is comparable to ε (inside) or √r to ε' (outside).

    Args:
        params: the ``(param, grad)`` pairs (see :class:`Optimizer`).
        learn_rate: η ≥ 0.
        reg: λ ≥ 0, the L2 regularisation strength.
        decay: γ in [0, 1), the weight of the old running mean of g².
        eps: ε ≥ 0, added to r under the square root.
    """

    hyperparameters = {"learn_rate": Hyper(), "reg": Hyper(),
                       "decay": Hyper(high=1, high_open=True), "eps": Hyper()}

    def __init__(self, params, learn_rate: float = 1e-3, reg: float = 1e-3,
                 decay: float = 0.99, eps: float = 1e-8):
        super().__init__(params, learn_rate=learn_rate, reg=reg, decay=decay, eps=eps)

    def update(self, p, dp, state):
        g = self._regularized_grad(p, dp)  # g = ∇L + λθ
        if "square_avg" not in state:
            state["square_avg"] = torch.zeros_like(p)
        r = state["square_avg"]
        r.mul_(self.decay).addcmul_(g, g, value=1 - self.decay)  # r ← γr + (1−γ) g²
        denom = r.add(self.eps).sqrt_()  # √(r+ε)
        p.addcdiv_(g, denom, value=-self.learn_rate)  # θ ← θ − η g/√(r+ε)


class Adam(Optimizer):
    r"""Adam: momentum on g and RMSProp scaling, both bias-corrected.

    .. math::
        g &= \nabla L + \lambda\theta, \qquad t \leftarrow t + 1, \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        s \leftarrow \beta_2 s + (1-\beta_2)\, g \odot g, \\
        \hat m &= \frac{m}{1-\beta_1^t}, \qquad \hat s = \frac{s}{1-\beta_2^t}, \qquad
        \theta \leftarrow \theta - \eta\, \frac{\hat m}{\sqrt{\hat s} + \varepsilon},

    with m₀ = s₀ = 0 and ε *outside* the square root, as in Kingma & Ba (2015)
    and in ``torch.optim.Adam(params, lr=η, betas=(β₁, β₂), eps=ε,
    weight_decay=λ)``, which this matches exactly. The L2 term is coupled
    (added to the gradient, then rescaled); AdamW's decoupled decay is a
    different algorithm.

    Args:
        params: the ``(param, grad)`` pairs (see :class:`Optimizer`).
        learn_rate: η ≥ 0.
        reg: λ ≥ 0, the L2 regularisation strength.
        betas: (β₁, β₂), each in [0, 1): decay of the running means of g and
            g².
        eps: ε ≥ 0, added to √ŝ.
    """

    hyperparameters = {"learn_rate": Hyper(), "reg": Hyper(),
                       "betas": Hyper(high=1, high_open=True, pair=True),
                       "eps": Hyper()}

    def __init__(self, params, learn_rate: float = 1e-3, reg: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, learn_rate=learn_rate, reg=reg, betas=betas, eps=eps)

    def _check_together(self, checked):
        """The largest step size, η/(1−β₁) at t = 1, must fit in float32.

        Raises:
            ValueError: it does not, naming η, β₁ and the limit.
        """
        learn_rate, beta1 = checked["learn_rate"], checked["betas"][0]
        if learn_rate / (1 - beta1) > FLOAT32_MAX:
            raise ValueError(
                f"Adam: learn_rate/(1 - betas[0]), the first step's size, must be at "
                f"most {FLOAT32_MAX:g} (the largest float32); got learn_rate="
                f"{learn_rate:g}, betas[0]={beta1:g}, so {learn_rate / (1 - beta1):g}")

    def update(self, p, dp, state):
        beta1, beta2 = self.betas
        g = self._regularized_grad(p, dp)  # g = ∇L + λθ
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t, m, s = state["step"], state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(g, alpha=1 - beta1)  # m ← β₁m + (1−β₁) g
        s.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # s ← β₂s + (1−β₂) g²
        bias1, bias2 = 1 - beta1 ** t, 1 - beta2 ** t
        denom = (s.sqrt() / math.sqrt(bias2)).add_(self.eps)  # √ŝ + ε
        p.addcdiv_(m, denom, value=-self.learn_rate / bias1)  # θ ← θ − η m̂/(√ŝ + ε)
