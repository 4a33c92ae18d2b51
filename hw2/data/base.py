"""CIFAR-10's constants, the errors of loading it, and :class:`CIFAR10`, the data."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

#: CIFAR-10's class names in label order (which is also alphabetical order,
#: so an image folder's sorted class folders get the original labels).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
#: Per-channel mean and standard deviation of the training images, pixel scale 0..1.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_COUNTS = (50_000, 10_000)  # train, test


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
