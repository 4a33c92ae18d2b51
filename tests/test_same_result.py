"""The training path's numbers do not change when the code around it does.

``tests/data/reference_run.json`` is the result file of one small CPU run
(a residual net, two epochs of three batches, augmentation, a warm-up and
linear decay, a validation split, checkpoints) written by commit 37d63da,
the code that trained the cpu study (``provenance`` in the file). The same
run today must give the same file, field by field, except where and when it
ran (provenance, timing, timestamp, host, the folders). On the CPU model the
reference was made on, the numbers are equal to the last bit; on another,
float rounding may differ in the last digits, and they agree to 1e-4, and the
fields that describe the machine rather than the run (its CPU's name, whether
it computes bfloat16 natively, the Python interpreter's version) are left out.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hw2 import experiments as ex

torch = pytest.importorskip("torch")
TINY_CIFAR_PER_CLASS = (8, 4)
REFERENCE = Path(__file__).with_name("data") / "reference_run.json"
#: Fields that say where, when and by which code a run went, not what it trained.
PLACE = {"provenance", "timing", "timestamp", "host"}
#: Fields that describe the machine: compared only on the reference's CPU model.
MACHINE = {"device": ("name", "native_bf16"), "versions": ("python",)}


def the_run(out: Path) -> Path:
    return ex.run_experiment(
        "ref", out_dir=out, seed=7, device="cpu", epochs=2, batches=3,
        filters_per_layer=[8, 16], layers_per_block=1, pool_every=1, hidden_dims=[32],
        bs_train=16, bs_test=32, val_size=20, train_size=60, test_size=20,
        model_type="resnet", augment=True, lr_schedule="linear", warmup=0.5,
        early_stopping=0, checkpoints=str(out / "ck"))


def numbers_close(a, b, rel: float) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(numbers_close(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(numbers_close(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=rel)
    return a == b


def test_the_small_cpu_run_gives_the_reference_result(tiny_cifar, monkeypatch, tmp_path):
    for key, value in tiny_cifar.items():
        monkeypatch.setenv(key, value)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the reference ran
    try:
        record = ex.load_record(the_run(tmp_path / "out"))
    finally:
        torch.set_num_threads(threads)
    reference = json.loads(REFERENCE.read_text())
    assert reference["provenance"]["commit"].startswith("37d63da")
    for part in (record, reference):
        for key in PLACE:
            part.pop(key, None)
        part["config"].pop("out_dir"), part["config"].pop("checkpoints")
    assert set(record) == set(reference), set(record) ^ set(reference)
    same_cpu = record["device"]["name"] == reference["device"]["name"]
    if not same_cpu:
        for part in (record, reference):
            for section, keys in MACHINE.items():
                for key in keys:
                    part[section].pop(key)
    for key in reference:
        if same_cpu:
            assert record[key] == reference[key], key
        else:
            assert numbers_close(record[key], reference[key], 1e-4), key
