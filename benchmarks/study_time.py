"""How long the whole architecture study takes under a protocol, measured epoch by epoch.

For every network of the study's sweep under ``--protocol`` -- the five
experiments and the two controls, once per seed, and the sensitivity checks
(:data:`hw2.experiments.CHECKS`) -- this builds the run exactly as the runner
does (``hw2.experiments``' builders: same model, same data splits on the
device, same trainer, same numerics) and times ``--epochs`` epochs of it: a
training pass over the run's training images, and a scoring pass over its
validation and test images. Each distinct configuration is timed once (its
seeds only change which images it sees); a run's projected time is its
median epoch times its epoch count, and the study's is the sum over every run
and seed of the sweep. Nothing is written to ``results/``.

This is how the ``cpu`` protocol was sized, and how to check it on another
machine without training the whole study::

    HW2_CIFAR10=/path/to/cifar10-jpeg.tar.xz python benchmarks/study_time.py --protocol cpu
    python benchmarks/study_time.py --protocol cpu --only exp1_1 --epochs 2

On a machine shared with other work, the measured times include that work;
the result files of a sweep record the same epoch times, as it ran.
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


def epoch_seconds(cfg, data, epochs: int) -> list[float]:
    """Wall seconds of ``epochs`` epochs (train, then score validation and test) of a run."""
    device = ex.resolve_device(cfg.device)
    ex.configure_backends(device)
    torch.manual_seed(cfg.seed or 0)
    model = ex.build_model(cfg)
    dl_train, dl_val, dl_test = ex.build_batches(cfg, data, device, cfg.seed or 0)
    trainer = ex.build_trainer(cfg, model, device, len(dl_train))
    seconds = []
    with ex.flush_denormals(device):  # as the runner trains
        for _ in range(epochs):
            start = time.perf_counter()
            trainer.train_epoch(dl_train, verbose=False)
            for dl in (dl_val, dl_test):
                if dl is not None:
                    trainer.test_epoch(dl, verbose=False)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - start)
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--protocol", choices=list(ex.PROTOCOLS), default="cpu")
    p.add_argument("--epochs", type=int, default=1, help="epochs timed per run (median used)")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="experiments or checks to time (default: the study, its "
                        "controls and checks)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--json", metavar="FILE",
                   help="also write the measurements to FILE (the experiments chapter reads "
                        "benchmarks/study_time_<protocol>.json)")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be at least 1, got {args.epochs}")
    names = args.only or [*ex.STUDY, *ex.CONTROLS, *ex.CHECKS]
    unknown = [n for n in names if n not in ex.EXPERIMENTS and n not in ex.CHECKS]
    if unknown:
        p.error(f"unknown experiment(s) {', '.join(unknown)}; known: "
                f"{', '.join([*ex.EXPERIMENTS, *ex.CHECKS])}")

    data = load_cifar10()
    device = ex.resolve_device(args.device)
    print(f"protocol {args.protocol} on {ex.device_name(device)} ({device}), "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, bf16 flags: "
          f"{' '.join(ex.device.cpu_bf16_flags() or []) or 'none'}", flush=True)
    jobs = ex.sweep_jobs(names, {"device": args.device}, protocol=args.protocol)
    projected, epochs_s, timed = {}, {}, {}
    for spec in jobs:
        cfg = ex.RunConfig.from_dict(spec)
        key = json.dumps({k: v for k, v in cfg.identity().items()
                          if k not in ("seed", "epochs")}, sort_keys=True)
        label = ex.sweep.run_label(ex.result_path(cfg))
        if key not in timed:
            timed[key] = epoch_seconds(cfg.replace(seed=42), data, args.epochs)
            epochs_s[label] = timed[key]
            print(f"{label:44s} epoch {statistics.median(timed[key]):7.1f} s", flush=True)
        projected[label] = statistics.median(timed[key]) * cfg.epochs
    total = sum(projected.values())
    slowest = sorted(projected.items(), key=lambda kv: -kv[1])[:3]
    print(f"{len(projected)} runs ({len(timed)} configurations): projected "
          f"{total:,.0f} s = {total / 3600:.2f} h; slowest: "
          + ", ".join(f"{k} {v:,.0f} s" for k, v in slowest))
    if args.json:
        record = {"command": " ".join(["python", f"benchmarks/{Path(__file__).name}",
                                       *sys.argv[1:]]),
                  "protocol": args.protocol, "device": ex.device_name(device),
                  "bf16_flags": ex.device.cpu_bf16_flags() or [],
                  "experiments": names,
                  "threads": torch.get_num_threads(), "torch": torch.__version__,
                  "host": platform.node(), "epochs_timed": args.epochs,
                  "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(
                      timespec="seconds"),
                  "epoch_s": epochs_s, "projected_run_s": projected, "projected_total_s": total}
        text = json.dumps(record, indent=1) + "\n"
        atomic_write(args.json, lambda f: f.write(text), text=True)  # never half-written
    return 0


if __name__ == "__main__":
    sys.exit(main())
