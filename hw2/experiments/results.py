"""Result files: their format, writing them, reading and checking them.

One run writes one JSON file, ``<out_dir>/<run_name>_L<L>_K<k1>-<k2>....json``
(``results/README.md`` documents every field). It is written atomically
(complete or absent) as strict JSON: a diverged run's NaN losses are written
as ``null`` and the run is marked ``"diverged": true``.

:func:`load_experiment` also reads the original course's files, whose
``train_loss`` / ``test_loss`` hold one loss per *batch*. Every problem with a
file is an :class:`ExperimentFileError` that names the file and the field.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

from hw2 import _checks
from hw2._io import (atomic_write, create_in_folder, describe_bytes, free_bytes,
                     read_json, repo_root)
from hw2.experiments.config import RunConfig, result_path, results_dir, study_folder
from hw2.experiments.grid import (Experiment, get_protocol, owned, resolve_grid,
                                  run_owners)

__all__ = [
    "RESULT_FORMAT",
    "ExperimentFileError",
    "ExperimentFileWarning",
    "write_result",
    "shown_path",
    "code_provenance",
    "load_experiment",
    "load_record",
    "result_state",
    "identity_differences",
    "run_bytes",
    "check_output_location",
    "experiment_status",
    "summary_line",
]

RESULT_FORMAT = "hw2-experiment/1"
#: The largest result file read (the book's are about 10 kB).
RESULT_MAX_BYTES = 16 << 20
_CURVES = ("train_loss", "train_acc", "test_loss", "test_acc")
_VAL_CURVES = ("val_loss", "val_acc")


class ExperimentFileError(ValueError):
    """A result file that cannot be read or is malformed, named in the message."""


class ExperimentFileWarning(UserWarning):
    """A result file that is read, but says something that does not add up."""


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------

def _strict(obj):
    """``obj`` with every non-finite float (NaN, ±inf) replaced by None: strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def write_result(path: Path, record: dict) -> None:
    """``record`` as indented strict JSON (non-finite numbers as null), atomically."""
    def write(f):
        json.dump(_strict(record), f, indent=1, allow_nan=False)
        f.write("\n")
    atomic_write(path, write, text=True)  # 0644: results are meant to be shared


def shown_path(path) -> str | None:
    """A path as a result file records it.

    Relative to the repository (or the current folder) when inside it, so no
    machine's folder names are stored.
    """
    if path is None:
        return None
    resolved = Path(path).expanduser().resolve()
    for base in (repo_root(), Path.cwd()):
        if resolved.is_relative_to(base):
            return resolved.relative_to(base).as_posix() or "."
    return os.fspath(path)


@functools.lru_cache(maxsize=1)
def code_provenance() -> dict[str, Any]:
    """Which code produced a result: a hash of the ``hw2`` sources, and the git commit.

    ``source_sha256`` hashes every ``hw2/**/*.py`` (path and content), so it
    identifies the code with or without git. In a git checkout, ``commit`` is
    ``HEAD`` and ``dirty`` says whether tracked files differed from it.
    Computed once per process, when the first run starts: a sweep records the
    code it imported, even if files change while it trains.
    """
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for file in sorted(package.rglob("*.py")):
        digest.update(file.relative_to(package).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
    info: dict[str, Any] = {"source_sha256": digest.hexdigest()}

    def git(*args):
        return subprocess.run(["git", "-C", os.fspath(package.parent), *args],
                              capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()

    try:
        info["commit"] = git("rev-parse", "HEAD")
        info["dirty"] = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        pass  # not a git checkout (an installed package): the source hash identifies it
    return info


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------

def load_experiment(path: str | os.PathLike):
    """``(config, FitResult)`` of a result file; ``config`` is a plain dict.

    Reads this book's files and the original course's (``{"config",
    "results"}`` with one loss per batch).

    Raises:
        ExperimentFileError: a missing, truncated or malformed file, named in
            the message.
    """
    record, fit_res = _read(path)
    return record["config"], fit_res


def load_record(path: str | os.PathLike) -> dict:
    """The whole JSON record of a result file (timing, device, versions, ...).

    Validated like :func:`load_experiment`: errors name the file.
    """
    return _read(path)[0]


def _read(path: str | os.PathLike):
    from hw2.training import FitResult

    path = Path(path)
    def no_constants(name):  # NaN, Infinity: Python's json reads them, JSON has none
        raise ExperimentFileError(f"result file {path}: {name} is not strict JSON (a "
                                  f"diverged value is written as null)")

    record = read_json(path, what="result file", max_bytes=RESULT_MAX_BYTES,
                       error=ExperimentFileError, parse_constant=no_constants)
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict) \
            or not isinstance(record.get("results"), dict):
        raise ExperimentFileError(f"result file {path} is incomplete: it needs "
                                  f"'config' and 'results' objects")
    results = record["results"]
    book_format = record.get("format") is not None
    if book_format and record["format"] != RESULT_FORMAT:
        raise ExperimentFileError(f"result file {path}: format {record['format']!r} "
                                  f"is not {RESULT_FORMAT!r}")

    def bad(field, why):
        raise ExperimentFileError(f"result file {path}: results.{field} {why}")

    in_file = dict(owner=f"result file {path}", error=ExperimentFileError)
    epochs = _checks.non_negative_int("results.num_epochs", results.get("num_epochs"),
                                      **in_file)
    curves = {}
    for name in (*_CURVES, *_VAL_CURVES):
        if name not in results:
            if name in _VAL_CURVES:
                continue
            bad(name, "is missing")
        curves[name] = _checks.number_list(f"results.{name}", results[name],
                                           none_means="null for a diverged value",
                                           **in_file)
    if not book_format and len(curves["train_acc"]) != epochs:
        # The course's Trainer records the index of its last epoch (one less than
        # the epochs it ran); its own loader and plots never read num_epochs. The
        # lists hold one accuracy per epoch: they say how many epochs there were.
        warnings.warn(f"result file {path}: num_epochs is {epochs}, but its lists hold "
                      f"{len(curves['train_acc'])} epochs (as the original course's "
                      f"Trainer writes them); reading {len(curves['train_acc'])} "
                      f"epochs", ExperimentFileWarning, stacklevel=3)
        epochs = len(curves["train_acc"])
    for name, values in curves.items():
        per_batch = not book_format and name.endswith("_loss") and epochs \
            and len(values) >= epochs and len(values) % epochs == 0
        if len(values) != epochs and not per_batch:
            bad(name, f"has {len(values)} values for num_epochs={epochs}")
        if book_format and name.endswith("_acc") and any(
                not 0 <= v <= 100 for v in values if not math.isnan(v)):
            bad(name, "must hold accuracies in percent (0 to 100)")
    for field in ("filters_per_layer",):
        value = record["config"].get(field)
        if value is not None:
            _checks.int_list(f"config.{field}", value, allow_empty=True, **in_file)
    return record, FitResult(num_epochs=epochs, **curves)


# --------------------------------------------------------------------------
# Where results go: checked before any training
# --------------------------------------------------------------------------

# mkstemp's random part, and the ".tmp" of hw2._io.atomic_write's temporary files.
_TEMP_EXTRA = len(".") + 8 + len(".tmp") + len(".")
#: Room kept free beyond a run's files: the disk is shared with everything else.
SPARE_BYTES = 8 << 20


def run_bytes(cfg: RunConfig, parameters: int | None = None) -> dict[Path, int]:
    """``{folder: bytes}``: the most disk a run's files need at once, per folder.

    The result file (about 2 kB plus 200 bytes per epoch, and its temporary
    copy), and with checkpoints the checkpoint: ``parameters`` float32 values
    three times (the weights and the two moments of Adam) plus 64 kB of
    random-number and loader state, twice (the old file and its replacement).
    """
    result = result_path(cfg)
    need = {result.parent: 2 * (2048 + 200 * cfg.epochs)}
    if cfg.checkpoints:
        ckpt = Path(f"{cfg.checkpoints}.pt").expanduser()
        size = 2 * (3 * 4 * (parameters or 0) + (64 << 10))
        need[ckpt.parent] = need.get(ckpt.parent, 0) + size
    return need


def check_output_location(cfg: RunConfig, parameters: int | None = None) -> None:
    """Check, before training, that a run's files can be written; ValueError if not.

    1. The result folder (and the checkpoint's) must be a folder this process
       can create and write into.
    2. The result and checkpoint files must not be folders.
    3. Every file name the run will write -- the result, its temporary file,
       the claim, the checkpoint and its temporary file -- must fit the file
       system's name limit, counted in bytes (UTF-8), as file systems count.
    4. The disk must have room for them (:func:`run_bytes`, with the model's
       ``parameters``) and :data:`SPARE_BYTES` besides.

    So a typo in ``-o``, a long ``-n`` or a full disk fails at once, not after
    hours of training.
    """
    result = result_path(cfg)
    names = {result.parent: [result.name, f".{result.stem}.claim"]}
    targets = [result]
    if cfg.checkpoints:
        ckpt = Path(f"{cfg.checkpoints}.pt").expanduser()
        names.setdefault(ckpt.parent, []).append(ckpt.name)
        targets.append(ckpt)
    for folder, files in names.items():
        _check_folder(folder)
        try:
            limit = os.pathconf(folder if folder.exists() else _existing(folder),
                                "PC_NAME_MAX")
        except (OSError, ValueError):
            limit = 255
        for name in files:
            size = len(name.encode("utf-8", "surrogateescape"))
            if size + _TEMP_EXTRA + 1 > limit:
                shown = name if len(name) <= 48 else f"{name[:30]}...{name[-15:]}"
                raise ValueError(f"the file name {shown} is {size} bytes; with "
                                 f"its temporary suffix it exceeds the {limit} bytes "
                                 f"this file system allows in {folder}: use a shorter "
                                 f"run name (-n) or fewer widths (-K)")
    for target in targets:
        if target.is_dir():
            raise ValueError(f"{target} is a folder: a run writes its file there; "
                             f"remove or rename the folder")
    for folder, need in run_bytes(cfg, parameters).items():
        free = free_bytes(folder)
        if free is not None and free < need + SPARE_BYTES:
            raise ValueError(f"not enough free space for the run's files in {folder}: "
                             f"{describe_bytes(free)} free, the run needs about "
                             f"{describe_bytes(need)} and keeps "
                             f"{describe_bytes(SPARE_BYTES)} spare; free some space "
                             f"or choose another folder")


def _existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _check_folder(folder: Path) -> None:
    """Check that ``folder`` is, or can be made, a folder this process writes into.

    The check leaves nothing behind: folders it had to create to probe are
    removed again, so a run that fails later (no data, say) leaves no empty
    folders. The run creates the folder when it writes its first file.
    """
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output folder {folder} is a file, not a folder")
    missing = [f for f in (folder, *folder.parents) if not f.exists()]
    try:
        fd, probe = create_in_folder(folder, lambda: tempfile.mkstemp(
            dir=folder, prefix=".hw2-write-test.", suffix=".tmp"))
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        verb = "write into" if folder.is_dir() else "create"
        raise ValueError(f"cannot {verb} the output folder {folder}: "
                         f"{e.strerror or e}") from None
    finally:
        for created in missing:  # innermost first; one in use by now stays
            with contextlib.suppress(OSError):
                created.rmdir()


# --------------------------------------------------------------------------
# Which runs are done
# --------------------------------------------------------------------------

def result_state(cfg: RunConfig) -> tuple[str, str]:
    """``(state, reason)`` of a run's result file.

    - ``'done'``: a valid result file of *this* run: it loads, and its
      configuration trains what ``cfg`` trains (:meth:`RunConfig.identity`;
      the seed is compared only when ``cfg`` fixes one);
    - ``'missing'``: no file;
    - ``'invalid'``: a corrupt file, or not a result file of hw2.experiments:
      the run is trained again and the file replaced;
    - ``'other'``: a valid result of other settings (another sweep's, say):
      it is never replaced by a sweep; the reason names the differences.
    """
    path = result_path(cfg)
    if not path.exists():
        return "missing", ""
    try:
        record = load_record(path)
        if record.get("format") != RESULT_FORMAT:
            return "invalid", f"{path} is not a result file of hw2.experiments"
        recorded = RunConfig.from_dict({k: v for k, v in record["config"].items()
                                        if k not in ("channels",)})
    except (ExperimentFileError, ValueError, TypeError) as e:
        return "invalid", str(e)
    differ = identity_differences(recorded.identity(), cfg.identity(),
                                  compare_seed=cfg.seed is not None,
                                  there="in the file")
    if differ:
        return "other", f"{path} holds a run with other settings ({differ})"
    return "done", ""


def identity_differences(have: dict, want: dict, *, compare_seed: bool = True,
                         there: str = "there", shown: int = 3) -> str:
    """``epochs: 1 in the file, 2 wanted; ...`` for the fields two identities differ in.

    An empty string when they agree (``compare_seed=False`` ignores the seed);
    the wording of :func:`hw2.checkpoint.differences`.
    """
    from hw2.checkpoint import differences

    return differences(have, want, there=there, here="wanted",
                       ignore=() if compare_seed else ("seed",), shown=shown)


def experiment_status(name: str, results_dir: str | os.PathLike | None = None, *,
                      grid: dict[str, Experiment] | str | os.PathLike | None = None,
                      protocol: str | None = "gpu", seed: int | None = None):
    """``[(RunConfig, result path or None), ...]`` for every run of an experiment.

    ``None`` marks a run without a valid result file in ``results_dir``
    (default: the study's folder of ``protocol`` and ``seed``,
    ``results_dir()/<protocol>/seed<seed>``, :func:`study_folder`). A network
    that an earlier experiment of the grid also lists is looked up under that
    experiment's name (:func:`~hw2.experiments.grid.run_owners`): its config
    here carries this experiment's name, its path the file both share. The
    chapters use it to say what is missing.
    """
    experiments = resolve_grid(grid)
    if name not in experiments:
        raise ValueError(f"unknown experiment {name!r}; "
                         f"known: {', '.join(experiments)}")
    if seed is None:
        seed = RunConfig.seed if protocol is None else \
            get_protocol(protocol).seeds[0]
    if results_dir is None:
        folder = (study_folder(protocol, seed) if protocol
                  else _results_dir() / f"seed{seed}")
    else:
        folder = Path(results_dir)
    overrides = {"seed": seed}
    owners = run_owners(experiments, protocol, overrides)
    status = []
    for cfg in experiments[name].runs({**overrides, "out_dir": os.fspath(folder)},
                                      protocol=protocol):
        stored = owned(cfg, owners)
        done = result_state(stored)[0] == "done"
        status.append((cfg, result_path(stored) if done else None))
    return status


# for experiment_status, whose parameter of that name shadows it
_results_dir = results_dir


def summary_line(path: Path) -> str:
    """One line: epochs, the selected epoch's accuracies, time and throughput."""
    rec = load_record(path)
    res, timing = rec["results"], rec.get("timing", {})
    best = rec.get("best_epoch") or len(res["test_acc"])
    split = "val" if res.get("val_acc") else "test"
    if best:
        acc = res[f"{split}_acc"][best - 1]
        chosen = f"best {split} loss at epoch {best}: {split} acc {_pct(acc)}"
        if split == "val":
            chosen += f", test acc {_pct(res['test_acc'][best - 1])}"
    else:
        chosen = "no epoch"
    if rec.get("diverged"):
        chosen += ", DIVERGED"
    ips = timing.get("train_images_per_s")
    ips_text = f", {ips:,.0f} img/s" if ips else ""
    total = timing.get("total_s")
    time_text = f", {total:.1f} s" if total is not None else ""
    return f"{res['num_epochs']} epochs, {chosen}{time_text}{ips_text}"


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1f}%"
