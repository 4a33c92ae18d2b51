"""Tests for hw2.data: sources, the cache, errors, Datasets and GPUBatches (on the CPU)."""
from __future__ import annotations

import io
import os
import pickle
import tarfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hw2.data as data
from hw2.data import (CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, CorruptDataError,
                      DataUnavailableError, DataWarning, GPUBatches, augment_batch,
                      cifar10_datasets, class_balanced_indices, load_cifar10)

N_TRAIN, N_TEST = 4, 2  # images per class in the synthetic sources
pytestmark = pytest.mark.filterwarnings("ignore::hw2.data.DataWarning")  # tiny sources


def _pixels(split: str, label: int, k: int) -> np.ndarray:
    """A deterministic, distinct 32x32 RGB image: (32, 32, 3) uint8."""
    rng = np.random.default_rng(1000 * label + 10 * k + (split == "test"))
    return rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _expected(fmt: str):
    """Expected tensors (x (N,3,32,32), y) for a synthetic source, in the loader's order."""
    out = {}
    for split, per in (("train", N_TRAIN), ("test", N_TEST)):
        xs, ys = [], []
        for label in range(10):
            for k in range(per):
                array = _pixels(split, label, k)
                if fmt == "JPEG":  # the loader sees the decoded JPEG, not the original pixels
                    array = np.asarray(Image.open(io.BytesIO(_encode(array, fmt))).convert("RGB"))
                xs.append(array)
                ys.append(label)
        out[split] = (torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2), torch.tensor(ys))
    return out


def make_folder(root: Path, fmt: str = "PNG", prefix: str = "cifar10") -> Path:
    ext = {"PNG": "png", "JPEG": "jpg"}[fmt]
    for split, per in (("train", N_TRAIN), ("test", N_TEST)):
        for label, cls in enumerate(CIFAR10_CLASSES):
            folder = root / prefix / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per):
                (folder / f"{k:04d}.{ext}").write_bytes(_encode(_pixels(split, label, k), fmt))
    (root / prefix / "train" / ".DS_Store").write_bytes(b"junk")  # ignored
    return root / prefix


def make_archive(tmp: Path, mode: str, fmt: str = "JPEG") -> Path:
    folder = make_folder(tmp / f"src-{mode}-{fmt}", fmt, prefix="cifar10-jpeg")
    suffix = {"w:xz": ".tar.xz", "w:gz": ".tar.gz"}[mode]
    path = tmp / f"cifar{suffix}"
    with tarfile.open(path, mode) as tar:
        tar.add(folder, arcname="cifar10-jpeg")
    return path


def make_batches(root: Path, per_batch: int = 6) -> Path:
    """A miniature cifar-10-batches-py folder in torchvision's pickle format."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {b"label_names": [c.encode() for c in CIFAR10_CLASSES]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own cache folder and no HW2_CIFAR10 from the environment."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HW2_CACHE_DIR", str(cache))
    monkeypatch.delenv("HW2_CIFAR10", raising=False)
    return cache


def _load(source):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # tiny sources are not the full CIFAR-10
        return load_cifar10(source)


# --------------------------------------------------------------------------- sources

@pytest.mark.parametrize("mode", ["w:xz", "w:gz"])
def test_archive_loads_images_labels_and_name(tmp_path, mode):
    path = make_archive(tmp_path, mode)
    with pytest.warns(DataWarning, match="50,000"):
        ds = load_cifar10(path)
    exp = _expected("JPEG")
    assert ds.classes == list(CIFAR10_CLASSES)
    assert ds.source_name == "CIFAR-10 (JPEG copy)"
    assert ds.train_x.dtype == torch.uint8 and ds.train_x.shape == (10 * N_TRAIN, 3, 32, 32)
    assert ds.test_y.dtype == torch.int64 and ds.test_x.shape == (10 * N_TEST, 3, 32, 32)
    assert torch.equal(ds.train_x, exp["train"][0]) and torch.equal(ds.train_y, exp["train"][1])
    assert torch.equal(ds.test_x, exp["test"][0]) and torch.equal(ds.test_y, exp["test"][1])
    assert not ds.is_full and "not the full CIFAR-10" in ds.describe()
    assert "train=40" in repr(ds)


def test_png_folder_is_pixel_exact(tmp_path):
    folder = make_folder(tmp_path / "data", "PNG")
    ds = _load(folder)
    exp = _expected("PNG")
    assert torch.equal(ds.train_x, exp["train"][0]) and torch.equal(ds.test_y, exp["test"][1])
    assert ds.source_name == "CIFAR-10"
    # The folder's parent works too: train/ and test/ are found below it.
    assert torch.equal(_load(tmp_path / "data").train_x, ds.train_x)


def test_batches_folder_and_its_archive(tmp_path):
    folder = make_batches(tmp_path / "tv")
    ds = _load(folder)
    assert ds.source_name == "CIFAR-10" and ds.classes == list(CIFAR10_CLASSES)
    assert ds.train_x.shape == (30, 3, 32, 32) and ds.test_x.shape == (6, 3, 32, 32)
    first = pickle.loads((folder / "data_batch_1").read_bytes())
    assert torch.equal(ds.train_x[:6].reshape(6, -1), torch.from_numpy(first[b"data"]))
    assert ds.train_y[:6].tolist() == first[b"labels"]
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    from_archive = _load(archive)
    assert torch.equal(from_archive.train_x, ds.train_x) and torch.equal(from_archive.test_y, ds.test_y)
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"labels": [1]}))
    with pytest.raises(CorruptDataError, match="data_batch_3 is not a CIFAR-10 batch"):
        _load(folder)


def test_parallel_decode_matches_serial(tmp_path, monkeypatch, isolated_cache):
    path = make_archive(tmp_path, "w:gz")
    serial = _load(path)
    for f in isolated_cache.iterdir():
        f.unlink()
    monkeypatch.setattr(data.sources, "_PARALLEL_MIN_IMAGES", 0)
    parallel = data.load_cifar10(path, workers=2)
    assert torch.equal(parallel.train_x, serial.train_x) and torch.equal(parallel.test_y, serial.test_y)


def test_env_var_and_relative_paths(tmp_path, monkeypatch):
    path = make_archive(tmp_path, "w:gz")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HW2_CIFAR10", path.name)  # relative to the current directory
    assert len(_load(None).train_y) == 10 * N_TRAIN
    monkeypatch.chdir(tmp_path / "cache")  # created by the first load; holds no cifar.tar.gz
    with pytest.raises(DataUnavailableError) as info:
        _load(None)
    message = str(info.value)
    assert "HW2_CIFAR10='cifar.tar.gz'" in message and str(data.sources.repo_root()) in message
    monkeypatch.setattr(data.sources, "repo_root", lambda: tmp_path)  # then relative to the repo root
    assert _load(None).source == str(path.resolve())


def test_inconsistent_sources_raise(tmp_path):
    folder = make_folder(tmp_path / "d", "PNG")
    (folder / "test" / "airplane" / "0000.png").write_bytes(
        _encode(np.zeros((16, 16, 3), np.uint8), "PNG"))
    with pytest.raises(CorruptDataError, match="one size"):
        _load(folder)
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    (empty / "test").mkdir()
    with pytest.raises(CorruptDataError, match="contains no train"):
        _load(empty)
    with pytest.raises(CorruptDataError, match="neither"):
        _load(folder / "train")  # class folders, but no train/ and test/


# --------------------------------------------------------------------------- cache

def test_cache_hit_is_fast_and_equal(tmp_path, isolated_cache):
    path = make_archive(tmp_path, "w:xz")
    first = _load(path)
    files = list(isolated_cache.glob("cifar10-*.pt"))
    assert len(files) == 1 and first.cache_path == files[0]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a cache hit decodes nothing, so warns nothing
        second = load_cifar10(path)
    assert time.perf_counter() - start < 1.0
    for name in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(first, name), getattr(second, name))
    assert second.classes == first.classes and second.source_name == first.source_name
    assert list(isolated_cache.iterdir()) == files  # no temporary files left


def test_cache_key_follows_the_source(tmp_path, isolated_cache):
    path = make_archive(tmp_path, "w:gz")
    before = _load(path).cache_path
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # "replaced" file
    after = _load(path).cache_path
    assert before != after
    folder = make_folder(tmp_path / "f", "PNG")
    key1 = _load(folder).cache_path
    (folder / "train" / "cat" / "0000.png").write_bytes(_encode(_pixels("x", 0, 0), "PNG"))
    reloaded = _load(folder)
    assert reloaded.cache_path != key1
    assert torch.equal(reloaded.train_x[3 * N_TRAIN], torch.from_numpy(_pixels("x", 0, 0)).permute(2, 0, 1))


def test_unreadable_cache_is_rebuilt(tmp_path, isolated_cache):
    path = make_archive(tmp_path, "w:gz")
    cache_file = _load(path).cache_path
    cache_file.write_bytes(b"not a torch file")
    with pytest.warns(DataWarning, match="damaged cache file .*unreadable"):
        again = load_cifar10(path)
    assert len(again.train_y) == 10 * N_TRAIN
    assert torch.load(cache_file, weights_only=True)["format"] == data.cache._CACHE_FORMAT


@pytest.mark.parametrize("damage, why", [
    (lambda d: d.pop("train_y"), "it lacks train_y"),
    (lambda d: d.update(test_x=d["test_x"].float()), "test_x is not a 4-d torch.uint8 tensor"),
    (lambda d: d.update(train_y=d["train_y"][:3]), "images and labels differ in number"),
])
def test_a_cache_file_with_missing_or_wrong_tensors_is_replaced(tmp_path, isolated_cache,
                                                                 damage, why):
    path = make_archive(tmp_path, "w:gz")
    cache_file = _load(path).cache_path
    saved = dict(torch.load(cache_file, weights_only=True))
    damage(saved)
    torch.save(saved, cache_file)
    with pytest.warns(DataWarning, match=f"damaged cache file .*{why}"):
        again = load_cifar10(path)
    assert len(again.train_y) == 10 * N_TRAIN
    assert data.cache._cache_problem(torch.load(cache_file, weights_only=True)) is None


def test_a_permission_error_is_called_permission_denied(tmp_path, isolated_cache, monkeypatch):
    """A permission error is not called corruption (read as root, whom chmod cannot stop,
    so the refusal is simulated where the file is read)."""
    folder = make_folder(tmp_path / "d", "PNG")
    image = folder / "train" / "dog" / "0001.png"
    real_read = Path.read_bytes

    def read_bytes(self):
        if self == image:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(data.DataUnavailableError, match="permission denied on .*0001.png"):
        _load(folder)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_archive_names_file_and_leaves_no_cache(tmp_path, isolated_cache, damage):
    good = make_archive(tmp_path, "w:xz").read_bytes()
    bad = tmp_path / "broken.tar.xz"
    bad.write_bytes(good[: len(good) // 2] if damage == "truncate" else b"\xfd7zXZ\x00" + b"x" * 500)
    with pytest.raises(CorruptDataError) as info:
        load_cifar10(bad)
    assert str(bad) in str(info.value)
    assert not isolated_cache.exists() or list(isolated_cache.iterdir()) == []


def test_corrupt_image_is_reported(tmp_path, isolated_cache):
    folder = make_folder(tmp_path / "d", "JPEG")
    (folder / "train" / "dog" / "0001.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(CorruptDataError, match="train/dog/0001.jpg cannot be decoded"):
        _load(folder)
    assert not isolated_cache.exists() or list(isolated_cache.iterdir()) == []


def test_no_data_no_network_gives_one_clear_error(monkeypatch, isolated_cache):
    from torchvision.datasets import utils as tv_utils

    def offline(*args, **kwargs):
        raise OSError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(DataUnavailableError) as info:
        load_cifar10()
    message = str(info.value)
    assert "HW2_CIFAR10" in message and "export HW2_CIFAR10=" in message
    assert ".tar.xz" in message and "cifar-10-batches-py" in message
    assert "Network is unreachable" in message


def test_write_failure_cleans_up_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "out" / "x.pt"

    def failing_save(obj, f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(data.cache.torch, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        data.cache._atomic_torch_save({"a": 1}, target)
    assert list((tmp_path / "out").iterdir()) == []


def test_import_does_no_work():
    import subprocess
    import sys
    code = ("import os, hw2.data as d; os.environ['HW2_CIFAR10']='/nonexistent';"
            "import importlib; importlib.reload(d); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


# --------------------------------------------------------------------------- datasets

def test_class_balanced_indices():
    labels = torch.arange(10).repeat_interleave(50)
    idx = class_balanced_indices(labels, 103, seed=3)
    counts = torch.bincount(labels[idx], minlength=10)
    assert len(idx) == 103 and len(set(idx.tolist())) == 103
    assert counts.min() == 10 and counts.max() == 11 and counts.sum() == 103
    assert torch.equal(idx, class_balanced_indices(labels, 103, seed=3))
    assert not torch.equal(idx, class_balanced_indices(labels, 103, seed=4))
    assert sorted(class_balanced_indices(labels, None).tolist()) == list(range(500))
    for bad in (-1, 501, 2.5, True):
        with pytest.raises(ValueError):
            class_balanced_indices(labels, bad)


def test_cifar10_datasets_balanced_normalised_flattened(tmp_path):
    folder = make_folder(tmp_path / "d", "PNG")
    ds_train, ds_test = cifar10_datasets(20, 10, seed=1, source=folder, flatten=True)
    assert len(ds_train) == 20 and len(ds_test) == 10
    assert torch.bincount(ds_train.y, minlength=10).tolist() == [2] * 10
    assert torch.bincount(ds_test.y, minlength=10).tolist() == [1] * 10
    x, y = ds_train[0]
    assert x.shape == (3072,) and x.dtype == torch.float32 and isinstance(y, int)
    raw = ds_train.x[0].float() / 255
    mean, std = torch.tensor(CIFAR10_MEAN).view(3, 1, 1), torch.tensor(CIFAR10_STD).view(3, 1, 1)
    assert torch.allclose(x, ((raw - mean) / std).flatten(), atol=1e-5)
    image, _ = cifar10_datasets(source=folder)[1][0]
    assert image.shape == (3, 32, 32)
    loaded = _load(folder)
    full_train, _ = cifar10_datasets(source=loaded)
    assert len(full_train) == 10 * N_TRAIN


def test_dataloader_batches_match_items():
    x = torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8)
    ds = data.CIFAR10Dataset(x, torch.arange(20), flatten=True)
    xb, yb = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True)))
    assert xb.shape == (8, 48) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert torch.allclose(xb, torch.stack([ds[i][0] for i in yb.tolist()]))


def test_dataset_augmentation_is_flip_and_crop_of_the_image():
    x = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    ds = data.CIFAR10Dataset(x, torch.tensor([0]), augment=True, mean=(0, 0, 0), std=(1 / 255,) * 3)
    torch.manual_seed(0)
    padded = torch.nn.functional.pad(x.float(), (4, 4, 4, 4), mode="reflect")[0]
    windows = {padded[:, i:i + 32, j:j + 32] for i in range(9) for j in range(9)}
    for _ in range(10):
        out, _ = ds[0]
        assert any(torch.equal(out, w) or torch.equal(out, w.flip(-1)) for w in windows)


# --------------------------------------------------------------------------- augmentation

def test_augment_batch_identity_flip_and_crop():
    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    centre = torch.full((5, 2), 4)
    no_flip, all_flip = torch.zeros(5, dtype=torch.bool), torch.ones(5, dtype=torch.bool)
    assert torch.equal(augment_batch(x, no_flip, centre), x)
    flipped = augment_batch(x, all_flip, centre)
    assert torch.equal(flipped, x.flip(-1))
    assert torch.equal(augment_batch(flipped, all_flip, centre), x)  # flip twice = identity
    # Every crop equals the matching window of the reflect-padded image.
    padded = torch.nn.functional.pad(x.float(), (4, 4, 4, 4), mode="reflect").to(torch.uint8)
    gen = torch.Generator().manual_seed(0)
    offsets = torch.randint(0, 9, (5, 2), generator=gen)
    flips = torch.rand(5, generator=gen) < 0.5
    out = augment_batch(x, flips, offsets)
    for b in range(5):
        dy, dx = offsets[b].tolist()
        window = padded[b, :, dy:dy + 32, dx:dx + 32]
        assert torch.equal(out[b], window.flip(-1) if flips[b] else window)
    rows = torch.tensor([4, 0])
    assert torch.equal(augment_batch(x, no_flip[:2], centre[:2], rows=rows), x[rows])
    with pytest.raises(ValueError):
        augment_batch(x, no_flip[:3], centre)


# --------------------------------------------------------------------------- GPUBatches (on CPU)

def _toy(n=50):
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=gen)
    return x, torch.arange(n)


def test_gpubatches_shapes_dtypes_normalisation():
    x, y = _toy()
    loader = GPUBatches(x, y, 16, device="cpu")
    batches = list(loader)
    assert len(loader) == len(batches) == 4
    assert [len(b[1]) for b in batches] == [16, 16, 16, 2]
    xb, yb = batches[0]
    assert xb.dtype == torch.float32 and xb.shape == (16, 3, 8, 8) and yb.dtype == torch.int64
    mean, std = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    assert torch.allclose(xb, (x[:16].float() / 255 - mean) / std, atol=1e-5)
    assert torch.equal(yb, y[:16])
    dropped = GPUBatches(x, y, 16, drop_last=True, device="cpu")
    assert len(dropped) == 3 and len(list(dropped)) == 3
    cl = next(iter(GPUBatches(x, y, 16, device="cpu", channels_last=True)))[0]
    assert cl.is_contiguous(memory_format=torch.channels_last)
    assert "batch_size=16" in repr(loader)


def test_gpubatches_shuffle_covers_each_index_once_and_is_seeded():
    x, y = _toy()
    loader = GPUBatches(x, y, 7, shuffle=True, seed=5, device="cpu")
    epochs = [torch.cat([yb for _, yb in loader]) for _ in range(2)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(50))
    assert not torch.equal(epochs[0], epochs[1])
    again = GPUBatches(x, y, 7, shuffle=True, seed=5, device="cpu")
    assert torch.equal(torch.cat([yb for _, yb in again]), epochs[0])
    # Images travel with their labels.
    for xb, yb in GPUBatches(x, y, 7, shuffle=True, seed=5, device="cpu", mean=(0,) * 3, std=(1 / 255,) * 3):
        assert torch.equal(xb, x[yb].float())


def test_gpubatches_state_dict_resumes_exactly():
    x, y = _toy()
    make = lambda: GPUBatches(x, y, 8, shuffle=True, augment=True, seed=1, device="cpu", crop_padding=2)  # noqa: E731
    a = make()
    list(a)
    state = a.state_dict()
    next_a = [b for b in a]
    b = make()
    b.load_state_dict(state)
    next_b = [bb for bb in b]
    assert b.epoch == a.epoch == 2
    for (xa, ya), (xb, yb) in zip(next_a, next_b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    with pytest.raises(ValueError):
        GPUBatches(x[:10], y[:10], 8, device="cpu").load_state_dict(state)


def test_gpubatches_augmentation_keeps_image_content():
    x, y = _toy(20)
    loader = GPUBatches(x, y, 20, augment=True, device="cpu", seed=3,
                        mean=(0,) * 3, std=(1 / 255,) * 3, crop_padding=4)
    xb, yb = next(iter(loader))
    padded = torch.nn.functional.pad(x.float(), (4, 4, 4, 4), mode="reflect")
    flips = 0
    for out, label in zip(xb, yb):
        matches = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (0, 1)
                   if torch.equal(out, padded[label, :, dy:dy + 8, dx:dx + 8].flip(-1) if f
                                  else padded[label, :, dy:dy + 8, dx:dx + 8])]
        assert matches, "every augmented image is a flipped/cropped window of its source"
        flips += matches[0][2]
    assert 0 < flips < 20
    assert not torch.equal(xb, x.float())


@pytest.mark.parametrize("kwargs, error", [
    (dict(batch_size=0), ValueError), (dict(batch_size=2.0), ValueError),
    (dict(batch_size=100, drop_last=True), ValueError), (dict(seed="1"), ValueError),
    (dict(mean=(0, 0)), ValueError), (dict(std=(1, 0, 1)), ValueError),
    (dict(augment=True, crop_padding=8), ValueError), (dict(device="nodevice"), RuntimeError),
])
def test_gpubatches_rejects_bad_arguments(kwargs, error):
    x, y = _toy()
    args = dict(batch_size=8, device="cpu") | kwargs
    with pytest.raises(error):
        GPUBatches(x, y, **args)


def test_gpubatches_rejects_bad_data():
    x, y = _toy()
    with pytest.raises(TypeError):
        GPUBatches(x.float(), y, 8, device="cpu")
    with pytest.raises(ValueError):
        GPUBatches(x, y[:-1], 8, device="cpu")
    with pytest.raises(TypeError):
        GPUBatches(x, y.float(), 8, device="cpu")


# --------------------------------------------------------------------------- the real archive

@pytest.mark.skipif(not os.environ.get("HW2_CIFAR10"),
                    reason="set HW2_CIFAR10 to a CIFAR-10 copy to test loading the real data")
def test_real_cifar10(monkeypatch):
    # The autouse fixture removed HW2_CIFAR10 and isolated the cache; use the real ones.
    monkeypatch.undo()
    ds = load_cifar10()
    assert ds.is_full and ds.classes == list(CIFAR10_CLASSES)
    assert ds.train_x.shape == (50_000, 3, 32, 32) and ds.test_x.shape == (10_000, 3, 32, 32)
    assert torch.bincount(ds.train_y).tolist() == [5000] * 10
    assert torch.bincount(ds.test_y).tolist() == [1000] * 10
    mean = ds.train_x[::10].float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor(CIFAR10_MEAN), atol=0.01)
    start = time.perf_counter()
    load_cifar10()
    assert time.perf_counter() - start < 1.0


# --------------------------------------------------------------------------- the splits

def test_the_validation_images_are_held_out_of_the_training_images():
    """The validation split never overlaps the training subset, for any sizes and seed,
    and both are class-balanced; the same seed gives the same split."""
    labels = torch.arange(10).repeat_interleave(60)  # 60 images per class
    for train, val, seed in [(400, 100, 0), (100, 200, 7), (None, 50, 3), (300, None, 1)]:
        train_idx, val_idx = data.train_val_indices(labels, train, val, seed)
        assert not set(train_idx.tolist()) & set(val_idx.tolist())
        assert len(val_idx) == (val or 0)
        assert len(train_idx) == (train if train is not None else 600 - (val or 0))
        if val:
            assert torch.bincount(labels[val_idx], minlength=10).tolist() == [val // 10] * 10
        again = data.train_val_indices(labels, train, val, seed)
        assert torch.equal(again[0], train_idx) and torch.equal(again[1], val_idx)


def test_only_the_training_set_is_augmented(tmp_path, isolated_cache):
    """cifar10_datasets(augment=True): the training images are flipped and cropped on
    every read, the validation and test images never."""
    path = make_archive(tmp_path, "w:gz", fmt="PNG")
    ds_train, ds_val, ds_test = data.cifar10_datasets(source=path, augment=True,
                                                      val_size=10, seed=0)
    assert ds_train.augment and not ds_val.augment and not ds_test.augment
    torch.manual_seed(0)
    for ds in (ds_val, ds_test):
        for i in range(len(ds)):
            assert torch.equal(ds[i][0], ds[i][0])  # the same image every time
    changed = sum(not torch.equal(ds_train[i][0], ds_train[i][0])
                  for i in range(len(ds_train)))
    assert changed > len(ds_train) // 2

