"""Small file helpers shared by the package: the repository root and atomic writes.

Standard library only, so that cheap modules (``hw2.experiments``) can
import it without importing torch.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["repo_root", "temp_prefix", "temp_glob", "atomic_write"]


def repo_root() -> Path:
    """The folder holding the ``hw2`` package (the repository root in a checkout)."""
    return Path(__file__).resolve().parent.parent


def temp_prefix(name: str) -> str:
    """Name prefix of :func:`atomic_write`'s temporary files for a target ``name``.

    A hidden file named after the target: ``.<name>.`` (``<name>.`` when the
    target is hidden already), then a random part and ``.tmp``.
    """
    return f"{name}." if name.startswith(".") else f".{name}."


def temp_glob(name: str) -> str:
    """A glob pattern matching exactly :func:`atomic_write`'s temporary files.

    Those it makes for a target named ``name``.
    """
    import glob

    return f"{glob.escape(temp_prefix(name))}*.tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], Any], *,
                 text: bool = False, mode: int = 0o644) -> None:
    """Write ``path`` so that it is either complete or absent.

    The content goes to a temporary file in the same folder (see
    :func:`temp_prefix`), flushed to disk, given permissions ``mode``
    (``mkstemp`` makes it private) and then renamed over ``path`` with
    ``os.replace``. On any exception the temporary file is removed. Missing
    parent folders are created.

    Args:
        path: the file to write.
        write: ``write(f)`` writes the content to the open temporary file
            ``f`` (binary, or text with ``text=True``).
        text: open the temporary file in text mode.
        mode: the permissions the file gets.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=temp_prefix(path.name), suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "w" if text else "wb") as f:
            os.fchmod(f.fileno(), mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
