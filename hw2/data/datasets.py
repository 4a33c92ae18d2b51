"""Subsets and torch ``Dataset`` s of CIFAR-10: the chapters' ``DataLoader`` path.

Class-balanced subsets (:func:`class_balanced_indices`), a validation split
held out of the training images (:func:`train_val_indices`), and
:class:`CIFAR10Dataset`, which converts images one batch at a time from uint8.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch

from hw2 import _checks
from hw2.data.base import CIFAR10, CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
from hw2.data.batches import _check_images, _normalisation, augment_batch
from hw2.data.cache import load_cifar10

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
    _checks.non_negative_int("subset size", size)
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
