"""Where CIFAR-10 comes from: an archive, a folder, torchvision's batches, a download.

Source plumbing, apart from what the chapters study: a source is found
(``HW2_CIFAR10``, a path), identified (for the cache key), and decoded into
uint8 tensors, by a pool of processes when there are many images.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import re
import tarfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from hw2._io import repo_root
from hw2.data.base import (CIFAR10_CLASSES, CIFAR10_COUNTS, CorruptDataError,
                           DataError, DataUnavailableError, DataWarning)

ENV_SOURCE = "HW2_CIFAR10"
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
    return {"train_x": train_x, "train_y": train_y,
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
