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

The modules, each importing only those before it: :mod:`~hw2.data.base` (the
constants, the errors, :class:`CIFAR10`), :mod:`~hw2.data.sources` (finding
and decoding a source), :mod:`~hw2.data.cache` (the decoded-data cache and
:func:`load_cifar10`), :mod:`~hw2.data.batches` (augmentation and
:class:`GPUBatches`), :mod:`~hw2.data.datasets` (subsets and the torch
``Dataset``). The first three are plumbing; the last two are what the chapters
study.

Importing this package does no work: nothing is read until a function is called.
"""
from hw2.data.base import (CIFAR10, CIFAR10_CLASSES, CIFAR10_COUNTS, CIFAR10_MEAN,
                           CIFAR10_STD, CorruptDataError, DataError,
                           DataUnavailableError, DataWarning)
from hw2.data.batches import GPUBatches, augment_batch
from hw2.data.cache import ENV_CACHE, cache_dir, load_cifar10
from hw2.data.datasets import (CIFAR10Dataset, cifar10_datasets, class_balanced_indices,
                               train_val_indices)
from hw2.data.sources import ENV_SOURCE

__all__ = [
    "CIFAR10", "CIFAR10_CLASSES", "CIFAR10_COUNTS", "CIFAR10_MEAN", "CIFAR10_STD",
    "ENV_SOURCE", "ENV_CACHE",
    "DataError", "DataUnavailableError", "CorruptDataError", "DataWarning",
    "load_cifar10", "cache_dir", "class_balanced_indices", "train_val_indices",
    "CIFAR10Dataset", "cifar10_datasets", "augment_batch", "GPUBatches",
]
