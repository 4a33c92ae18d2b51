"""bfloat16 autocast against float32 on a CPU: training-step speed of the study's nets.

For each network named (a run of the grid under ``--protocol``), two trainers
are built exactly as the runner builds them (same model, same batches,
channels-last memory, Adam, the protocol's batch size), one computing in
float32 and one under bfloat16 autocast (``RunConfig.cpu_bf16``). They take
turns: one timed segment of ``--batches`` training steps each per round, after
a warm-up round, so a slow moment of a shared machine hits both alike. Each
round gives a ratio (float32 seconds / bfloat16 seconds); the median ratio is
reported with the median seconds per step of each, and the GFLOP/s of each
(the FLOPs of one training step counted by ``torch.utils.flop_counter``).

    HW2_CIFAR10=/path/to/cifar10-jpeg.tar.xz python benchmarks/cpu_numerics.py
    python benchmarks/cpu_numerics.py --runs exp1_1_L8_K64 exp2_L6_K32-64-128 --rounds 7

The CPU's bf16 flags (``avx512_bf16``, ``amx_bf16`` in ``/proc/cpuinfo``) are
printed and written with the numbers (``--json``): without them bf16 is
emulated and usually slower than float32.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from hw2 import experiments as ex
from hw2._io import atomic_write
from hw2.data import load_cifar10
from hw2.experiments.device import cpu_bf16_flags

#: The nets the issue's measurements named, and the study's slowest and deepest.
DEFAULT_RUNS = ("exp1_1_L8_K64", "exp2_L6_K32-64-128", "exp1_2_L4_K256",
                "exp1_4_L8_K64-128-256", "exp1_2_L8_K256", "exp1_1_L16_K32")


def grid_runs(protocol: str) -> dict:
    """``{file stem: RunConfig}`` of every run of the grid under ``protocol``."""
    return {cfg.file_stem: cfg for exp in ex.EXPERIMENTS.values()
            for cfg in exp.runs(protocol=protocol)}


def step_flops(trainer, batch) -> int:
    """FLOPs of one training step (forward, loss, backward), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        trainer.train_batch(batch)
    return counter.get_total_flops()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--protocol", choices=list(ex.PROTOCOLS), default="cpu")
    p.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS), metavar="RUN",
                   help="file stems of grid runs (default: %(default)s)")
    p.add_argument("--batches", type=int, default=3, help="training steps per segment")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (median used)")
    p.add_argument("--json", metavar="FILE", help="also write the numbers to FILE")
    args = p.parse_args(argv)
    if args.batches < 1 or args.rounds < 1:
        p.error("--batches and --rounds must be at least 1")
    runs = grid_runs(args.protocol)
    unknown = [r for r in args.runs if r not in runs]
    if unknown:
        p.error(f"unknown run(s) {', '.join(unknown)}; e.g. {', '.join(list(runs)[:3])}")

    data = load_cifar10()
    device = torch.device("cpu")
    flags = cpu_bf16_flags() or []
    print(f"{ex.device_name(device)}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; bf16 flags: {' '.join(flags) or 'none'}", flush=True)
    rows = {}
    with ex.flush_denormals(device):  # as the runner trains
        for name in args.runs:
            trainers, batches = {}, {}
            for label, bf16 in (("float32", False), ("bfloat16", True)):
                cfg = runs[name].replace(device="cpu", cpu_bf16=bf16)
                torch.manual_seed(0)
                model = ex.build_model(cfg)
                dl_train, _, _ = ex.build_batches(cfg, data, device, 0)
                trainers[label] = ex.build_trainer(cfg, model, device, len(dl_train))
                batches[label] = [b for _, b in zip(range(args.batches), dl_train)]
            flops = step_flops(trainers["float32"], batches["float32"][0])
            seconds = {label: [] for label in trainers}
            for round_ in range(args.rounds + 1):  # round 0 warms up
                for label, trainer in trainers.items():
                    start = time.perf_counter()
                    for batch in batches[label]:
                        trainer.train_batch(batch)
                    if round_:
                        seconds[label].append((time.perf_counter() - start)
                                              / args.batches)
            ratios = [a / b for a, b in zip(seconds["float32"], seconds["bfloat16"])]
            step = {label: statistics.median(s) for label, s in seconds.items()}
            rows[name] = {"ratio": statistics.median(ratios), "ratios": ratios,
                          "step_s": step, "step_flops": flops,
                          "gflop_per_s": {k: flops / v / 1e9 for k, v in step.items()}}
            print(f"{name:28s} float32 {step['float32']:.3f} s/step "
                  f"({rows[name]['gflop_per_s']['float32']:.0f} GFLOP/s), bfloat16 "
                  f"{step['bfloat16']:.3f} s/step "
                  f"({rows[name]['gflop_per_s']['bfloat16']:.0f} GFLOP/s): "
                  f"{rows[name]['ratio']:.2f}x", flush=True)
    ratios = [r["ratio"] for r in rows.values()]
    print(f"bfloat16 / float32 speed-up: {min(ratios):.2f}x to {max(ratios):.2f}x, "
          f"median {statistics.median(ratios):.2f}x over {len(rows)} nets")
    if args.json:
        record = {"command": " ".join(["python", f"benchmarks/{Path(__file__).name}",
                                       *sys.argv[1:]]),
                  "protocol": args.protocol, "device": ex.device_name(device),
                  "bf16_flags": flags, "threads": torch.get_num_threads(),
                  "torch": torch.__version__, "host": platform.node(),
                  "batches": args.batches, "rounds": args.rounds,
                  "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(
                      timespec="seconds"),
                  "runs": rows}
        text = json.dumps(record, indent=1) + "\n"
        atomic_write(args.json, lambda f: f.write(text), text=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
