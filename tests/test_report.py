"""hw2.report: the experiments chapter's tables and figures, from result files."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402

from hw2 import report  # noqa: E402
from hw2.experiments import EXPERIMENTS, result_path  # noqa: E402
from hw2.experiments.results import RESULT_FORMAT, write_result  # noqa: E402


def fake_result(cfg, val_loss, test_acc, device="Test CPU", seconds=10.0):
    """A result file of the run ``cfg`` with the given curves (one value per epoch)."""
    n = len(val_loss)
    write_result(result_path(cfg), {
        "format": RESULT_FORMAT,
        "config": {**cfg.to_dict(), "pool_every": cfg.resolved_pool_every,
                   "bs_test": cfg.bs_test or cfg.bs_train, "channels": cfg.channels},
        "results": {"num_epochs": n, "train_loss": [1.0] * n, "train_acc": [50.0] * n,
                    "val_loss": val_loss, "val_acc": [40.0 + i for i in range(n)],
                    "test_loss": [1.0] * n, "test_acc": test_acc},
        "best_epoch": 1 + min(range(n), key=val_loss.__getitem__),
        "diverged": False,
        "timing": {"total_s": seconds * n, "epoch_s": [seconds] * n,
                   "train_images_per_s": 100.0},
        "device": {"type": "cpu", "name": device, "threads": 2},
    })


def runs_of(name, protocol, root):
    return [cfg for cfg in EXPERIMENTS[name].runs(
        {"out_dir": str(root / protocol)}, protocol=protocol)]


def test_the_chapter_shows_gpu_results_only_when_an_experiment_is_complete(tmp_path):
    for cfg in runs_of("exp1_3", "cpu", tmp_path):
        fake_result(cfg, [2.0, 1.5, 1.7], [30.0, 40.0, 45.0])
    gpu = runs_of("exp1_3", "gpu", tmp_path)
    for cfg in gpu[:-1]:
        fake_result(cfg, [1.0], [80.0], device="Test GPU")
    assert report.shown_protocol("exp1_3", tmp_path) == "cpu"
    fake_result(gpu[-1], [1.0], [80.0], device="Test GPU")
    assert report.shown_protocol("exp1_3", tmp_path) == "gpu"


def test_summary_selects_the_epoch_of_the_lowest_validation_loss(tmp_path):
    cfgs = runs_of("exp1_3", "cpu", tmp_path)
    fake_result(cfgs[0], [2.0, 1.5, 1.7], [30.0, 40.0, 45.0], seconds=4.0)
    runs = report.study_runs("exp1_3", "cpu", tmp_path)
    table = report.summary_table(runs)
    assert table.column("run") == [c.file_stem for c in cfgs]
    # Epoch 2 has the lowest validation loss: its test accuracy (40), not the best (45).
    assert table.rows[0][2:] == ["41.0", 2, "40.0", "3", "4.0"]
    assert table.rows[1][2] == "missing"
    note = report.missing_note(runs)
    assert note.startswith("3 of 4 result files of exp1_3 (cpu protocol) are missing")
    assert "sweep exp1_3 --protocol cpu" in note
    assert report.hardware_label(runs) == "protocol cpu, Test CPU (2 threads)"
    assert "| exp1_3_L1_K64-128-256 |" in table._repr_markdown_()
    assert "<td>missing</td>" in table._repr_html_()
    status = report.status_table(tmp_path)
    assert status.rows == [[cfgs[0].file_stem, "cpu", "Test CPU (2 threads)", "12", "100"]]


def test_architecture_table_has_one_head_per_k(tmp_path):
    table = report.architecture_table("exp1_1")
    heads = {}
    for run, shape, head in zip(table.column("run"), table.column("features into the head"),
                                table.column("head parameters")):
        heads.setdefault(run.rsplit("_K", 1)[1], set()).add((shape, head))
    assert {k: len(v) for k, v in heads.items()} == {"32": 1, "64": 1}
    assert {next(iter(v))[0] for v in heads.values()} == {"32×2×2", "64×2×2"}


def test_figures_name_protocol_and_hardware_and_say_when_empty(tmp_path):
    runs = report.study_runs("exp2", "cpu", tmp_path)
    empty = report.experiment_figure(runs, "Experiment 2")
    assert "no result files yet (protocol cpu, no results yet)" in empty.axes[0].texts[0].get_text()
    fake_result(runs[0].cfg, [2.0, 1.0], [30.0, 40.0])
    fig = report.experiment_figure(report.study_runs("exp2", "cpu", tmp_path), "Experiment 2")
    assert fig._suptitle.get_text() == "Experiment 2\nprotocol cpu, Test CPU (2 threads)"
    assert [line.get_label() for line in fig.axes[2].lines] == ["L3_K32-64-128"]


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_has_a_table_row_per_run(name, tmp_path):
    runs = report.study_runs(name, "cpu", tmp_path)
    assert len(report.summary_table(runs).rows) == len(EXPERIMENTS[name].runs())


def test_quiet_timing_reads_the_benchmark_file(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(report, "repo_root", lambda: tmp_path)
    assert report.quiet_timing("cpu") is None
    (tmp_path / "benchmarks").mkdir()
    path = tmp_path / "benchmarks" / "study_time_cpu.json"
    path.write_text(json.dumps({"epoch_s": {"a": [1.0]}, "projected_run_s": {"a": 5.0},
                                "projected_total_s": 5.0}))
    assert report.quiet_timing("cpu")["projected_total_s"] == 5.0
    path.write_text(json.dumps({"epoch_s": {}}))
    with pytest.raises(ValueError, match="lacks projected_run_s, projected_total_s"):
        report.quiet_timing("cpu")
