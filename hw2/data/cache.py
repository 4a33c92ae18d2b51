"""The decoded-data cache, and :func:`load_cifar10`, which reads through it.

A source is decoded once into a file of uint8 tensors under ``$HW2_CACHE_DIR``
(default ``$XDG_CACHE_HOME/hw2`` or ``~/.cache/hw2``), keyed by the source's
identity; later loads memory-map it. A damaged cache is decoded again, an
unreadable one is a permissions error, and the temporary files of a killed
writer are removed at the next load.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
import warnings
from pathlib import Path

import torch

from hw2._io import atomic_write
from hw2.data.base import (CIFAR10, CorruptDataError, DataUnavailableError,
                           DataWarning)
from hw2.data.sources import (_HOW_TO_PROVIDE, ENV_SOURCE, _download, _read_source,
                              _resolve_source, _source_identity)

ENV_CACHE = "HW2_CACHE_DIR"
_CACHE_FORMAT = 1  # bump when the cached file's layout changes


def cache_dir() -> Path:
    """Where decoded datasets are cached.

    $HW2_CACHE_DIR, else $XDG_CACHE_HOME/hw2 or ~/.cache/hw2.
    """
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hw2"

def _cache_file(identity: dict) -> Path:
    key = json.dumps({"format": _CACHE_FORMAT, **identity}, sort_keys=True)
    return cache_dir() / f"cifar10-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"


def _atomic_torch_save(obj, target: Path) -> None:
    """``torch.save`` ``obj`` to ``target`` atomically.

    Mode 0644: a cache may be shared.
    """
    atomic_write(target, lambda f: torch.save(obj, f))


_CACHE_TENSORS = {"train_x": (torch.uint8, 4), "train_y": (torch.int64, 1),
                  "test_x": (torch.uint8, 4), "test_y": (torch.int64, 1)}


def _cache_problem(data) -> str | None:
    """What is wrong with a loaded cache file's content (None: nothing)."""
    if not isinstance(data, dict):
        return f"it holds a {type(data).__name__}, not a dict"
    missing = sorted({*_CACHE_TENSORS, "classes", "source_name", "source"} - set(data))
    if missing:
        return f"it lacks {', '.join(missing)}"
    for key, (dtype, dim) in _CACHE_TENSORS.items():
        t = data[key]
        if not isinstance(t, torch.Tensor) or t.dtype != dtype or t.dim() != dim:
            return f"{key} is not a {dim}-d {dtype} tensor"
    if (len(data["train_x"]) != len(data["train_y"])
            or len(data["test_x"]) != len(data["test_y"])):
        return "its images and labels differ in number"
    classes = data["classes"]
    if not isinstance(classes, (list, tuple)) or not classes:
        return "it names no classes"
    for split in ("train", "test"):
        x, y = data[f"{split}_x"], data[f"{split}_y"]
        if x.shape[1] != 3 or x.shape[2] < 1 or x.shape[3] < 1:
            return (f"{split}_x holds images of shape {tuple(x.shape[1:])}, not "
                    f"(3, H, W)")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
            return (f"{split}_y holds labels from {int(y.min())} to {int(y.max())}; "
                    f"{len(classes)} classes need 0 to {len(classes) - 1}")
    return None


def _load_cache(path: Path) -> dict | None:
    """The cached tensors, or None: absent, of another format, or damaged.

    When it is damaged a warning says why; the caller decodes again and
    replaces the file.
    """
    if not path.is_file():
        return None
    if not os.access(path, os.R_OK):
        raise CorruptDataError(
            f"the cache file {path} exists but this process may not read it "
            f"(permissions {stat.filemode(path.stat().st_mode)}): give it read "
            f"permission (chmod a+r), delete it, or point {ENV_CACHE} at a folder of "
            f"your own")
    try:
        data = torch.load(path, mmap=True, weights_only=True)
    except PermissionError as exc:
        raise CorruptDataError(f"the cache file {path} cannot be read: {exc.strerror}; "
                               f"fix its permissions or set {ENV_CACHE}") from None
    except Exception as exc:
        problem = f"unreadable: {type(exc).__name__}"
    else:
        if isinstance(data, dict) and data.get("format") != _CACHE_FORMAT:
            return None
        problem = _cache_problem(data)
        if problem is None:
            return data
    warnings.warn(f"Ignoring the damaged cache file {path} ({problem}); decoding "
                  f"the data again and replacing it.", DataWarning, stacklevel=3)
    return None


#: A cache write's temporary file older than this belongs to a killed process.
_STALE_TEMP_S = 15 * 60


def _remove_stale_temp_files(target: Path) -> None:
    """Delete the temporary files killed writers of the cache left beside ``target``.

    A process killed while it writes the cache (``atomic_write``) leaves a
    full-size ``.cifar10-*.pt.*.tmp`` behind (about 185 MB for CIFAR-10). One
    untouched for :data:`_STALE_TEMP_S` is no live writer's.
    """
    if not target.parent.is_dir():
        return
    now = time.time()
    for tmp in target.parent.glob(".cifar10-*.pt.*.tmp"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > _STALE_TEMP_S:
                tmp.unlink()


def _decode_cached(path: Path, workers: int | None) -> tuple[dict, Path | None]:
    target = _cache_file(_source_identity(path))
    _remove_stale_temp_files(target)
    data = _load_cache(target)
    if data is not None:
        return data, target
    data = {"format": _CACHE_FORMAT, **_read_source(path, workers)}
    try:
        _atomic_torch_save(data, target)
    except OSError as exc:
        warnings.warn(f"Could not write the cache file {target} ({exc}); "
                      f"the next load decodes again.", DataWarning, stacklevel=3)
        target = None
    return data, target


def load_cifar10(
    source: str | os.PathLike | None = None, *, workers: int | None = None
) -> CIFAR10:
    """Load CIFAR-10 as uint8 tensors, decoding the source once and caching the result.

    Args:
        source: a path (archive, image folder or cifar-10-batches-py); default
            ``$HW2_CIFAR10``, then torchvision's download into the cache folder.
        workers: processes for the one-time decode (default: one per core, up
            to 8, on machines with at least 4 cores; otherwise decode in this
            process).

    Raises:
        DataUnavailableError: no data, no network (the message says how to
            provide a copy).
        CorruptDataError: a file cannot be read (the message names it).
    """
    if source is None and os.environ.get(ENV_SOURCE):
        source, origin = os.environ[ENV_SOURCE], ENV_SOURCE
    else:
        origin = "source"
    if source is not None:
        data, cached = _decode_cached(_resolve_source(source, origin), workers)
    else:
        root = cache_dir() / "torchvision"
        try:
            folder = _download(root)
        except Exception as exc:  # URLError, OSError, RuntimeError (checksum) ...
            raise DataUnavailableError(
                f"CIFAR-10 is not available: {ENV_SOURCE} is not set and "
                f"torchvision could not download it into {root} "
                f"({type(exc).__name__}: {exc}).\n{_HOW_TO_PROVIDE}"
            ) from exc
        data, cached = _decode_cached(folder, workers)
        data = {**data, "source": f"torchvision download ({folder})"}
    return CIFAR10(train_x=data["train_x"], train_y=data["train_y"],
                   test_x=data["test_x"], test_y=data["test_y"],
                   classes=list(data["classes"]), source_name=data["source_name"],
                   source=data["source"], cache_path=cached)
