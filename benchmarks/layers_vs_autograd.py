"""One training step of the from-scratch MLP versus the same network in torch.nn + autograd.

Both sides do the same math from the same initial weights: an MLP
3072 → 512 → 512 → 512 → 10 with ReLU, mean cross-entropy, plain SGD (no
regularisation), batch of 128, float32, on the CPU with the same number of
threads. One step = zero the gradients, forward, loss, backward, update.

- hw2:      hw2.layers.MLP + hw2.layers.CrossEntropyLoss + hw2.optimizers.VanillaSGD
- autograd: torch.nn.Sequential + torch.nn.functional.cross_entropy + torch.optim.SGD

``hw2``'s backward always returns dL/dX for the input batch as well (that is
the Layer contract), while autograd skips it unless the input requires a
gradient. So autograd is timed twice: as a plain training step, and with
``X.requires_grad_(True)`` ("autograd+dX"), which is exactly the work hw2 does.

The script first checks that one step of each gives the same parameters,
then times the steps interleaved (hw2, autograd, autograd+dX, in rotating
order) so that machine load affects all alike, and prints the medians and the
ratios hw2 time / autograd time (below 1: the hand-written backward is faster).

Usage::

    python benchmarks/layers_vs_autograd.py [--threads 1] [--steps 200] [--warmup 20]
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


def build_pair(seed: int = 0):
    """The hw2 MLP and a torch.nn copy of it with the same weights."""
    torch.manual_seed(seed)
    ours = layers.MLP(SIZES[0], SIZES[-1], list(SIZES[1:-1]), wstd=0.05)
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


def make_steps(ours, theirs):
    loss_fn = layers.CrossEntropyLoss()
    opt_ours = optimizers.VanillaSGD(ours.params(), learn_rate=LEARN_RATE, reg=0)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=LEARN_RATE)

    def step_ours(x, y):
        opt_ours.zero_grad()
        loss = loss_fn(ours(x), y)
        ours.backward(loss_fn.backward())
        opt_ours.step()
        return loss

    def step_theirs(x, y):
        opt_theirs.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(theirs(x), y)
        loss.backward()
        opt_theirs.step()
        return loss

    return step_ours, step_theirs


def check_same_math() -> float:
    """Max |Δ| between the parameters after three steps of each on the same batches."""
    ours, theirs = build_pair()
    step_ours, step_theirs = make_steps(ours, theirs)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(BATCH, SIZES[0], generator=gen)
        y = torch.randint(0, SIZES[-1], (BATCH,), generator=gen)
        step_ours(x, y)
        step_theirs(x, y)
    return max((p - q).abs().max().item()
               for (p, _), q in zip(ours.params(), theirs.parameters()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--steps", type=int, default=200, help="timed steps of each (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first (default 20)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    diff = check_same_math()
    assert diff < 1e-5, f"the two networks disagree after 3 steps: max |Δ| = {diff:.2e}"

    ours, theirs = build_pair()
    step_ours, step_theirs = make_steps(ours, theirs)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(BATCH, SIZES[0], generator=gen)
    y = torch.randint(0, SIZES[-1], (BATCH,), generator=gen)
    for _ in range(args.warmup):
        step_ours(x, y)
        step_theirs(x, y)
        step_theirs(x.clone().requires_grad_(True), y)

    x_grad = x.clone().requires_grad_(True)
    order = [("hw2", step_ours, x), ("autograd", step_theirs, x), ("autograd+dX", step_theirs, x_grad)]
    times = {name: [] for name, _, _ in order}
    for i in range(args.steps):
        # Rotate which side goes first so none always follows another.
        for name, step, inputs in order[i % 3:] + order[:i % 3]:
            start = time.perf_counter()
            step(inputs, y)
            times[name].append(time.perf_counter() - start)

    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"MLP {' → '.join(map(str, SIZES))}, batch {BATCH}, float32, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}")
    print(f"same math: max |Δparam| after 3 steps = {diff:.1e}")
    for name, t in times.items():
        q = statistics.quantiles(t, n=4)
        print(f"{name:>11}: median {med[name] * 1e3:7.2f} ms/step "
              f"(IQR {q[0] * 1e3:.2f}–{q[2] * 1e3:.2f} ms, {len(t)} steps)")
    print(f"ratio hw2 / autograd     = {med['hw2'] / med['autograd']:.3f}  (training step)")
    print(f"ratio hw2 / autograd+dX  = {med['hw2'] / med['autograd+dX']:.3f}  (same work: dL/dX too)")


if __name__ == "__main__":
    main()
