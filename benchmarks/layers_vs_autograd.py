"""One training step of the from-scratch MLP versus the same network in torch.nn + autograd.

Both sides do the same math from the same initial weights: an MLP
3072 → 512 → 512 → 512 → 10 with ReLU, mean cross-entropy, plain SGD (no
regularisation, the same learning rate), batch of 128, float32, on the CPU
with the same number of threads. One step = zero the gradients, forward,
loss, backward, update.

- hw2:      hw2.layers.MLP + hw2.layers.CrossEntropyLoss + hw2.optimizers.VanillaSGD
- autograd: torch.nn.Sequential + torch.nn.functional.cross_entropy + torch.optim.SGD
            (``zero_grad()`` with its default ``set_to_none=True``)

The one piece of work hw2 does and autograd does not is zeroing the gradient
tensors: hw2's layers own their gradients and accumulate into them in place
(``Layer.params()`` hands the same tensors to the optimizer for the life of
the model), so ``VanillaSGD.zero_grad()`` writes zeros over 7.4 MB every step,
while autograd drops its gradients and allocates new ones. The medians of each
phase (zero_grad, forward, backward, update) are printed to show it.

A training step needs no gradient with respect to the input batch, and
autograd computes none for an input that does not require a gradient. The
same work on the hw2 side is ``MLP(..., input_grad=False)``, whose first
Linear layer skips dL/dX (a 128×512 @ 512×3072 product). So two pairs are
timed:

- ``hw2``    vs ``autograd``:    a plain training step (no dL/dX);
- ``hw2+dX`` vs ``autograd+dX``: dL/dX too (``MLP(..., input_grad=True)``,
  the default, against an input with ``requires_grad=True``).

For each thread count (``torch.set_num_threads``) the script first checks
that three steps of each side give the same parameters (and the same dL/dX),
then times the four steps interleaved, in rotating order so that the load of
a shared machine affects all alike, and prints the medians. The last lines
are the ratios hw2 time / autograd time (below 1: the hand-written
backward is faster): the ratio of the medians, and in brackets the median
and quartiles of the ratios within each round (a round times each variant
once, so both sides of a ratio ran within a few milliseconds of each other).

Usage::

    python benchmarks/layers_vs_autograd.py [--threads 1 2] [--steps 200] [--warmup 20]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import hw2.layers as layers
import hw2.optimizers as optimizers

SIZES = (3072, 512, 512, 512, 10)  # CIFAR-10 image → 3 hidden layers → 10 classes
BATCH = 128
LEARN_RATE = 1e-2
VARIANTS = ("hw2", "autograd", "hw2+dX", "autograd+dX")


def build_pair(input_grad: bool, seed: int = 0):
    """The hw2 MLP and a torch.nn copy of it with the same weights."""
    torch.manual_seed(seed)
    ours = layers.MLP(SIZES[0], SIZES[-1], list(SIZES[1:-1]), wstd=0.05,
                      input_grad=input_grad)
    linears = [layer for layer in ours.sequence if isinstance(layer, layers.Linear)]
    modules = []
    for layer in linears:
        lin = nn.Linear(layer.in_features, layer.out_features)
        with torch.no_grad():
            lin.weight.copy_(layer.w)
            lin.bias.copy_(layer.b)
        modules += [lin, nn.ReLU()]
    theirs = nn.Sequential(*modules[:-1])  # no activation after the last Linear
    return ours, theirs


PHASES = ("zero_grad", "forward", "backward", "update")


def make_steps(ours, theirs):
    """step(x, y, clock) -> (loss, dL/dx or None) for each side.

    ``clock`` is a list; the step appends a time stamp (time.perf_counter)
    before and after each of its PHASES.
    """
    loss_fn = layers.CrossEntropyLoss()
    opt_ours = optimizers.VanillaSGD(ours.params(), learn_rate=LEARN_RATE, reg=0)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=LEARN_RATE)
    now = time.perf_counter

    def step_ours(x, y, clock):
        clock.append(now())
        opt_ours.zero_grad()
        clock.append(now())
        loss = loss_fn(ours(x), y)
        clock.append(now())
        dx = ours.backward(loss_fn.backward())  # None with input_grad=False
        clock.append(now())
        opt_ours.step()
        clock.append(now())
        return loss, dx

    def step_theirs(x, y, clock):
        clock.append(now())
        opt_theirs.zero_grad()
        x.grad = None
        clock.append(now())
        loss = nn.functional.cross_entropy(theirs(x), y)
        clock.append(now())
        loss.backward()  # fills x.grad only if x.requires_grad
        clock.append(now())
        opt_theirs.step()
        clock.append(now())
        return loss, x.grad

    return step_ours, step_theirs


def check_same_math(input_grad: bool) -> float:
    """Max |Δ| of the parameters (and dL/dX) after three steps of each on the same batches."""
    ours, theirs = build_pair(input_grad)
    step_ours, step_theirs = make_steps(ours, theirs)
    gen = torch.Generator().manual_seed(1)
    diff = 0.0
    for _ in range(3):
        x = torch.randn(BATCH, SIZES[0], generator=gen)
        y = torch.randint(0, SIZES[-1], (BATCH,), generator=gen)
        _, dx_ours = step_ours(x, y, [])
        _, dx_theirs = step_theirs(x.clone().requires_grad_(input_grad), y, [])
        assert (dx_ours is None) == (dx_theirs is None) == (not input_grad)
        if input_grad:
            diff = max(diff, (dx_ours - dx_theirs).abs().max().item())
    return max(diff, *((p - q).abs().max().item()
                       for (p, _), q in zip(ours.params(), theirs.parameters())))


def benchmark(threads: int, steps: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per step of each variant in every round, timed interleaved.

    Also prints the median time of each phase of a step (PHASES).
    """
    torch.set_num_threads(threads)
    for input_grad in (False, True):
        diff = check_same_math(input_grad)
        assert diff < 1e-5, (f"the two networks disagree after 3 steps "
                             f"(input_grad={input_grad}): max |Δ| = {diff:.2e}")

    gen = torch.Generator().manual_seed(2)
    x = torch.randn(BATCH, SIZES[0], generator=gen)
    y = torch.randint(0, SIZES[-1], (BATCH,), generator=gen)
    hw2, autograd = make_steps(*build_pair(input_grad=False))
    hw2_dx, autograd_dx = make_steps(*build_pair(input_grad=True))
    runs = {  # name -> (step, its input)
        "hw2": (hw2, x),
        "autograd": (autograd, x),
        "hw2+dX": (hw2_dx, x),
        "autograd+dX": (autograd_dx, x.clone().requires_grad_(True)),
    }
    for _ in range(warmup):
        for step, inputs in runs.values():
            step(inputs, y, [])

    times = {name: [] for name in VARIANTS}
    phases = {name: {phase: [] for phase in PHASES} for name in VARIANTS}
    for i in range(steps):
        # Rotate which variant goes first so none always follows another.
        order = VARIANTS[i % 4:] + VARIANTS[:i % 4]
        for name in order:
            step, inputs = runs[name]
            clock = []
            step(inputs, y, clock)
            times[name].append(clock[-1] - clock[0])
            for phase, start, end in zip(PHASES, clock, clock[1:]):
                phases[name][phase].append(end - start)

    print(f"\n{threads} thread(s): same math, max |Δ| after 3 steps < 1e-5")
    for name in VARIANTS:
        t = times[name]
        q = statistics.quantiles(t, n=4)
        print(f"{name:>12}: median {statistics.median(t) * 1e3:7.2f} ms/step "
              f"(IQR {q[0] * 1e3:.2f}–{q[2] * 1e3:.2f} ms, {len(t)} steps)  = "
              + " + ".join(f"{phase} {statistics.median(phases[name][phase]) * 1e3:.2f}"
                           for phase in PHASES))
    return times


def ratio_line(times: dict[str, list[float]], ours: str, theirs: str) -> str:
    """Ratio of the medians; median [quartiles] of the per-round ratios."""
    overall = statistics.median(times[ours]) / statistics.median(times[theirs])
    paired = [a / b for a, b in zip(times[ours], times[theirs])]
    q1, q2, q3 = statistics.quantiles(paired, n=4)
    return f"{overall:.3f}  (per round: {q2:.3f} [{q1:.3f}–{q3:.3f}])"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch.set_num_threads values to run (default: 1 2)")
    parser.add_argument("--steps", type=int, default=200, help="timed steps of each (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first (default 20)")
    args = parser.parse_args()

    print(f"MLP {' → '.join(map(str, SIZES))}, ReLU, batch {BATCH}, float32, SGD, "
          f"torch {torch.__version__}")
    times = {threads: benchmark(threads, args.steps, args.warmup) for threads in args.threads}

    print("\nhw2 time / autograd time, training step (no dL/dX) and with dL/dX:")
    for threads, t in times.items():
        print(f"{threads} thread(s): hw2 / autograd       = {ratio_line(t, 'hw2', 'autograd')}")
        print(f"{threads} thread(s): hw2+dX / autograd+dX = {ratio_line(t, 'hw2+dX', 'autograd+dX')}")


if __name__ == "__main__":
    main()
