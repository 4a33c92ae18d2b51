"""Fixtures shared by the test modules.

``tiny_cifar``: a tiny image folder shaped like CIFAR-10 (the 10 class
folders of 32x32 PNGs that ``hw2.data`` reads where ``HW2_CIFAR10`` points)
and a decoded-data cache folder, as the environment variables a run needs.
A module says how many images per class it wants with
``TINY_CIFAR_PER_CLASS = (train, test)``; folders are built once per size
per session.

``slurm_cluster`` (from ``slurm_fixture.py``): a real one-node SLURM cluster.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Kernels and training loops the tests start print no progress bars (as in the book
# build); the test of the notebook progress bar unsets it.
os.environ.setdefault("HW2_QUIET", "1")

from slurm_fixture import slurm_cluster  # noqa: F401  (a fixture for every module)

#: images per class (train, test) where a module sets no TINY_CIFAR_PER_CLASS
DEFAULT_PER_CLASS = (4, 2)


def make_tiny_cifar(root: Path, train_per_class: int, test_per_class: int) -> dict[str, str]:
    """Write a CIFAR-10-shaped image folder under ``root``.

    Every class gets its own mean colour, so the task is learnable at all.
    Returns ``{"HW2_CIFAR10": ..., "HW2_CACHE_DIR": ...}`` for a run's environment.
    """
    import numpy as np
    from PIL import Image

    from hw2.data import CIFAR10_CLASSES

    rng = np.random.default_rng(0)
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(CIFAR10_CLASSES):
            folder = root / "images" / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.normal(25 * label, 40, size=(32, 32, 3)).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    cache = root / "cache"
    cache.mkdir()
    env = {"HW2_CIFAR10": str(root / "images"), "HW2_CACHE_DIR": str(cache)}
    decode_once(env)
    return env


def decode_once(env: dict[str, str]) -> None:
    """Decode a tiny folder into its cache now, so no test sees the first decode.

    The first decode warns that the folder is smaller than CIFAR-10 (a
    DataWarning on stderr); decoded here, no test's output depends on which test
    happened to decode first.
    """
    import os
    import warnings

    from hw2.data import DataWarning, load_cifar10

    saved = os.environ.get("HW2_CACHE_DIR")
    os.environ["HW2_CACHE_DIR"] = env["HW2_CACHE_DIR"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            load_cifar10(env["HW2_CIFAR10"])
    finally:
        if saved is None:
            os.environ.pop("HW2_CACHE_DIR")
        else:
            os.environ["HW2_CACHE_DIR"] = saved


@pytest.fixture(scope="session")
def tiny_cifar_folders(tmp_path_factory):
    """``get(train_per_class, test_per_class)`` -> environment of a tiny CIFAR-10 folder (cached)."""
    built: dict[tuple[int, int], dict[str, str]] = {}

    def get(train_per_class: int, test_per_class: int) -> dict[str, str]:
        key = (train_per_class, test_per_class)
        if key not in built:
            root = tmp_path_factory.mktemp(f"tiny_cifar_{train_per_class}_{test_per_class}")
            built[key] = make_tiny_cifar(root, *key)
        return dict(built[key])

    return get


@pytest.fixture
def tiny_cifar(request, tiny_cifar_folders) -> dict[str, str]:
    """Environment variables pointing hw2.data at a tiny synthetic CIFAR-10 folder,
    with the calling module's ``TINY_CIFAR_PER_CLASS`` images per class."""
    train, test = getattr(request.module, "TINY_CIFAR_PER_CLASS", DEFAULT_PER_CLASS)
    return tiny_cifar_folders(train, test)


@pytest.fixture
def tiny_env(tiny_cifar, monkeypatch, tmp_path) -> Path:
    """The tiny data set in the environment, results under ``tmp_path/results``."""
    for key, value in tiny_cifar.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HW2_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path
