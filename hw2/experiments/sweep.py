"""Sweeps: the runs of named experiments as independent jobs, and one way to run them.

A sweep is a list of *job specs*, one per run: plain JSON-able dicts
(:meth:`RunConfig.to_dict`) that carry an absolute output folder and a
checkpoint prefix, so any executor can run any job, in any order, anywhere,
and an interrupted run resumes. :func:`run_sweep` hands the jobs that have
no result yet to an executor (:mod:`hw2.experiments.executors`: this machine
or SLURM) and reports what became of them.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol as TypingProtocol, TextIO

from hw2 import _checks
from hw2._io import temp_glob
from hw2.experiments.claims import (Claim, ClaimConflict, RunInterrupted,
                                    check_conflict, remove_if_orphan, stale_after_s,
                                    stop_on_signals, try_claim)
from hw2.experiments.config import RunConfig, result_path, results_dir
from hw2.experiments.grid import (CHECKS, NAMED_RUNS, Experiment, check_runs,
                                  get_protocol, owned, resolve_grid, run_owners)
from hw2.experiments.results import check_output_location, result_state
from hw2.experiments.runner import (build_model, checkpoint_prefix,
                                    legacy_checkpoint_prefix, run_config)

__all__ = [
    "sweep_jobs",
    "RunInterrupted",
    "ClaimConflict",
    "stop_on_signals",
    "run_job",
    "remove_orphan_checkpoint",
    "Run",
    "Outcome",
    "Executor",
    "plan_run",
    "Plan",
    "plan_sweep",
    "run_sweep",
    "error_summary",
]


def sweep_jobs(names, overrides: dict | None = None, *,
               grid: dict[str, Experiment] | str | os.PathLike | None = None,
               protocol: str | None = "gpu",
               seeds: Iterable[int] | None = None) -> list[dict]:
    """The job specs of named experiments (and checks), seed by seed.

    Args:
        names: experiment names (a name or a list), keys of the grid, or names
            of sensitivity checks (:data:`~hw2.experiments.grid.CHECKS`, with the
            book's grid).
        overrides: fields replaced in every run (``{"epochs": 1, "batches": 2}``
            for a smoke run, ``{"out_dir": ...}``).
        grid: another set of experiments (a dict or a grid-file path) instead
            of :data:`hw2.experiments.grid.EXPERIMENTS`.
        protocol: the preset of ``PROTOCOLS`` the runs follow (None: none,
            e.g. for a grid file whose hparams say everything).
        seeds: the seeds every run is trained with (default: the protocol's
            seeds; without a protocol the run's own ``seed``, 42 unless set).
            A check trains its own seeds unless ``seeds`` is given. A ``seed``
            in an experiment's hparams that these seeds (or a ``seed``
            override) would replace is an error, not a silent change.

    Returns:
        One dict per run and seed: all runs of the first seed, then of the
        next. Seed ``s`` of a run goes to ``<folder>/seed<s>/``, where the folder
        is the ``out_dir`` override, else ``results_dir()/<protocol>`` (a check's
        to ``.../checks/<check>/seed<s>/``). A network that two experiments list
        is one job, under the first one's name (:func:`~hw2.experiments.grid.
        run_owners`). Every job has an absolute ``out_dir`` and a ``checkpoints``
        prefix of its own; a ``checkpoints`` override is the start of every
        run's prefix (``<given>.<run>.<hash>``): runs never share a checkpoint.
    """
    experiments = resolve_grid(grid)
    checks = CHECKS if grid is None else {}
    named = NAMED_RUNS if grid is None else {}
    preset = get_protocol(protocol)  # an unknown name fails here
    overrides = dict(overrides or {})
    # bad override names or values fail here, once, before any run is planned
    if overrides:
        RunConfig.from_dict({"run_name": "override-check", **overrides})
    if isinstance(names, str):
        names = [names]
    names = list(names)
    unknown = [n for n in names
               if n not in experiments and n not in checks and n not in named]
    if unknown:
        known = ", ".join([*experiments, *checks, *named])
        raise ValueError(f"unknown experiment(s): {', '.join(unknown)}; known: {known}")
    if not names:
        raise ValueError("name at least one experiment")
    if seeds is not None:
        seeds = [_checks.non_negative_int("seeds", s) for s in seeds]
        if not seeds:
            raise ValueError("--seeds: name at least one seed")
        if "seed" in overrides:
            raise ValueError("give either a seed (-s) or seeds (--seeds), not both")
    if "seed" in overrides and overrides["seed"] is None:
        raise ValueError("a sweep trains fixed seeds (its folders are named after "
                         "them): give -s N or --seeds N ...")
    base = overrides.pop("out_dir", None)
    folder = (Path(base).expanduser() if base is not None
              else results_dir() / preset.name if preset else results_dir()).resolve()
    owners = run_owners(experiments, protocol, overrides)

    def planned(name: str) -> list[tuple[RunConfig, list[int], Path]]:
        """``(cfg, its seeds, its folder)`` for each run of an experiment or check."""
        own = seeds or ([overrides["seed"]] if "seed" in overrides else
                        list(preset.seeds) if preset else None)
        if name in experiments:
            source = ("--seeds" if seeds else "-s" if "seed" in overrides else
                      f"the protocol {protocol}")
            _check_grid_seed(grid, experiments[name], own, source)
            return [(owned(cfg, owners), own or [cfg.seed], folder)
                    for cfg in experiments[name].runs(overrides, protocol=protocol)]
        if name in named:
            return [(cfg, own or [cfg.seed], folder)
                    for cfg in named[name].runs(overrides, protocol=protocol)]
        check = checks[name]
        return [(cfg, seeds or list(check.seeds), folder / "checks" / check.name)
                for cfg in check_runs(check, protocol, overrides, experiments)]

    plans = [(name, plan) for name in dict.fromkeys(names) for plan in planned(name)]
    jobs, seen = [], {}
    for seed in dict.fromkeys(s for _, (_, own, _) in plans for s in own):  # in order
        if seed is None:
            raise ValueError("a sweep trains fixed seeds (its folders are named after "
                             "them): the grid's seed is null; give --seeds N ...")
        for listed_by, (cfg, own, where) in plans:
            if seed not in own:
                continue
            cfg = cfg.replace(seed=seed, out_dir=os.fspath(where / f"seed{seed}"))
            # A network two experiments list is one job; a grid that lists one
            # point twice is left for plan_sweep to refuse.
            if seen.get(result_path(cfg), listed_by) != listed_by:
                continue
            seen[result_path(cfg)] = listed_by
            own_ckpt = checkpoint_prefix(cfg)  # <out_dir>/.<run>.<hash>.ckpt
            if cfg.checkpoints is not None:
                given = Path(cfg.checkpoints).expanduser().resolve()
                own_ckpt = given.with_name(f"{given.name}{own_ckpt.name}")
            cfg = cfg.replace(checkpoints=os.fspath(own_ckpt))
            jobs.append(cfg.to_dict())
    if not jobs:
        raise ValueError(f"{', '.join(names)}: no runs to plan")
    return jobs


def _check_grid_seed(grid, experiment: Experiment, own: list[int] | None,
                     source: str) -> None:
    """Refuse a seed in an experiment's hparams that other seeds would replace.

    The seeds a sweep trains come from ``--seeds``, ``-s``, the protocol, or
    else the run's own seed (its hparams' ``seed``). A ``seed`` in the hparams
    that the first three (``own``, given by ``source``) would silently replace
    is an error naming the grid file and the key; the same one seed is no
    conflict.
    """
    if "seed" not in experiment.hparams or own is None:
        return
    seed = experiment.hparams["seed"]
    if own == [seed]:
        return
    where = (f"grid file {grid}: " if isinstance(grid, (str, os.PathLike)) else "")
    raise ValueError(
        f"{where}experiment {experiment.name!r} sets seed {seed!r} in its hparams, but "
        f"{source} gives the seed{'s' if len(own) > 1 else ''} "
        f"{' '.join(map(str, own))}: remove the key seed "
        f"from the hparams, or train that seed with --seeds {seed}")


#: Seconds between looks at a run another process is training.
POLL_S = 10.0


def run_job(spec: dict | RunConfig, *, skip_existing: bool = True, data=None,
            verbose: bool | None = False, wait: bool = True,
            log=lambda text: None) -> Path | None:
    """Run one job spec, unless its valid result exists or another process trains it.

    1. A run whose valid result file exists is skipped; a result of other
       settings is refused (``ValueError``), never replaced.
    2. The run is claimed (:mod:`hw2.experiments.claims`). If another live
       process holds the claim, this waits for that run's result (or for the
       claim to go stale, and then takes it over); with ``wait=False`` it
       returns None at once. A live claim of other settings is refused
       (:class:`~hw2.experiments.claims.ClaimConflict`).
    3. The run trains while a thread beats the claim's heartbeat, and the
       claim is released whatever happens, SIGTERM included
       (:func:`stop_on_signals`).

    Independent of every other job: the spec holds the whole configuration.
    Returns the result file's path (None: claimed elsewhere, not waited for).
    """
    cfg = spec if isinstance(spec, RunConfig) else RunConfig.from_dict(spec)

    def finished() -> bool:
        state, reason = result_state(cfg)
        if state == "other":
            raise ValueError(f"{reason}; a sweep never replaces it: remove the file or "
                             f"choose another folder (-o)")
        return skip_existing and state == "done"

    said = False
    with stop_on_signals():
        while True:
            if finished():
                return result_path(cfg)
            claim = try_claim(cfg)
            if isinstance(claim, Claim):
                break
            if not wait:
                return None
            if not said:
                log(f"{cfg.file_stem}: being trained by {claim}; waiting for its "
                    f"result")
                said = True
            time.sleep(POLL_S)
        claim.start_heartbeat()
        try:
            if finished():  # finished while we looked
                return result_path(cfg)
            return run_config(cfg, data=data, verbose=verbose, heartbeat=claim.touch)
        finally:
            claim.release()


def remove_orphan_checkpoint(cfg: RunConfig) -> bool:
    """Delete the checkpoint (and temporary files) a finished run left behind.

    A run killed between writing its result and deleting its checkpoint
    leaves the checkpoint; it belongs to nothing once the result exists.
    """
    if not cfg.checkpoints:
        return False
    ckpt = Path(f"{cfg.checkpoints}.pt")
    legacy = Path(f"{legacy_checkpoint_prefix(cfg).resolve()}.pt")
    removed = False
    for path in (ckpt, legacy, *ckpt.parent.glob(temp_glob(ckpt.name))):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed = True
    return removed


# --------------------------------------------------------------------------
# Runs, outcomes, executors
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """One run of a sweep: the job spec and where its files go.

    Attributes:
        name: the run's label (:func:`run_label`, ``seed42/exp1_1_L2_K32``).
        spec: the job spec (a dict of :meth:`RunConfig.to_dict`).
        result: the result file.
        checkpoint: the Trainer's checkpoint prefix (the file is ``<prefix>.pt``).
    """

    name: str
    spec: Any
    result: Path
    checkpoint: Path


@dataclass
class Outcome:
    """What became of one run.

    ``state`` is 'done', 'failed' or 'submitted' (not waited for).
    """

    run: Run
    state: str
    message: str = ""
    log: Path | None = None
    job_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "done"


class Executor(TypingProtocol):
    """What :func:`run_sweep` needs of an executor."""

    name: str
    stream: TextIO | None

    def execute(self, runs: list[Run]) -> list[Outcome]: ...


def run_label(result: Path) -> str:
    """A run's name in a sweep's messages: its file's stem, with the seed folder.

    ``seed43/exp1_1_L8_K32``, ``checks/float32/seed42/exp1_1_L2_K32``: unique
    within a sweep, as its result files are.
    """
    parts = [result.stem]
    folder = result.parent
    if re.fullmatch(r"seed\d+", folder.name):
        parts.insert(0, folder.name)
        if folder.parent.parent.name == "checks":
            parts[:0] = ["checks", folder.parent.name]
    return "/".join(parts)


def plan_run(spec: dict | RunConfig) -> Run:
    """The :class:`Run` of one job spec.

    A spec without a checkpoint prefix gets the one :func:`sweep_jobs` would
    give it, so a run resumes the same checkpoint whichever executor runs it.
    """
    cfg = spec if isinstance(spec, RunConfig) else RunConfig.from_dict(spec)
    if not cfg.checkpoints:
        cfg = cfg.replace(checkpoints=os.fspath(checkpoint_prefix(cfg).resolve()))
    result = result_path(cfg).resolve()
    return Run(name=run_label(result), spec=cfg.to_dict(), result=result,
               checkpoint=Path(cfg.checkpoints))


def error_summary(message: str) -> str:
    """The line of a traceback (or message) that names the error.

    For example ``DataError: no data``.
    """
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
    for line in lines[frames[-1] + 1 if frames else 0:]:
        if not line.startswith((" ", "\t")):
            return line.strip()
    return lines[-1].strip() if lines else ""


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


@dataclass
class Plan:
    """What a sweep will do: its runs, and the state of each one's result file.

    Attributes:
        runs: every run, in order.
        states: ``{run name: (state, reason)}`` (see
            :func:`~hw2.experiments.results.result_state`).
        notes: what planning found and did (a corrupt file to replace, a
            leftover checkpoint or claim removed).
    """

    runs: list[Run]
    states: dict[str, tuple[str, str]]
    notes: list[str]

    @property
    def todo(self) -> list[Run]:
        return [r for r in self.runs if self.states[r.name][0] != "done"]


def plan_sweep(jobs: Iterable[dict | RunConfig]) -> Plan:
    """Every check a sweep makes before it trains anything; the dry run's too.

    1. Plan every run; two runs writing one result file are an error.
    2. Read each result file: a valid one of this run is done; a corrupt one
       is trained again (and replaced); a valid one of *other settings* is an
       error (a sweep never replaces another's results).
    3. A run another live sweep trains with other settings is refused
       (:class:`~hw2.experiments.claims.ClaimConflict`). Every run to train
       builds its model and runs it on a dummy batch
       (:func:`~hw2.experiments.runner.build_model`), and its files must be
       writable, fit their names and the disk
       (:func:`~hw2.experiments.results.check_output_location`).
    4. Finished runs lose the checkpoint and the claim a kill left behind.

    Raises:
        ValueError: the first problem, named.
    """
    stale_after_s()  # a bad $HW2_CLAIM_STALE_S fails here, before any training
    runs = [plan_run(spec) for spec in jobs]
    names = [r.result for r in runs]
    dup = sorted({str(n) for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"the sweep holds several runs writing the same result file: "
                         f"{', '.join(dup)}")
    states, notes = {}, []
    for run in runs:
        cfg = RunConfig.from_dict(run.spec)
        state, reason = states[run.name] = result_state(cfg)
        if state == "other":
            raise ValueError(f"{reason}; a sweep never replaces it: remove the file or "
                             f"choose another folder (-o)")
        if state == "invalid":
            notes.append(f"{run.name}: {reason}; training it again (the file is "
                         f"replaced when the run finishes)")
        if state != "done":
            check_conflict(cfg)  # another live sweep trains it with other settings
            model = build_model(cfg)  # a bad model configuration fails here
            check_output_location(cfg, sum(p.numel() for p in model.parameters()))
            continue
        if remove_orphan_checkpoint(cfg):
            notes.append(f"{run.name}: removed the checkpoint its finished run left "
                         f"behind")
        if remove_if_orphan(cfg):
            notes.append(f"{run.name}: removed the claim its finished run left behind")
    return Plan(runs, states, notes)


def run_sweep(jobs: Iterable[dict | RunConfig], executor: Executor, *,
              stream: TextIO | None = None) -> int:
    """Run a sweep's job specs with an executor.

    1. Plan it (:func:`plan_sweep`): every check before any training.
    2. Hand the runs without a result to ``executor.execute`` and print one
       line per failure (its error and its log) and a summary.

    Returns:
        The exit code: 0 when all results exist.
    """
    stream = stream if stream is not None else sys.stderr
    if getattr(executor, "stream", None) is None:
        executor.stream = stream
    plan = plan_sweep(jobs)
    runs, todo = plan.runs, plan.todo
    for note in plan.notes:
        print(f"[{executor.name}] {note}", file=stream)
    print(f"[{executor.name}] sweep of {_runs(len(runs))}: "
          f"{len(runs) - len(todo)} already have result files (skipped), "
          f"{len(todo)} to run", file=stream, flush=True)
    outcomes = executor.execute(todo)
    failed = [o for o in outcomes if o.state == "failed"]
    submitted = [o for o in outcomes if o.state == "submitted"]
    done = len(outcomes) - len(failed) - len(submitted)
    if failed:
        print(f"[{executor.name}] {len(failed)} of {_runs(len(runs))} failed:",
              file=stream)
        for o in failed:
            print(f"  {o.run.name}: {error_summary(o.message)}", file=stream)
            if o.log:
                print(f"      log: {o.log}", file=stream)
        print(f"[{executor.name}] run the same command again to resume the failed runs "
              f"from their last finished epoch", file=stream)
    summary = (f"[{executor.name}] {done + len(runs) - len(todo)} of "
               f"{_runs(len(runs))} have results")
    if submitted:
        summary += f", {len(submitted)} submitted"
    print(summary, file=stream, flush=True)
    return 1 if failed else 0
