"""hw2.report: the experiments chapter's statistics, tables and figures, from result files."""
from __future__ import annotations

import math
import random
import re

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402

from hw2 import report  # noqa: E402
from hw2.experiments import (CHECKS, EXPERIMENTS, PROTOCOLS, experiment_status,  # noqa: E402
                             result_path, study_folder)
from hw2.experiments.grid import check_runs, owned, run_owners  # noqa: E402
from hw2.experiments.results import RESULT_FORMAT, write_result  # noqa: E402


def fake_result(cfg, val_loss, test_acc, device="Test CPU", seconds=10.0, val_acc=None,
                amp="bfloat16"):
    """A result file of the run ``cfg`` with the given curves (one value per epoch)."""
    n = len(val_loss)
    write_result(result_path(cfg), {
        "format": RESULT_FORMAT,
        "config": {**cfg.to_dict(), "pool_every": cfg.resolved_pool_every,
                   "bs_test": cfg.bs_test or cfg.bs_train, "channels": cfg.channels},
        "results": {"num_epochs": n, "train_loss": [1.0] * n, "train_acc": [50.0] * n,
                    "val_loss": val_loss,
                    "val_acc": val_acc or [40.0 + i for i in range(n)],
                    "test_loss": [1.0] * n, "test_acc": test_acc},
        "best_epoch": 1 + min(range(n), key=val_loss.__getitem__),
        "diverged": False,
        "timing": {"total_s": seconds * n, "epoch_s": [seconds] * n,
                   "train_images_per_s": 100.0},
        "device": {"type": "cpu", "name": device, "threads": 2, "amp": amp},
    })


def runs_of(name, protocol, root, seed=42):
    """The runs of an experiment as the sweep writes them: seed folder, owner's name."""
    status = experiment_status(name, study_folder(protocol, seed, root), protocol=protocol,
                               seed=seed)
    owners = run_owners(EXPERIMENTS, protocol)
    return [owned(cfg, owners) for cfg, _ in status]


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------

def _t_tail_by_simulation(df, x, n=200_000, seed=0):
    """P(T > x) for Student's t with df degrees of freedom, by simulation."""
    rng = random.Random(seed)
    hits = 0
    for _ in range(n):
        z = rng.gauss(0, 1)
        chi2 = sum(rng.gauss(0, 1) ** 2 for _ in range(df))
        hits += z / math.sqrt(chi2 / df) > x
    return hits / n


def test_t_quantiles_match_the_tables_and_a_simulation():
    # Student's t table, two-sided 95%.
    for df, value in {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 10: 2.228, 30: 2.042}.items():
        assert report.t_quantile(df) == pytest.approx(value, abs=1e-3), df
    # 2.5% of a t distribution with 2 degrees of freedom lies above t_quantile(2).
    assert _t_tail_by_simulation(2, report.t_quantile(2)) == pytest.approx(0.025, abs=0.002)
    with pytest.raises(ValueError, match="t_quantile: df must be a positive integer, got 0"):
        report.t_quantile(0)
    # A bool is not a count of degrees of freedom, even once t_quantile(1) is cached.
    assert report.t_quantile(1, 0.975) == pytest.approx(12.706, abs=1e-3)
    with pytest.raises(ValueError, match="df must be a positive integer, got True"):
        report.t_quantile(True, 0.975)
    for p in (0.5, 1, float("nan"), "0.9"):
        with pytest.raises(ValueError, match=r"t_quantile: p must be a number in \(0.5, 1\)"):
            report.t_quantile(2, p)


def test_estimate_is_the_mean_with_a_t_interval():
    est = report.estimate([40.0, 42.0, 44.0])
    assert (est.mean, est.n, est.sd) == (42.0, 3, 2.0)
    assert est.half == pytest.approx(4.303 * 2 / math.sqrt(3), abs=1e-3)
    assert est.text() == "42.0 ± 5.0" and str(est) == "42.0 ± 5.0 (n=3)"
    one = report.estimate([40.0])
    assert math.isnan(one.half) and one.text() == "40.0"
    with pytest.raises(ValueError, match="at least one"):
        report.estimate([])


def test_the_interval_covers_the_true_mean_95_percent_of_the_time():
    rng = random.Random(1)
    trials = 4000
    covered = 0
    for _ in range(trials):
        est = report.estimate([rng.gauss(10, 3) for _ in range(3)])
        covered += est.low <= 10 <= est.high
    assert covered / trials == pytest.approx(0.95, abs=0.012)


def test_a_paired_difference_cancels_what_a_seed_favours():
    # A seed's validation images favour both networks alike (+-5 points); b is
    # always 1 point better. Unpaired the means differ by 1 inside noise; paired,
    # the difference is exactly -1 for every seed.
    a = {1: 45.0, 2: 55.0, 3: 50.0}
    b = {s: v + 1.0 for s, v in a.items()}
    diff = report.paired_difference(a, b)
    assert (diff.mean, diff.sd, diff.half) == (-1.0, 0.0, 0.0)
    assert report.verdict(diff) == "lower"
    assert report.verdict(report.paired_difference(b, a)) == "higher"
    noisy = report.paired_difference({1: 50.0, 2: 52.0, 3: 49.0}, {1: 49.0, 2: 53.0, 3: 48.0})
    assert noisy.low < 0 < noisy.high and report.verdict(noisy) == "indistinguishable"
    # Only the seeds both have count; one seed has no interval.
    assert report.paired_difference({1: 3.0, 2: 1.0}, {2: 0.0, 9: 5.0}).n == 1
    assert report.verdict(report.paired_difference({1: 3.0}, {1: 0.0})) == "indistinguishable"
    with pytest.raises(ValueError, match="no seed in common"):
        report.paired_difference({1: 1.0}, {2: 1.0})


def test_binomial_standard_error():
    assert report.binomial_se(50.0, 2500) == pytest.approx(1.0)
    assert report.binomial_se(100.0, 10) == 0.0


# --------------------------------------------------------------------------
# Runs over seeds
# --------------------------------------------------------------------------

def test_the_chapter_shows_gpu_results_only_when_every_seed_is_there(tmp_path):
    for seed in PROTOCOLS["cpu"].seeds:
        for cfg in runs_of("exp1_3", "cpu", tmp_path, seed):
            fake_result(cfg, [2.0, 1.5, 1.7], [30.0, 40.0, 45.0])
    seeds = PROTOCOLS["gpu"].seeds
    for seed in seeds:
        for cfg in runs_of("exp1_3", "gpu", tmp_path, seed):
            if (seed, cfg.layers_per_block) != (seeds[-1], 4):
                fake_result(cfg, [1.0], [80.0], device="Test GPU")
    assert report.shown_protocol("exp1_3", tmp_path) == "cpu"
    fake_result(runs_of("exp1_3", "gpu", tmp_path, seeds[-1])[-1], [1.0], [80.0])
    assert report.shown_protocol("exp1_3", tmp_path) == "gpu"


def test_summary_gives_mean_interval_and_seeds_at_the_kept_epoch(tmp_path):
    for seed, shift in zip((42, 43, 44), (0.0, 2.0, 4.0)):
        cfg = runs_of("exp1_3", "cpu", tmp_path, seed)[0]
        # Epoch 2 has the lowest validation loss: its accuracies, not the best.
        fake_result(cfg, [2.0, 1.5, 1.7], [30.0, 40.0 + shift, 45.0], seconds=4.0,
                    val_acc=[35.0, 41.0 + shift, 50.0])
    runs = report.study_runs("exp1_3", "cpu", tmp_path)
    assert [r.n for r in runs] == [3, 0, 0, 0]
    assert runs[0].values("val_acc") == {42: 41.0, 43: 43.0, 44: 45.0}
    table = report.summary_table(runs)
    assert table.column("run") == [r.name for r in runs]
    assert table.rows[0][2:] == ["43.0 ± 5.0", "42.0 ± 5.0", 3, "2", "4.0"]
    assert table.rows[1][2] == "missing"
    note = report.missing_note(runs)
    assert note.startswith("3 of 4 runs of exp1_3 (cpu protocol) lack seeds: "
                           "exp1_3_L2_K64-128-256 (0 of 3)")
    assert "sweep exp1_3 --protocol cpu" in note
    assert report.hardware_label(runs) == "protocol cpu, Test CPU (2 threads), bfloat16"
    assert "| exp1_3_L1_K64-128-256 |" in table._repr_markdown_()
    assert "<td>missing</td>" in table._repr_html_()
    status = report.status_table(tmp_path)
    assert status.rows == [[runs[0].name, "cpu", "Test CPU (2 threads)", 3, "36", "100"]]


def test_networks_two_experiments_share_are_read_from_one_file(tmp_path):
    shared = runs_of("exp1_2", "cpu", tmp_path)
    assert shared[0].file_stem == "exp1_1_L2_K32"  # stored under exp1_1's name
    fake_result(shared[0], [1.0], [40.0])
    e11, e12 = (report.study_runs(n, "cpu", tmp_path) for n in ("exp1_1", "exp1_2"))
    first11 = next(r for r in e11 if r.name == "exp1_1_L2_K32")
    first12 = next(r for r in e12 if r.name == "exp1_2_L2_K32")
    assert first11.done and first12.done and first12.shared and not first11.shared
    assert first12.seeds[42].path == first11.seeds[42].path
    assert report.summary_table(e12).rows[0][0] == "exp1_2_L2_K32 (= exp1_1_L2_K32)"
    # The status table lists the file once, under its owner.
    assert [row[0] for row in report.status_table(tmp_path).rows] == ["exp1_1_L2_K32"]


def test_checks_are_read_from_their_own_folders(tmp_path):
    cfgs = check_runs(CHECKS["float32"], "cpu")
    folder = tmp_path / "cpu" / "checks" / "float32" / "seed43"
    fake_result(cfgs[0].replace(seed=43, out_dir=str(folder)), [1.0], [40.0],
                amp="float32")
    runs = report.check_summaries("float32", "cpu", tmp_path)
    assert [r.name for r in runs] == list(CHECKS["float32"].runs)
    assert [r.n for r in runs] == [1, 0, 0, 0] and not runs[0].cfg.cpu_bf16
    # A file of the study (bf16) in the check's folder is not the check's.
    fake_result(cfgs[1].replace(seed=43, out_dir=str(folder), cpu_bf16=True), [1.0],
                [40.0])
    assert report.check_summaries("float32", "cpu", tmp_path)[1].n == 0


def test_architecture_table_has_one_head_per_k(tmp_path):
    table = report.architecture_table("exp1_1")
    heads = {}
    for run, shape, head in zip(table.column("run"), table.column("features into the head"),
                                table.column("head parameters")):
        heads.setdefault(run.rsplit("_K", 1)[1], set()).add((shape, head))
    assert {k: len(v) for k, v in heads.items()} == {"32": 1, "64": 1}
    assert {next(iter(v))[0] for v in heads.values()} == {"32×2×2", "64×2×2"}


def test_figures_show_a_band_across_seeds_one_legend_and_say_when_empty(tmp_path):
    runs = report.study_runs("exp2", "cpu", tmp_path)
    empty = report.experiment_figure(runs, "Experiment 2")
    assert "no result files yet" in empty.axes[0].texts[0].get_text()
    for seed, acc in zip((42, 43, 44), (50.0, 52.0, 57.0)):
        fake_result(runs_of("exp2", "cpu", tmp_path, seed)[0], [2.0, 1.0], [30.0, 40.0],
                    val_acc=[acc - 10, acc])
    fig = report.experiment_figure(report.study_runs("exp2", "cpu", tmp_path),
                                   "Experiment 2")
    (ax,) = fig.axes
    assert ax.get_title() == "Experiment 2\nprotocol cpu, Test CPU (2 threads), bfloat16"
    (line,) = ax.lines
    assert line.get_label() == "L3_K32-64-128 (n=3)" and line.get_marker() == "o"
    assert list(line.get_ydata()) == pytest.approx([43.0, 53.0])
    (band,) = ax.collections  # lowest to highest seed
    ys = band.get_paths()[0].vertices[:, 1]
    assert min(ys) == pytest.approx(40.0) and max(ys) == pytest.approx(57.0)
    assert len(fig.legends) + sum(a.get_legend() is not None for a in fig.axes) == 1
    # Runs of two experiments with the same L and K are told apart by labels.
    runs = report.study_runs("exp2", "cpu", tmp_path)
    fig = report.experiment_figure(runs, "x",
                                   labels=[f"net {i}" for i in range(len(runs))])
    assert [line.get_label() for line in fig.axes[0].lines] == ["net 0 (n=3)"]
    with pytest.raises(ValueError, match="1 labels for 4 runs"):
        report.experiment_figure(runs, "x", labels=["one"])


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_has_a_table_row_per_run(name, tmp_path):
    runs = report.study_runs(name, "cpu", tmp_path)
    assert len(report.summary_table(runs).rows) == len(EXPERIMENTS[name].runs())


def test_quiet_timing_reads_the_benchmark_file(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(report, "book_path", lambda relative: tmp_path / relative)
    assert report.quiet_timing("cpu") is None
    (tmp_path / "benchmarks").mkdir()
    path = tmp_path / "benchmarks" / "study_time_cpu.json"
    path.write_text(json.dumps({"epoch_s": {"a": [1.0]}, "projected_run_s": {"a": 5.0},
                                "projected_total_s": 5.0}))
    assert report.quiet_timing("cpu")["projected_total_s"] == 5.0
    path.write_text(json.dumps({"epoch_s": {}}))
    with pytest.raises(ValueError, match="lacks projected_run_s, projected_total_s"):
        report.quiet_timing("cpu")


# Sentences that say the study's results came from a GPU (matched on the text with
# its line breaks and runs of spaces made single spaces: a sentence may wrap).
GPU_PROVENANCE = re.compile(
    r"\b(trained|ran|run|produced|results?)\b[^.]{0,60}\bon (a|one|the) (GPU|H100|H200)"
    r"|\bGPU results\b|\bstudy trained on a GPU\b|\bthe GPU it ran on\b"
    r"|\bon which GPU\b|\bthat is GPU work\b", re.I)


def gpu_provenance(text):
    return [m.group(0) for m in GPU_PROVENANCE.finditer(re.sub(r"\s+", " ", text))]


def test_no_page_says_the_study_ran_on_a_gpu_without_gpu_results():
    """Every sentence about where results came from must match the files: while
    results/gpu holds no valid file, no page may say the study ran on a GPU."""
    from pathlib import Path

    root = Path(report.__file__).resolve().parents[1]
    gpu = [s for name in EXPERIMENTS for r in report.study_runs(name, "gpu", root / "results")
           for s in r.seeds.values()]
    pages = sorted((root / "book").rglob("*.md"))
    assert len(pages) > 10
    claims = [f"{p.relative_to(root)}: {claim!r}" for p in pages
              for claim in gpu_provenance(p.read_text())]
    if not gpu:
        assert not claims, claims
    # The pattern finds what the stale pages said, also where a line breaks.
    for stale in ("an architecture study trained on a GPU",
                  "an architecture study\n  trained on a GPU",
                  "How these choices pay off, trained on the full data set on a GPU",
                  "How the GPU results were produced",
                  "on the full CIFAR-10 training set; that is GPU work",
                  "the wall time, the\nGPU it ran on and the package version",
                  "which runs have results, on which GPU, how long"):
        assert gpu_provenance(stale), stale
    # ... and not what the pages say of the protocols and of GPUs in general.
    for fine in ("`gpu` is the full data set, sized for one GPU",
                 "One detail matters on a GPU.",
                 "the chapter shows an experiment's `gpu` results when"):
        assert not gpu_provenance(fine), fine
