"""Batches made on the device: whole-batch augmentation and :class:`GPUBatches`.

The experiment runner's path (the idea of the fast CIFAR-10 scripts, airbench):
the whole dataset lives on the device as uint8, and shuffling, flip/crop
augmentation and normalisation run on whole batches there.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch

from hw2 import _checks
from hw2.data.base import CIFAR10_MEAN, CIFAR10_STD

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
        _checks.fail("std", "positive", std)
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
        _checks.fail("pad", f"in [0, {min(h, w) - 1}] for {h}x{w} images", pad)
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
        batch_size = _checks.positive_int("batch_size", batch_size)
        if len(x) == 0:
            raise ValueError("GPUBatches needs at least one image")
        if drop_last and batch_size > len(x):
            raise ValueError(
                f"batch_size {batch_size} with drop_last=True leaves no batch "
                f"of {len(x)} images"
            )
        _checks.non_negative_int("seed", seed)
        if augment and not 0 <= crop_padding < min(x.shape[2:]):
            _checks.fail("crop_padding", f"in [0, {min(x.shape[2:]) - 1}]",
                         crop_padding)
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

    def images(self, n: int | None = None) -> torch.Tensor:
        """The first ``n`` images (all: None) as the model sees them, unaugmented.

        Normalised float32 ``(n, C, H, W)`` on the device: what a model's
        data-dependent initialisation reads (``YourCodeNet.init_from_data``).
        """
        return (self.x[:n].float() - self._shift) * self._scale

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
