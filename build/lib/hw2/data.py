"""CIFAR-10 for the chapters and the experiment runner.

Where the images come from, in order:

1. ``source=`` or the ``HW2_CIFAR10`` environment variable, naming a local copy:
   a ``.tar.xz`` / ``.tar.gz`` archive of an image folder
   (``.../train/<class>/*.jpg`` and ``.../test/<class>/*.jpg`` at any depth),
   such a folder itself, or torchvision's ``cifar-10-batches-py`` folder
   (or its ``cifar-10-python.tar.gz``);
2. otherwise torchvision's download (into the cache folder).

The images are decoded once into a cached file of uint8 tensors under
``$HW2_CACHE_DIR`` (default ``$XDG_CACHE_HOME/hw2`` or ``~/.cache/hw2``), keyed
by the identity of the source (resolved path, size, modification time), so
later loads memory-map that file and take well under a second.

Two ways to feed a model:

- :func:`cifar10_datasets` gives torch ``Dataset`` s for the ``DataLoader``
  path the chapters teach;
- :class:`GPUBatches` keeps the whole dataset on the device as uint8 and does
  shuffling, flip/crop augmentation and normalisation on whole batches there
  (the experiment runner's path; see airbench for the idea).

Importing this module does no work: nothing is read until a function is called.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import pickle
import re
import stat
import tarfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from hw2._io import atomic_write, repo_root

__all__ = [
    "CIFAR10", "CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD",
    "DataError", "DataUnavailableError", "CorruptDataError", "DataWarning",
    "load_cifar10", "cache_dir", "class_balanced_indices", "train_val_indices",
    "CIFAR10Dataset", "cifar10_datasets", "augment_batch", "GPUBatches",
]

#: CIFAR-10's class names in label order (which is also alphabetical order,
#: so an image folder's sorted class folders get the original labels).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
#: Per-channel mean and standard deviation of the training images, pixel scale 0..1.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_COUNTS = (50_000, 10_000)  # train, test

ENV_SOURCE = "HW2_CIFAR10"
ENV_CACHE = "HW2_CACHE_DIR"
_CACHE_FORMAT = 1  # bump when the cached file's layout changes
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".gif",
                   ".tif", ".tiff", ".webp"}
_JPEG_SUFFIXES = {".jpg", ".jpeg"}
_PARALLEL_MIN_IMAGES = 4000  # fewer images decode faster than worker processes start
_BATCH_NAMES = re.compile(r"^(data_batch_[1-5]|test_batch|batches\.meta)$")
_HOW_TO_PROVIDE = (
    "Provide a local copy and point HW2_CIFAR10 at it, e.g.\n"
    "    export HW2_CIFAR10=/path/to/cifar10-jpeg.tar.xz\n"
    "Accepted forms: a .tar.xz/.tar.gz archive of an image folder "
    "(train/<class>/*.jpg and test/<class>/*.jpg, at any depth), such a folder "
    "itself, or torchvision's cifar-10-batches-py folder (or cifar-10-python.tar.gz). "
    "A relative path is resolved against the current directory, then the "
    "repository root."
)


class DataError(RuntimeError):
    """Base class of the errors raised when CIFAR-10 cannot be loaded."""


class DataUnavailableError(DataError):
    """No usable copy of CIFAR-10: nothing at HW2_CIFAR10 and no download."""


class CorruptDataError(DataError):
    """A source exists but cannot be read.

    For example a truncated archive, a bad image or a wrong layout.
    """


class DataWarning(UserWarning):
    """A source was loaded but does not look like the full CIFAR-10."""


@dataclass(frozen=True, repr=False, eq=False)
class CIFAR10:
    """CIFAR-10 (or an image folder laid out like it) as uint8 CPU tensors.

    Attributes:
        train_x: (N_train, 3, H, W) uint8.
        train_y: (N_train,) int64.
        test_x: (N_test, 3, H, W) uint8.
        test_y: (N_test,) int64.
        classes: class names in label order.
        source_name: what to call the data in results ("CIFAR-10 (JPEG copy)"
            for the JPEG copy).
        source: where it came from.
        cache_path: the cached tensor file (None if it could not be written).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    source_name: str
    source: str
    cache_path: Path | None = None

    @property
    def is_full(self) -> bool:
        """True for the complete CIFAR-10: 50,000 / 10,000 images of the 10 classes."""
        return (tuple(self.classes) == CIFAR10_CLASSES
                and (len(self.train_y), len(self.test_y)) == CIFAR10_COUNTS)

    def describe(self) -> str:
        """A few lines saying what was loaded, from where, and how big it is."""
        c, h, w = self.train_x.shape[1:]
        lines = [
            (f"{self.source_name}: {len(self.train_y):,} train / "
             f"{len(self.test_y):,} test images, {c}x{h}x{w} uint8, "
             f"{len(self.classes)} classes"),
            f"  classes: {', '.join(self.classes)}",
            f"  train per class: {_class_counts(self.train_y, len(self.classes))}",
            f"  test per class:  {_class_counts(self.test_y, len(self.classes))}",
            f"  source: {self.source}",
            f"  cache:  {self.cache_path}",
        ]
        if not self.is_full:
            lines.append(
                "  note: not the full CIFAR-10 (50,000 / 10,000 images, 10 classes)"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        c, h, w = self.train_x.shape[1:]
        return (f"CIFAR10(source_name={self.source_name!r}, "
                f"train={len(self.train_y)}, test={len(self.test_y)}, "
                f"shape=({c}, {h}, {w}), classes={len(self.classes)})")


def _class_counts(y: torch.Tensor, num_classes: int) -> list[int]:
    return torch.bincount(y, minlength=num_classes).tolist()


# ---------------------------------------------------------------------------
# Locating the source and the cache
# ---------------------------------------------------------------------------

def cache_dir() -> Path:
    """Where decoded datasets are cached.

    $HW2_CACHE_DIR, else $XDG_CACHE_HOME/hw2 or ~/.cache/hw2.
    """
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hw2"


def _resolve_source(source: str | os.PathLike, origin: str) -> Path:
    """An existing absolute path for ``source``.

    Relative paths try cwd, then the repo root.
    """
    path = Path(source).expanduser()
    tried = [path] if path.is_absolute() else [Path.cwd() / path, repo_root() / path]
    for candidate in tried:
        if candidate.exists():
            return candidate.resolve()
    raise DataUnavailableError(
        f"{origin}={str(source)!r} does not exist (tried: "
        f"{', '.join(str(t) for t in tried)}).\n{_HOW_TO_PROVIDE}")


def _source_identity(path: Path) -> dict:
    """What the cache key is made of.

    The resolved path plus size and mtime of its files.
    """
    if path.is_file():
        st = path.stat()
        return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    digest = hashlib.sha256()
    count = 0
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            st = os.stat(full)
            rel = os.path.relpath(full, path)
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            count += 1
    return {"path": str(path), "files": count, "tree": digest.hexdigest()}


def _cache_file(identity: dict) -> Path:
    key = json.dumps({"format": _CACHE_FORMAT, **identity}, sort_keys=True)
    return cache_dir() / f"cifar10-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"


# ---------------------------------------------------------------------------
# Reading sources (archive, image folder, pickled batches)
# ---------------------------------------------------------------------------

def _split_and_class(parts: Sequence[str]) -> tuple[str, str, str] | None:
    """``(.../)train/<class>/<file>`` -> ("train", class, prefix).

    None for anything else.
    """
    if len(parts) < 3 or parts[-3] not in ("train", "test"):
        return None
    if any(p.startswith(".") for p in parts[-2:]):  # .DS_Store, ._resource forks
        return None
    if Path(parts[-1]).suffix.lower() not in _IMAGE_SUFFIXES:
        return None
    return parts[-3], parts[-2], "/".join(parts[:-3])


class _Collected:
    """Raw members gathered from a source before decoding."""

    def __init__(self):
        self.images: dict[str, list[tuple[str, str, bytes]]] = {"train": [], "test": []}
        self.prefixes: set[str] = set()
        self.batches: dict[str, bytes] = {}

    def add_image(self, parts: Sequence[str], read) -> bool:
        found = _split_and_class(parts)
        if found is None:
            return False
        split, cls, prefix = found
        self.prefixes.add(prefix)
        self.images[split].append((cls, parts[-1], read()))
        return True


def _collect_archive(path: Path) -> _Collected:
    """Stream a tar archive's members (any compression) without extracting to disk."""
    got = _Collected()
    with tarfile.open(path, mode="r|*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name.replace("\\", "/")
            parts = [p for p in name.split("/") if p not in ("", ".")]
            read = lambda m=member: tar.extractfile(m).read()  # noqa: E731
            if (not got.add_image(parts, read) and parts
                    and _BATCH_NAMES.match(parts[-1])):
                got.batches[parts[-1]] = read()
    return got


def _find_batches_dir(path: Path) -> Path | None:
    for candidate in (path, path / "cifar-10-batches-py"):
        if ((candidate / "data_batch_1").is_file()
                and (candidate / "test_batch").is_file()):
            return candidate
    return None


def _find_image_root(path: Path, max_depth: int = 3) -> Path | None:
    """The shallowest folder under ``path`` holding both ``train/`` and ``test/``."""
    level = [path]
    for _ in range(max_depth + 1):
        for folder in level:
            if (folder / "train").is_dir() and (folder / "test").is_dir():
                return folder
        level = sorted(p for folder in level for p in folder.iterdir()
                       if p.is_dir() and not p.name.startswith("."))
    return None


def _collect_folder(path: Path) -> _Collected:
    got = _Collected()
    batches = _find_batches_dir(path)
    if batches is not None:
        for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                     "data_batch_5", "test_batch", "batches.meta"):
            if (batches / name).is_file():
                got.batches[name] = (batches / name).read_bytes()
        return got
    root = _find_image_root(path)
    if root is None:
        raise CorruptDataError(
            f"{path} holds neither train/<class>/* and test/<class>/* image folders "
            f"nor a cifar-10-batches-py folder.\n{_HOW_TO_PROVIDE}")
    for split in ("train", "test"):
        for file in sorted((root / split).glob("*/*")):
            if file.is_file():
                got.add_image(
                    ("", split, file.parent.name, file.name)[1:], file.read_bytes
                )
    return got


def _decode_one(data: bytes) -> np.ndarray:
    from PIL import Image
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _decode_chunk(chunk: list[bytes]) -> list[np.ndarray]:
    return [_decode_one(data) for data in chunk]


def _decode_all(blobs: list[bytes], workers: int | None) -> list[np.ndarray]:
    """Decode image files; with several cores, in forked worker processes."""
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if (os.cpu_count() or 1) >= 4 else 1
    if workers <= 1 or len(blobs) < _PARALLEL_MIN_IMAGES or os.name != "posix":
        return _decode_chunk(blobs)
    import multiprocessing
    size = math.ceil(len(blobs) / (4 * workers))
    chunks = [blobs[i:i + size] for i in range(0, len(blobs), size)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return [image for part in pool.map(_decode_chunk, chunks) for image in part]


def _images_to_tensors(got: _Collected, where: Path, workers: int | None):
    if not got.images["train"] or not got.images["test"]:
        missing = [s for s in ("train", "test") if not got.images[s]]
        raise CorruptDataError(
            f"{where}: no images found under {' and '.join(missing)}/<class>/."
        )
    if len(got.prefixes) > 1:
        raise CorruptDataError(
            f"{where}: train/ and test/ folders found in several places "
            f"({', '.join(sorted(p or '.' for p in got.prefixes))}); keep one copy.")
    classes = sorted({cls for cls, _, _ in got.images["train"]})
    test_classes = sorted({cls for cls, _, _ in got.images["test"]})
    if classes != test_classes:
        raise CorruptDataError(
            f"{where}: train classes {classes} differ from test classes {test_classes}."
        )
    label = {cls: i for i, cls in enumerate(classes)}
    tensors, shape = {}, None
    for split in ("train", "test"):
        items = sorted(got.images[split])  # by class, then file name
        try:
            arrays = _decode_all([data for _, _, data in items], workers)
        except Exception:  # PIL.UnidentifiedImageError, OSError on truncated data
            for cls, name, blob in items:  # rare: find the culprit to name it
                try:
                    _decode_one(blob)
                except Exception as exc:
                    raise CorruptDataError(
                        f"{where}: {split}/{cls}/{name} cannot be decoded ({exc})."
                    ) from exc
            raise
        for (cls, name, _), array in zip(items, arrays):
            shape = shape or array.shape
            if array.shape != shape:
                raise CorruptDataError(
                    f"{where}: {split}/{cls}/{name} is "
                    f"{array.shape[1]}x{array.shape[0]}, the others are "
                    f"{shape[1]}x{shape[0]}; all images must have one size.")
        # the decoded arrays are (H, W, 3); x: (N, 3, H, W)
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        y = torch.tensor([label[cls] for cls, _, _ in items], dtype=torch.int64)
        tensors[split] = (x, y)
    jpeg = any(Path(name).suffix.lower() in _JPEG_SUFFIXES
               for split in ("train", "test") for _, name, _ in got.images[split])
    return tensors, classes, "CIFAR-10 (JPEG copy)" if jpeg else "CIFAR-10"


def _batches_to_tensors(got: _Collected, where: Path):
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if n not in got.batches]
    if missing:
        raise CorruptDataError(
            f"{where}: cifar-10-batches-py is missing {', '.join(missing)}."
        )

    def unpickle(name):
        try:
            return pickle.loads(got.batches[name], encoding="bytes")
        except Exception as exc:
            raise CorruptDataError(f"{where}: {name} cannot be read ({exc}).") from exc

    def split(batch_names):
        xs, ys = [], []
        for name in batch_names:
            batch = unpickle(name)
            try:
                data = np.asarray(batch[b"data"], dtype=np.uint8)
                xs.append(data.reshape(-1, 3, 32, 32))
                ys.extend(int(label) for label in batch[b"labels"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CorruptDataError(
                    f"{where}: {name} is not a CIFAR-10 batch ({exc!r})."
                ) from exc
        return torch.from_numpy(np.concatenate(xs)), torch.tensor(ys, dtype=torch.int64)

    classes = list(CIFAR10_CLASSES)
    if "batches.meta" in got.batches:
        meta = unpickle("batches.meta")
        classes = [
            n.decode() if isinstance(n, bytes) else n for n in meta[b"label_names"]
        ]
    tensors = {"train": split(names[:5]), "test": split(names[5:])}
    return tensors, classes, "CIFAR-10"


def _read_source(path: Path, workers: int | None) -> dict:
    """Decode a source into the dict that is cached."""
    try:
        got = _collect_folder(path) if path.is_dir() else _collect_archive(path)
    except DataError:
        raise
    except PermissionError as exc:  # readable data, but not by this user
        raise DataUnavailableError(
            f"Cannot read CIFAR-10 from {path}: permission denied on "
            f"{exc.filename or path}. Make it readable (chmod a+r) or copy it "
            f"somewhere you can read.") from exc
    except Exception as exc:  # tarfile.ReadError, EOFError, lzma/zlib errors, OSError
        raise CorruptDataError(
            f"Cannot read CIFAR-10 from {path}: {type(exc).__name__}: {exc}. "
            f"The file looks truncated or corrupt; copy it again.") from exc
    if got.images["train"] or got.images["test"]:
        tensors, classes, name = _images_to_tensors(got, path, workers)
    elif got.batches:
        tensors, classes, name = _batches_to_tensors(got, path)
    else:
        raise CorruptDataError(
            f"{path} contains no train/<class>/* and test/<class>/* images and no "
            f"cifar-10-batches-py files.\n{_HOW_TO_PROVIDE}")
    (train_x, train_y), (test_x, test_y) = tensors["train"], tensors["test"]
    counts = (len(train_y), len(test_y))
    if counts != CIFAR10_COUNTS or tuple(classes) != CIFAR10_CLASSES:
        warnings.warn(
            f"{path}: {counts[0]:,} train / {counts[1]:,} test images in "
            f"{len(classes)} classes; the full CIFAR-10 has 50,000 / 10,000 in "
            f"10 classes.", DataWarning, stacklevel=3)
    return {"format": _CACHE_FORMAT, "train_x": train_x, "train_y": train_y,
            "test_x": test_x, "test_y": test_y, "classes": list(classes),
            "source_name": name, "source": str(path)}


def _download(root: Path) -> Path:
    """torchvision's CIFAR-10 download into ``root``.

    Returns:
        Its cifar-10-batches-py folder.
    """
    from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10
    from torchvision.datasets import utils as tv_utils
    folder = root / TorchvisionCIFAR10.base_folder
    if _find_batches_dir(folder) is None:
        tv_utils.download_and_extract_archive(
            TorchvisionCIFAR10.url, str(root), filename=TorchvisionCIFAR10.filename,
            md5=TorchvisionCIFAR10.tgz_md5)
    return folder


# ---------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------

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
    data = _read_source(path, workers)
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


# ---------------------------------------------------------------------------
# torch Datasets (the DataLoader path)
# ---------------------------------------------------------------------------

def class_balanced_indices(labels: torch.Tensor, size: int | None,
                           seed: int = 0) -> torch.Tensor:
    """Indices of a random subset with (as nearly as possible) equal counts per class.

    With C classes each gets size // C; the remaining size % C go to randomly
    chosen classes. The result is in random order; the same seed gives the same
    subset.

    Args:
        labels: (N,) int64.
        size: subset size (None = all N, in a random order).
        seed: seeds the draw.
    """
    n = len(labels)
    generator = torch.Generator().manual_seed(seed)
    if size is None:
        return torch.randperm(n, generator=generator)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(
            f"subset size must be a non-negative int or None, got {size!r}"
        )
    if size > n:
        raise ValueError(f"subset size {size} is larger than the {n} images available")
    classes = torch.unique(labels)
    per_class = torch.full((len(classes),), size // len(classes), dtype=torch.int64)
    extra = torch.randperm(len(classes), generator=generator)[: size % len(classes)]
    per_class[extra] += 1
    chosen = []
    for cls, k in zip(classes.tolist(), per_class.tolist()):
        members = torch.nonzero(labels == cls).flatten()
        if k > len(members):
            raise ValueError(
                f"a balanced subset of {size} needs {k} images of class {cls}, "
                f"only {len(members)} exist"
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[:k]])
    picked = torch.cat(chosen)
    return picked[torch.randperm(len(picked), generator=generator)]


def train_val_indices(
    labels: torch.Tensor, train_size: int | None, val_size: int | None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A class-balanced validation split and a training subset.

    1. ``val_size`` images, class-balanced (:func:`class_balanced_indices`),
       are held out for validation (none when ``val_size`` is None or 0).
    2. The training subset of ``train_size`` images (None: all the rest) is
       drawn, class-balanced, from the images that are *not* held out.

    The two never overlap, and the same seed gives the same split.

    Returns:
        ``(train_idx, val_idx)``.
    """
    if not val_size:
        no_val = torch.empty(0, dtype=torch.int64)
        return class_balanced_indices(labels, train_size, seed), no_val
    val_idx = class_balanced_indices(labels, val_size, seed)
    held_out = torch.zeros(len(labels), dtype=torch.bool)
    held_out[val_idx] = True
    rest = torch.nonzero(~held_out).flatten()
    try:
        train_idx = rest[class_balanced_indices(labels[rest], train_size, seed + 1)]
    except ValueError as e:
        raise ValueError(
            f"after holding out {val_size} validation images: {e}"
        ) from None
    return train_idx, val_idx


class CIFAR10Dataset(torch.utils.data.Dataset):
    """Images as normalised float32 tensors, converted one at a time from uint8.

    Item i is (image, label) with image (3, H, W) float32, or (3*H*W,) with
    flatten=True (for MLPs), label an int.

    Args:
        x: (N, 3, H, W) uint8.
        y: (N,) int64.
        augment: True applies a random horizontal flip and a random crop from
            the image padded by 4 pixels (reflect), drawn from torch's global
            RNG.
        flatten: True gives (3*H*W,) images.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, augment: bool = False,
                 flatten: bool = False, mean: Sequence[float] = CIFAR10_MEAN,
                 std: Sequence[float] = CIFAR10_STD,
                 classes: Sequence[str] = CIFAR10_CLASSES):
        _check_images(x, y)
        self.x, self.y = x, y
        self.augment, self.flatten = bool(augment), bool(flatten)
        self.classes = list(classes)
        self._shift, self._scale = _normalisation(
            mean, std, x.shape[1], torch.device("cpu")
        )

    def __len__(self) -> int:
        return len(self.y)

    def _convert(self, index: torch.Tensor) -> torch.Tensor:
        """Images ``index`` (B,) as normalised float32 (B, 3, H, W) or (B, 3*H*W)."""
        if self.augment:
            pad = 4
            flip = torch.rand(len(index)) < 0.5
            offsets = torch.randint(0, 2 * pad + 1, (len(index), 2))
            images = augment_batch(self.x, flip, offsets, pad, rows=index)
        else:
            images = self.x[index]
        images = (images.float() - self._shift) * self._scale  # (pixel/255 - mean)/std
        return images.flatten(1) if self.flatten else images

    def __getitem__(self, index: int):
        image = self._convert(torch.tensor([index]))[0]
        return image, int(self.y[index])

    def __getitems__(self, indices: list[int]):
        """A whole batch at once (the DataLoader calls this when it exists)."""
        images = self._convert(torch.as_tensor(indices, dtype=torch.int64))
        return list(zip(images, self.y[indices].tolist()))

    def __repr__(self) -> str:
        return (f"CIFAR10Dataset(N={len(self)}, shape={tuple(self.x.shape[1:])}, "
                f"augment={self.augment}, flatten={self.flatten})")


def cifar10_datasets(train_size: int | None = None, test_size: int | None = None,
                     seed: int = 0, augment: bool = False, flatten: bool = False, *,
                     source: str | os.PathLike | CIFAR10 | None = None,
                     val_size: int | None = None):
    """CIFAR-10 as torch Datasets of (normalised float32 image, int label).

    Args:
        train_size, test_size: class-balanced random subsets chosen with
            ``seed`` (None = the whole split).
        seed: seeds the subsets and the validation split.
        augment: applies to the training set only.
        flatten: True gives images as (3072,) vectors for MLPs.
        source: a path (see :func:`load_cifar10`) or an already loaded
            :class:`CIFAR10`.
        val_size: that many training images, class-balanced, held out as a
            validation set; the training subset is drawn from the others
            (:func:`train_val_indices`).

    Returns:
        (ds_train, ds_test), or (ds_train, ds_val, ds_test) with ``val_size``.
    """
    data = source if isinstance(source, CIFAR10) else load_cifar10(source)
    train_idx, val_idx = train_val_indices(data.train_y, train_size, val_size, seed)
    test_idx = class_balanced_indices(data.test_y, test_size, seed)
    kw = dict(flatten=flatten, classes=data.classes)
    ds_train = CIFAR10Dataset(
        data.train_x[train_idx], data.train_y[train_idx], augment=augment, **kw
    )
    ds_test = CIFAR10Dataset(data.test_x[test_idx], data.test_y[test_idx], **kw)
    if not val_size:
        return ds_train, ds_test
    ds_val = CIFAR10Dataset(data.train_x[val_idx], data.train_y[val_idx], **kw)
    return ds_train, ds_val, ds_test


# ---------------------------------------------------------------------------
# Whole-batch augmentation and the device-resident batch iterator
# ---------------------------------------------------------------------------

def _check_images(x, y) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
        raise TypeError(
            f"images must be a uint8 tensor of shape (N, C, H, W), got "
            f"{type(x).__name__} {getattr(x, 'dtype', '')} "
            f"{tuple(getattr(x, 'shape', ()))}"
        )
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(x):
        raise ValueError(
            f"labels must be a 1-D tensor with one label per image ({len(x)}), "
            f"got shape {tuple(getattr(y, 'shape', ()))}"
        )
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"labels must be integers, got {y.dtype}")


def _normalisation(mean, std, channels: int,
                   device) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalisation as one shift and one scale, shaped (1, C, 1, 1).

    Returns:
        (shift, scale) with (pixel - shift) * scale == (pixel/255 - mean) / std.
    """
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean and std need one value per channel ({channels}), "
                         f"got {len(mean)} and {len(std)}")
    if min(std) <= 0:
        raise ValueError(f"std must be positive, got {std}")
    shift = torch.tensor(mean, device=device).mul(255).view(1, -1, 1, 1)
    scale = torch.tensor(std, device=device).mul(255).reciprocal().view(1, -1, 1, 1)
    return shift, scale


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map positions in [-size+1, 2*size-2] to [0, size-1] as reflect padding does.

    No edge repeat.
    """
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def augment_batch(x: torch.Tensor, flip: torch.Tensor, offsets: torch.Tensor,
                  pad: int = 4, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Random-crop-with-padding and horizontal flip of a whole batch, in one gather.

    No padded copy is materialised: output pixel (i, j) of image b reads source
    pixel (reflect(dy + i - pad), reflect(dx + j' - pad)) where j' = W-1-j if
    flipped.

    Args:
        x: (N, C, H, W) images (any dtype).
        flip: (B,) bool, mirror image b left-right.
        offsets: (B, 2) int, the top-left corner (dy, dx) of the crop in the
            image padded by ``pad`` pixels on each side with reflect padding,
            0 <= dy, dx <= 2*pad; (pad, pad) is the unshifted image.
        pad: the padding, in pixels.
        rows: (B,) indices into x of the images to use (default: all, B = N).

    Returns:
        (B, C, H, W) with x's dtype.
    """
    n, c, h, w = x.shape
    if rows is None:
        rows = torch.arange(n, device=x.device)
    if not 0 <= pad < min(h, w):
        raise ValueError(
            f"pad must be in [0, {min(h, w) - 1}] for {h}x{w} images, got {pad}"
        )
    flip = flip.to(x.device, torch.bool)
    offsets = offsets.to(x.device, torch.int64)
    if len(flip) != len(rows) or offsets.shape != (len(rows), 2):
        raise ValueError(
            f"need one flip and one (dy, dx) offset per image: got "
            f"{tuple(flip.shape)} and {tuple(offsets.shape)} for {len(rows)} images"
        )
    ii = torch.arange(h, device=x.device)
    jj = torch.arange(w, device=x.device)
    jj = torch.where(flip[:, None], w - 1 - jj, jj)                     # (B, W)
    src_i = _reflect(offsets[:, :1] + ii - pad, h)                      # (B, H)
    src_j = _reflect(offsets[:, 1:] + jj - pad, w)                      # (B, W)
    b = rows.to(x.device)[:, None, None, None]
    ch = torch.arange(c, device=x.device)[None, :, None, None]
    return x[b, ch, src_i[:, None, :, None], src_j[:, None, None, :]]   # (B, C, H, W)


class GPUBatches:
    """Batches of a dataset that lives on the device as uint8.

    Iterating yields (float32 normalised (B, C, H, W), int64 (B,)) on the
    device. Each epoch draws its shuffle order and augmentation parameters from
    one CPU ``torch.Generator`` (seeded by ``seed``), so the sequence of epochs
    is the same on every device and ``state_dict()`` / ``load_state_dict()``
    resume it exactly.

    Args:
        x: (N, C, H, W) uint8, copied to ``device`` once.
        y: (N,) integer labels, copied to ``device`` once.
        device: default CUDA if available, else CPU.
        seed: seeds the one CPU generator of every epoch's draws.
        augment: True: random horizontal flip and random crop from the image
            padded by ``crop_padding`` pixels (reflect), applied to whole
            batches.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *,
                 shuffle: bool = False, augment: bool = False,
                 device: str | torch.device | None = None, seed: int = 0,
                 drop_last: bool = False, channels_last: bool = False,
                 mean: Sequence[float] = CIFAR10_MEAN,
                 std: Sequence[float] = CIFAR10_STD, crop_padding: int = 4):
        _check_images(x, y)
        if (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if len(x) == 0:
            raise ValueError("GPUBatches needs at least one image")
        if drop_last and batch_size > len(x):
            raise ValueError(
                f"batch_size {batch_size} with drop_last=True leaves no batch "
                f"of {len(x)} images"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        if augment and not 0 <= crop_padding < min(x.shape[2:]):
            raise ValueError(
                f"crop_padding must be in [0, {min(x.shape[2:]) - 1}], "
                f"got {crop_padding}")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.x = x.to(self.device)                          # (N, C, H, W) uint8
        self.y = y.to(self.device, torch.int64)             # (N,)
        self.batch_size = batch_size
        self.shuffle, self.augment = bool(shuffle), bool(augment)
        self.drop_last, self.channels_last = bool(drop_last), bool(channels_last)
        self.crop_padding = crop_padding
        self.seed = seed
        self.epoch = 0  # epochs started so far
        self._shift, self._scale = _normalisation(mean, std, x.shape[1], self.device)
        self._generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.y)
        if self.drop_last:
            return n // self.batch_size
        return math.ceil(n / self.batch_size)

    def _draw_epoch(self):
        """Order, flips and crop offsets for one epoch, drawn on the CPU, moved once."""
        n = len(self.y)
        g = self._generator
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        flip = offsets = None
        if self.augment:
            flip = torch.rand(n, generator=g) < 0.5
            offsets = torch.randint(0, 2 * self.crop_padding + 1, (n, 2), generator=g)
            flip, offsets = flip.to(self.device), offsets.to(self.device)
        return order.to(self.device), flip, offsets

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order, flip, offsets = self._draw_epoch()
        self.epoch += 1
        for k in range(len(self)):
            idx = order[k * self.batch_size:(k + 1) * self.batch_size]
            if self.augment:
                sl = slice(k * self.batch_size, (k + 1) * self.batch_size)
                images = augment_batch(
                    self.x, flip[sl], offsets[sl], self.crop_padding, rows=idx
                )
            else:
                images = self.x[idx]
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            # Normalise in one fused expression: (pixel/255 - mean)/std.
            yield (images.float() - self._shift) * self._scale, self.y[idx]

    def state_dict(self) -> dict:
        """The shuffle/augmentation RNG state and epoch count.

        Enough to resume at an epoch boundary.
        """
        return {"generator": self._generator.get_state(), "epoch": self.epoch,
                "size": len(self.y)}

    def load_state_dict(self, state: dict) -> None:
        if state.get("size", len(self.y)) != len(self.y):
            raise ValueError(
                f"state is for {state['size']} images, this loader has {len(self.y)}"
            )
        self._generator.set_state(state["generator"])
        self.epoch = int(state["epoch"])

    def __repr__(self) -> str:
        c, h, w = self.x.shape[1:]
        return (f"GPUBatches(N={len(self.y)}, image=({c}, {h}, {w}), "
                f"batch_size={self.batch_size}, batches={len(self)}, "
                f"shuffle={self.shuffle}, augment={self.augment}, "
                f"drop_last={self.drop_last}, device={self.device})")
