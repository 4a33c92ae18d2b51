"""The command line: ``python -m hw2.experiments {run-exp,sweep,list}``.

Every option of a run is generated from a field of :class:`RunConfig`: its
type, its default and its help text (the field's metadata). The original
assignment's short flags (-n -o -s -K -L -P -H -M) stay. Bad input is one
line on stderr and exit code 2; a run that fails is exit code 1. SIGTERM
(``kill``, SLURM) and SIGINT (Ctrl-C) stop a run at once: its claim is
released, its last checkpoint stays, one line says so, and the exit code is
143 (SIGTERM) or 130 (SIGINT); the same command resumes.

    python -m hw2.experiments run-exp -n NAME -K 32 64 -L 2 -P 2 -H 100 -M resnet
    python -m hw2.experiments sweep exp1_1 exp1_2 --protocol cpu [--dry-run]
    python -m hw2.experiments list
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys

from hw2._io import WriteError
from hw2.experiments.claims import Claim, stale_after_s, try_claim
from hw2.experiments.config import (LR_SCHEDULES, MODEL_TYPES, OPTIMIZERS, PROTOCOLS,
                                    RunConfig, result_path)
from hw2.experiments.executors import LocalExecutor
from hw2.experiments.grid import get_protocol, resolve_grid
from hw2.experiments.results import check_output_location, summary_line
from hw2.experiments.runner import build_model, run_config
from hw2.experiments.sweep import (RunInterrupted, plan_sweep, run_sweep,
                                   stop_on_signals, sweep_jobs)

__all__ = ["build_parser", "run_options", "field_help", "executor_from_args", "main"]

#: The original assignment's short flags.
SHORT_FLAGS = {"run_name": "-n", "out_dir": "-o", "seed": "-s",
               "filters_per_layer": "-K", "layers_per_block": "-L", "pool_every": "-P",
               "hidden_dims": "-H", "model_type": "-M", "device": "-d"}
CHOICES = {"model_type": list(MODEL_TYPES), "optimizer": list(OPTIMIZERS),
           "lr_schedule": list(LR_SCHEDULES), "protocol": list(PROTOCOLS)}
#: Options run-exp requires, as the original assignment's command line does.
REQUIRED = ("run_name", "filters_per_layer", "layers_per_block")
METAVARS = {"filters_per_layer": "K", "layers_per_block": "L", "pool_every": "P",
            "hidden_dims": "H", "model_kw": "KEY=VALUE"}


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, but errors are one line on stderr and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


# --------------------------------------------------------------------------
# Options generated from RunConfig
# --------------------------------------------------------------------------

def field_help() -> dict[str, str]:
    """``{field: its help text}``, from each :class:`RunConfig` field's metadata."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(RunConfig)}


def _typed(kind: str, flag: str):
    """An argparse ``type`` for a field's annotation, with errors that name the flag."""
    def parse(text: str):
        if kind.endswith("| None") and text.lower() in ("none", "all", "full"):
            return None
        base = kind.split("|")[0].strip()
        try:
            if base == "int":
                return int(text)
            if base == "float":
                return float(text)
        except ValueError:
            what = "an integer" if base == "int" else "a number"
            none = " (or none)" if "| None" in kind else ""
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}{none}") from None
        return text

    parse.__name__ = flag
    return parse


def _key_value(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value  # a bare string
    return key, parsed


def run_options(parser: argparse.ArgumentParser, *, with_name: bool) -> None:
    """Add one option per :class:`RunConfig` field to ``parser``.

    Options that are not given stay out of the parsed namespace (so a sweep
    tells overrides from defaults); the help shows every default.
    """
    helps = field_help()
    group = parser.add_argument_group("run configuration (RunConfig fields)")
    for f in dataclasses.fields(RunConfig):
        if f.name == "run_name" and not with_name:
            continue
        long = "--" + f.name.replace("_", "-")
        flags = [SHORT_FLAGS[f.name], long] if f.name in SHORT_FLAGS else [long]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None  # run_name: required
        kind = str(f.type)
        kw: dict = dict(dest=f.name, default=argparse.SUPPRESS)
        shown = "none" if default is None else (
            " ".join(map(str, default)) if isinstance(default, list) else default)
        help_text = helps.get(f.name, "")
        if with_name and f.name in REQUIRED:
            kw.update(required=True)
            help_text += " (required)"
        elif f.name != "run_name":
            help_text += f" (default: {shown if shown != {} else 'none'})"
        if kind == "bool":
            kw.update(action=argparse.BooleanOptionalAction)
        elif kind == "list[int]":
            kw.update(type=_typed("int", long),
                      nargs="*" if f.name == "hidden_dims" else "+")
        elif kind.startswith("dict"):
            kw.update(type=_key_value, nargs="+")
        else:
            kw.update(type=_typed(kind, long))
        if f.name in CHOICES:
            kw.update(choices=CHOICES[f.name])
        if f.name in METAVARS:
            kw.update(metavar=METAVARS[f.name])
        group.add_argument(*flags, help=help_text.replace("%", "%%"), **kw)


def _config_from_args(args: argparse.Namespace) -> dict:
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    spec = {k: v for k, v in vars(args).items() if k in fields}
    if "model_kw" in spec:
        spec["model_kw"] = dict(spec["model_kw"] or [])
    return spec


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m hw2.experiments``."""
    p = _ArgumentParser(prog="python -m hw2.experiments",
                        description="Train the architecture experiments of Part 3 "
                                    "and write JSON results.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)

    run = sub.add_parser("run-exp", help="run one configuration",
                         description="Train one configuration and write its result "
                                     "file. --protocol starts from a preset; flags "
                                     "override it.")
    run_options(run, with_name=True)

    sw = sub.add_parser("sweep", help="run named experiments of the grid (skips "
                                      "finished runs)")
    sw.add_argument("experiments", nargs="+", metavar="NAME",
                    help="e.g. exp1_1 exp1_2 (see 'list')")
    sw.add_argument("--grid-file", help="JSON file of experiments to use instead of "
                                        "the book's grid")
    sw.add_argument("--set", type=_key_value, nargs="+", metavar="KEY=VALUE",
                    default=[], help="override any RunConfig field, JSON values")
    sw.add_argument("--seeds", type=int, nargs="+", metavar="N", default=None,
                    help="train every run once per seed, each seed in its folder "
                         "seed<N>/ (default: the protocol's seeds, 42 43 44; without a "
                         "protocol the run's seed)")
    sw.add_argument("--dry-run", action="store_true",
                    help="list the runs and whether they are done")
    sw.add_argument("--gpus", type=int, default=None,
                    help="local worker processes, one per GPU (default: every "
                         "visible GPU)")
    _executor_options(sw)
    run_options(sw, with_name=False)

    ls = sub.add_parser("list", help="list the experiments and their runs")
    ls.add_argument("--grid-file", help="JSON file of experiments to use instead of "
                                        "the book's grid")
    ls.add_argument("--protocol", choices=[*PROTOCOLS, "none"], default=None,
                    help="the preset the runs follow (default: gpu; none with "
                         "--grid-file)")
    return p


def _executor_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("where the runs execute")
    g.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: this machine, one worker per GPU when there are "
                        "several (default); slurm: a job array on a SLURM cluster, "
                        "through submitit")
    g.add_argument("--slurm-config", metavar="FILE",
                   help="TOML or JSON file of SLURM options "
                        "(tools/slurm/sweep.example.toml); the flags below override it")
    g.add_argument("--slurm-partition", metavar="NAME", help="partition to submit to")
    g.add_argument("--slurm-time", type=int, metavar="MIN",
                   help="time limit per run, minutes")
    g.add_argument("--slurm-cpus", type=int, metavar="N", help="CPUs per run")
    g.add_argument("--slurm-gpus", type=int, metavar="N", help="GPUs per run")
    g.add_argument("--slurm-mem-gb", type=float, metavar="GB", help="memory per run")
    g.add_argument("--slurm-log-dir", metavar="DIR",
                   help="job logs and submitit's files (default: <out dir>/slurm_logs; "
                        "on a cluster a folder every node can read)")
    g.add_argument("--no-wait", action="store_true",
                   help="submit and return; running the same command again waits for "
                        "the jobs")


def executor_from_args(args: argparse.Namespace):
    """The executor the sweep's flags describe; a ValueError names a bad value."""
    executor = getattr(args, "executor", None) or "local"
    if executor == "local":
        return LocalExecutor(gpus=getattr(args, "gpus", None))
    if executor != "slurm":
        raise ValueError(f"unknown executor {executor!r}; choose local or slurm")
    from hw2.experiments.slurm import SlurmExecutor, SlurmOptions

    config = getattr(args, "slurm_config", None)
    options = SlurmOptions.from_file(config) if config else SlurmOptions()
    options = options.updated({
        "partition": getattr(args, "slurm_partition", None),
        "time_min": getattr(args, "slurm_time", None),
        "cpus_per_task": getattr(args, "slurm_cpus", None),
        "gpus_per_node": getattr(args, "slurm_gpus", None),
        "mem_gb": getattr(args, "slurm_mem_gb", None),
        "log_dir": getattr(args, "slurm_log_dir", None),
    }, source="the command line")
    return SlurmExecutor(options, wait=not getattr(args, "no_wait", False))


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------

def _cmd_run(args) -> int:
    spec = _config_from_args(args)
    preset = get_protocol(spec.get("protocol"))
    if preset is not None:
        spec = {**preset.settings, **spec}
    cfg = RunConfig.from_dict(spec)
    stale_after_s()  # a bad $HW2_CLAIM_STALE_S fails here
    # A bad model or output location fails before the claim (and any data); the
    # claim keeps a second identical command from training into the same files.
    model = build_model(cfg)
    check_output_location(cfg, sum(p.numel() for p in model.parameters()))
    folder = result_path(cfg).parent
    made_folder = not folder.exists()
    with stop_on_signals():
        claim = try_claim(cfg)
        if not isinstance(claim, Claim):
            raise ValueError(f"{result_path(cfg)} is being trained by another process "
                             f"({claim}); wait for it, or stop it first")
        claim.start_heartbeat()
        try:
            path = run_config(cfg, verbose=None, heartbeat=claim.touch)
        finally:
            claim.release()
            if made_folder and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()  # a run that failed leaves no empty folder behind
    print(f"wrote {path}: {summary_line(path)}")
    return 0


def _cmd_sweep(args) -> int:
    overrides = _config_from_args(args)
    overrides.update(dict(args.set))
    protocol = overrides.pop("protocol", None) or (None if args.grid_file else "gpu")
    jobs = sweep_jobs(args.experiments, overrides, grid=args.grid_file,
                      protocol=protocol, seeds=args.seeds)
    if not args.dry_run:
        return run_sweep(jobs, executor_from_args(args), stream=sys.stdout)
    plan = plan_sweep(jobs)  # every check the sweep itself makes
    for note in plan.notes:
        print(note)
    shown = {"done": "done", "missing": "todo", "invalid": "bad "}
    for run in plan.runs:
        cfg = RunConfig.from_dict(run.spec)
        sizes = (f"{cfg.train_size or 'all'}/{cfg.val_size or 0}/"
                 f"{cfg.test_size or 'all'}")
        print(f"{shown[plan.states[run.name][0]]}  {run.name:36s} {cfg.model_type:6s} "
              f"channels={len(cfg.channels)} P={cfg.resolved_pool_every} "
              f"epochs={cfg.epochs} bs={cfg.bs_train} lr={cfg.lr:g} "
              f"train/val/test={sizes}")
    folders = sorted({str(r.result.parent) for r in plan.runs})
    print(f"{len(plan.runs)} runs ({len(plan.todo)} to train) -> "
          f"{folders[0] if len(folders) == 1 else f'{len(folders)} folders'}")
    return 0


def _cmd_list(args) -> int:
    protocol = args.protocol or (None if args.grid_file else "gpu")
    protocol = None if protocol == "none" else protocol
    for name, exp in resolve_grid(args.grid_file).items():
        runs = exp.runs(protocol=protocol)
        print(f"{name}: {exp.title} ({len(runs)} runs)")
        for cfg in runs:
            print(f"    {cfg.file_stem:28s} P={cfg.resolved_pool_every}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    commands = {"run-exp": _cmd_run, "sweep": _cmd_sweep, "list": _cmd_list}
    command = commands[args.command]
    # For the whole command (planning, loading the data, waiting on workers), not
    # only while a run trains: SIGTERM or SIGINT at any moment gives the one line.
    with stop_on_signals():
        return _run_command(command, args)


def _run_command(command, args) -> int:
    """``command(args)``'s exit code; an error or a signal is one line on stderr."""
    try:
        return command(args)
    except ValueError as e:  # bad configuration: one line, exit code 2, no traceback
        print(f"python -m hw2.experiments: error: {e}", file=sys.stderr)
        return 2
    except WriteError as e:  # a full disk, say: the file and the disk, one line
        print(f"python -m hw2.experiments: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:
        from hw2.data import DataError

        if not isinstance(e, DataError):
            raise
        # the message says how to provide the data
        print(f"python -m hw2.experiments: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, RunInterrupted) as e:
        what = (signal.Signals(e.signum).name if isinstance(e, RunInterrupted)
                else "SIGINT (Ctrl-C)")
        print(f"python -m hw2.experiments: stopped by {what}; any claim is released, "
              f"and runs with checkpoints resume from their last finished epoch when "
              f"restarted", file=sys.stderr)
        return e.exit_code if isinstance(e, RunInterrupted) else 128 + signal.SIGINT
