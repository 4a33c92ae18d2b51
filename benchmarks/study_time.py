"""How long the whole architecture study takes under a protocol, measured epoch by epoch.

For every run of the grid under ``--protocol``, this builds the run exactly as
the runner does (``hw2.experiments``' builders: same model, same data splits
on the device, same trainer) and times ``--epochs`` epochs of it: a training
pass over the run's training images, and a scoring pass over its validation
and test images. A run's projected time is its median epoch times the
protocol's epoch count; the study's is the sum over its 34 runs. Nothing is
written to ``results/``.

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
    p.add_argument("--only", nargs="+", metavar="NAME", help="experiments to time (default: all)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--json", metavar="FILE",
                   help="also write the measurements to FILE (the experiments chapter reads "
                        "benchmarks/study_time_<protocol>.json)")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be at least 1, got {args.epochs}")
    names = args.only or list(ex.EXPERIMENTS)
    unknown = [n for n in names if n not in ex.EXPERIMENTS]
    if unknown:
        p.error(f"unknown experiment(s) {', '.join(unknown)}; known: {', '.join(ex.EXPERIMENTS)}")

    data = load_cifar10()
    device = ex.resolve_device(args.device)
    print(f"protocol {args.protocol} on {ex.device_name(device)} ({device}), "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}", flush=True)
    projected, epochs_s = {}, {}
    for name in names:
        for cfg in ex.EXPERIMENTS[name].runs(protocol=args.protocol):
            cfg = cfg.replace(device=args.device)
            seconds = epoch_seconds(cfg, data, args.epochs)
            projected[cfg.file_stem] = statistics.median(seconds) * cfg.epochs
            epochs_s[cfg.file_stem] = seconds
            print(f"{cfg.file_stem:28s} epoch {statistics.median(seconds):7.1f} s -> "
                  f"{cfg.epochs} epochs {projected[cfg.file_stem]:7.0f} s", flush=True)
    total = sum(projected.values())
    slowest = sorted(projected.items(), key=lambda kv: -kv[1])[:3]
    print(f"{len(projected)} runs: projected {total:,.0f} s = {total / 3600:.2f} h; slowest: "
          + ", ".join(f"{k} {v:,.0f} s" for k, v in slowest))
    if args.json:
        record = {"protocol": args.protocol, "device": ex.device_name(device),
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
