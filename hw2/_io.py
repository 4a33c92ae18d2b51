"""Small file helpers shared by the package: the repository root and atomic writes.

Standard library only, so that cheap modules (``hw2.experiments``) can
import it without importing torch.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

__all__ = ["repo_root", "in_checkout", "book_path", "temp_prefix", "temp_glob",
           "create_in_folder", "atomic_write", "WriteError", "free_bytes",
           "describe_bytes", "read_json", "JSON_MAX_DEPTH"]


def repo_root() -> Path:
    """The folder holding the ``hw2`` package (the repository root in a checkout)."""
    return Path(__file__).resolve().parent.parent


def in_checkout() -> bool:
    """Whether ``hw2`` is imported from the book's repository, not a wheel."""
    root = repo_root()
    return (root / "_toc.yml").is_file() and (root / "book").is_dir()


def book_path(relative: str | os.PathLike) -> Path:
    """A file of the book's repository: in the checkout, else the wheel's copy.

    ``book_path("results/cpu")``, ``book_path("book/part3/experiments.md")``: a
    wheel of ``hw2`` carries the book's committed data under ``hw2/_book/`` (see
    ``setup.py``), so the chapters' notebooks run without a checkout.
    """
    base = repo_root() if in_checkout() else Path(__file__).resolve().parent / "_book"
    return base / relative


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


FOLDER_TRIES = 20


def create_in_folder(folder: Path, create: Callable[[], T]) -> T:
    """Make ``folder`` (and missing parents), then ``create()`` a file in it.

    Sweeps started together on one new output folder each create it to check
    they can write there and remove it again (see the runner's output check),
    so the folder can vanish between the ``mkdir`` and the file's creation: a
    ``FileNotFoundError`` then makes the folder again, up to
    :data:`FOLDER_TRIES` times. Any other error propagates at once.
    """
    for _ in range(FOLDER_TRIES - 1):
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            return create()
    folder.mkdir(parents=True, exist_ok=True)
    return create()


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

    Raises:
        WriteError: the file could not be written (a full disk, a folder in
            its place, no permission): the message names the file, the reason
            and the free space on its disk.
    """
    path = Path(path)
    try:
        fd, tmp = create_in_folder(path.parent, lambda: tempfile.mkstemp(
            dir=path.parent, prefix=temp_prefix(path.name), suffix=".tmp"))
    except OSError as e:
        raise WriteError(path, e) from None
    try:
        with os.fdopen(fd, "w" if text else "wb") as f:
            os.fchmod(f.fileno(), mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        # torch.save reports a failed write as a RuntimeError ("unexpected pos")
        if isinstance(e, OSError) or (isinstance(e, RuntimeError)
                                      and _is_write_failure(e)):
            raise WriteError(path, e) from None
        raise


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Bytes free to this process on the disk of ``folder`` (or its nearest parent).

    None when the file system does not say.
    """
    import shutil

    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def describe_bytes(n: int | None) -> str:
    """``1.5 MB``, ``820 kB``, ``312 bytes`` (``unknown`` for None)."""
    if n is None:
        return "unknown"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _is_write_failure(error: RuntimeError) -> bool:
    text = str(error)
    return "unexpected pos" in text or "write" in text.lower()


class WriteError(OSError):
    """A file could not be written; the message names it, the reason and the disk."""

    def __init__(self, path: Path, cause: BaseException):
        path = Path(path)
        free = free_bytes(path.parent)
        if isinstance(cause, IsADirectoryError) or path.is_dir():
            reason = "a folder of that name is in the way"
        elif isinstance(cause, OSError):
            reason = cause.strerror or str(cause)
        elif free is not None and free < (1 << 20):  # torch.save's RuntimeError
            reason = "No space left on device"
        else:
            reason = str(cause).splitlines()[0]
        super().__init__(getattr(cause, "errno", None) or 0,
                         f"cannot write {path}: {reason}; {describe_bytes(free)} free "
                         f"on the disk of {path.parent}")
        self.path = path

    def __str__(self) -> str:
        return self.strerror


#: How deeply a JSON file of the package (result, grid) may nest; its own files
#: nest 4 deep.
JSON_MAX_DEPTH = 64


def _depth(obj) -> int:
    """How deeply lists and dicts nest in ``obj`` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else \
            item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def read_json(path: str | os.PathLike, *, what: str, max_bytes: int,
              error: type[Exception] = ValueError, **loads_kw):
    """The JSON content of ``path``, read with a size and a depth limit.

    Only a regular file is read (a device such as ``/dev/zero`` or a pipe has
    no size to check, and would be read without end), and at most
    ``max_bytes + 1`` bytes of it, whatever size it claims.

    Args:
        path: the file.
        what: what the file is, for messages ("result file", "grid file").
        max_bytes: the largest file accepted.
        error: the exception class raised for every problem; the message
            names the file.
        **loads_kw: passed to ``json.loads`` (``parse_constant``...).
    """
    import json
    import stat

    path = Path(path)
    too_big = f"; a {what} is at most {describe_bytes(max_bytes)}"
    try:
        mode, size = (info := path.stat()).st_mode, info.st_size
        if stat.S_ISDIR(mode):
            raise error(f"{what} {path} is a folder, not a file")
        if not stat.S_ISREG(mode):
            raise error(f"{what} {path} is not a regular file (a device, a pipe or a "
                        f"socket): give the path of a JSON file")
        if size > max_bytes:
            raise error(f"{what} {path} is {describe_bytes(size)}{too_big}")
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)  # a file that grew meanwhile stops here
        if len(raw) > max_bytes:
            raise error(f"{what} {path} is larger than {describe_bytes(max_bytes)}"
                        f"{too_big}")
        text = raw.decode("utf-8")
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not a text file (not UTF-8)") from None
    try:
        data = json.loads(text, **loads_kw)
    except RecursionError:
        raise error(f"{what} {path} nests too deeply (more than "
                    f"{JSON_MAX_DEPTH} levels)") from None
    except json.JSONDecodeError as e:
        raise error(f"{what} {path} is corrupt or incomplete (not valid JSON: "
                    f"{e})") from None
    if _depth(data) > JSON_MAX_DEPTH:
        raise error(f"{what} {path} nests too deeply (more than {JSON_MAX_DEPTH} "
                    f"levels)")
    return data
