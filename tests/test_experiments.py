"""hw2.experiments: the runner, its result files, sweeps that survive a kill, the CLI.

Everything runs on the CPU on a tiny synthetic image folder (10 classes of
32×32 PNGs: the ``tiny_cifar`` fixture of conftest.py) that ``HW2_CIFAR10``
points at, with the decoded-data cache in a temporary folder: no real
CIFAR-10 is needed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hw2
from helpers import check_result_file
from hw2 import experiments as ex

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# The test machine's cores are shared: one thread per process avoids the
# spin-waiting of oversubscribed thread pools (and keeps the suite fast).
torch = pytest.importorskip("torch")
torch.set_num_threads(1)
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

N_TRAIN, N_TEST = 4, 2  # images per class
TINY_CIFAR_PER_CLASS = (N_TRAIN, N_TEST)  # for the tiny_cifar fixture (conftest.py)


@pytest.fixture
def tiny_env(tiny_cifar, monkeypatch, tmp_path) -> Path:
    """In-process runs see the tiny data; the default results folder is a temp folder."""
    for key, value in tiny_cifar.items():
        monkeypatch.setenv(key, value)
    results = tmp_path / "results"
    monkeypatch.setenv("HW2_RESULTS_DIR", str(results))
    return results


def cli(*args, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **ONE_THREAD, **(env or {})}
    return subprocess.run([sys.executable, "-m", "hw2.experiments", *map(str, args)],
                          capture_output=True, text=True, env=full_env, timeout=timeout)


def write_grid(path: Path, epochs: int) -> Path:
    grid = {"tiny": {"model_type": "cnn", "grid": [[[4], [1, 2]], [[6], [1]]],
                     "hparams": {"bs_train": 16, "epochs": epochs, "hidden_dims": [8],
                                 "early_stopping": 0, "device": "cpu"}}}
    path.write_text(json.dumps(grid))
    return path


TINY_FILES = {"tiny_L1_K4.json", "tiny_L2_K4.json", "tiny_L1_K6.json"}


# --------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------

def test_run_exp_cli_writes_named_result_with_all_fields(tiny_cifar, tmp_path):
    out = tmp_path / "out"
    proc = cli("run-exp", "-n", "smoke", "-o", out, "-K", 4, 8, "-L", 1, "-P", 1, "-H", 8,
               "-M", "cnn", "--epochs", 2, "--bs-train", 16, "--early-stopping", 0, env=tiny_cifar)
    assert proc.returncode == 0, proc.stderr
    path = out / "smoke_L1_K4-8.json"
    assert path.is_file() and sorted(p.name for p in out.iterdir()) == [path.name]

    record = json.loads(path.read_text())
    cfg = record["config"]
    assert (cfg["run_name"], cfg["filters_per_layer"], cfg["layers_per_block"]) == ("smoke", [4, 8], 1)
    assert cfg["channels"] == [4, 8] and cfg["pool_every"] == 1 and cfg["hidden_dims"] == [8]
    assert record["results"]["num_epochs"] == 2
    assert all(len(record["results"][k]) == 2 for k in ("train_loss", "train_acc", "test_loss", "test_acc"))
    timing = record["timing"]
    assert timing["total_s"] >= timing["fit_s"] > 0 and len(timing["epoch_s"]) == 2
    assert timing["train_images_per_s"] > 0 and timing["train_images_per_epoch"] == 10 * N_TRAIN // 16 * 16
    assert record["device"]["type"] == "cpu" and record["device"]["name"]
    assert record["device"]["amp"] == "float32"
    assert record["versions"]["hw2"] == hw2.__version__ and record["versions"]["torch"]
    assert record["data"]["source"].startswith("CIFAR-10")  # as hw2.data names the source
    assert (record["data"]["train_images"], record["data"]["test_images"]) == (10 * N_TRAIN, 10 * N_TEST)
    # No batch limit: every epoch sees the whole train split (last partial batch
    # dropped) and the whole test split.
    assert record["data"]["train_images_per_epoch"] == 10 * N_TRAIN // 16 * 16
    assert record["data"]["test_images_per_epoch"] == 10 * N_TEST
    assert record["timestamp"].endswith("+00:00")

    cfg2, fit = ex.load_experiment(path)
    assert cfg2 == cfg and fit.num_epochs == 2 and fit.test_acc == record["results"]["test_acc"]


def test_spec_example_call_writes_test_run_file(tiny_env):
    # SPEC §3.6a, exactly as written (the default out_dir is results_dir()).
    path = ex.run_experiment('test_run', seed=42, bs_train=50, batches=10, epochs=10, early_stopping=5,
                             filters_per_layer=[32, 64], layers_per_block=1, pool_every=1,
                             hidden_dims=[100], model_type='resnet')
    assert path == tiny_env / "test_run_L1_K32-64.json" and path.is_file()
    cfg, fit = ex.load_experiment(path)
    assert cfg["model_type"] == "resnet" and cfg["seed"] == 42 and cfg["channels"] == [32, 64]
    assert 1 <= fit.num_epochs <= 10 and len(fit.test_loss) == fit.num_epochs


def test_batch_limit_is_recorded_as_images_per_epoch(tiny_env):
    # 40 train / 20 test images; at most 2 batches per epoch of each loader.
    path = ex.run_experiment("lim", seed=0, bs_train=8, bs_test=6, batches=2, epochs=1,
                             filters_per_layer=[4], layers_per_block=1, hidden_dims=[8], device="cpu")
    data = ex.load_record(path)["data"]
    assert (data["train_images"], data["test_images"]) == (10 * N_TRAIN, 10 * N_TEST)  # the splits
    assert (data["train_images_per_epoch"], data["test_images_per_epoch"]) == (2 * 8, 2 * 6)  # what ran
    assert ex.load_record(path)["timing"]["train_images_per_epoch"] == 2 * 8


def test_bad_model_keyword_fails_before_data_is_loaded(monkeypatch, tmp_path):
    # No CIFAR-10 anywhere: the unknown model keyword must be the error, not the missing data.
    monkeypatch.setenv("HW2_CIFAR10", str(tmp_path / "no-such-cifar10"))
    monkeypatch.setenv("HW2_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HW2_RESULTS_DIR", str(tmp_path / "results"))
    with pytest.raises(ValueError, match="foo"):
        ex.run_experiment("x", filters_per_layer=[32], layers_per_block=1, foo=1)
    with pytest.raises(ValueError, match="vanishes"):  # an impossible architecture, likewise
        ex.run_experiment("x", filters_per_layer=[8], layers_per_block=6, pool_every=1)
    # Sanity: a good configuration does get as far as the (missing) data.
    from hw2.data import DataError
    with pytest.raises(DataError):
        ex.run_experiment("x", filters_per_layer=[4], layers_per_block=1, hidden_dims=[8], device="cpu")
    assert not (tmp_path / "results").exists()


def test_result_readers_ignore_the_results_readme(tiny_env):
    # results/ holds a README.md beside the JSON files; only *.json are result files.
    import matplotlib
    matplotlib.use("Agg")
    from hw2.plot import plot_exp_results

    tiny_env.mkdir(parents=True)
    (tiny_env / "README.md").write_text("# results\n")
    assert plot_exp_results("*") is None and plot_exp_results("exp1_1_*") is None
    ex.run_experiment("exp1_1", epochs=1, bs_train=16, filters_per_layer=[4], layers_per_block=1,
                      hidden_dims=[8], device="cpu")
    fig, axes = plot_exp_results("*")
    assert [line.get_label() for line in axes[0].lines] == ["L1_K4"]
    assert [p for _, p in ex.experiment_status("exp1_1")] == [None] * 8  # README is no run


def test_same_seed_same_result(tiny_env, tmp_path):
    kw = dict(seed=3, bs_train=16, epochs=2, filters_per_layer=[4], layers_per_block=1,
              hidden_dims=[8], augment=True, lr_schedule="linear", warmup=0.3)
    a = ex.load_experiment(ex.run_experiment("a", out_dir=tmp_path / "a", **kw))[1]
    b = ex.load_experiment(ex.run_experiment("a", out_dir=tmp_path / "b", **kw))[1]
    assert a == b


def test_extra_keywords_go_to_the_model(tiny_env):
    path = ex.run_experiment("bn", epochs=1, bs_train=16, filters_per_layer=[4], layers_per_block=2,
                             hidden_dims=[], model_type="resnet", batchnorm=True)
    cfg = ex.load_record(path)
    assert cfg["config"]["model_kw"] == {"batchnorm": True} and cfg["model"]["class"] == "ResNetClassifier"
    with pytest.raises(ValueError, match="no_such_option"):
        ex.run_experiment("bad", epochs=1, filters_per_layer=[4], layers_per_block=1, no_such_option=1)


# --------------------------------------------------------------------------
# Result files
# --------------------------------------------------------------------------

@pytest.mark.parametrize("content, words", [
    ('{"config": {"run_name": "x"}, "results": {"num_epochs": 2, "train_l', "corrupt or incomplete"),
    ('{"config": {"run_name": "x"}}', "incomplete"),
    ('{"config": {}, "results": {"num_epochs": 1, "train_loss": [1.0]}}',
     "results.train_acc is missing"),
    ("", "corrupt or incomplete"),
    ('{"format": "hw2-experiment/1", "config": {}, "results": {"num_epochs": 2, '
     '"train_loss": [1, 1], "train_acc": [1, 1], "test_loss": [1], "test_acc": [1, 1]}}',
     r"results.test_loss has 1 values for num_epochs=2"),
    ('{"config": {}, "results": {"num_epochs": 1, "train_loss": [NaN], "train_acc": [1], '
     '"test_loss": [1], "test_acc": [1]}}', "NaN is not strict JSON"),
    ('{"format": "hw2-experiment/1", "config": {}, "results": {"num_epochs": 1, '
     '"train_loss": [1], "train_acc": [130], "test_loss": [1], "test_acc": [1]}}',
     "results.train_acc must hold accuracies in percent"),
    ('{"config": {"filters_per_layer": "32"}, "results": {"num_epochs": 1, '
     '"train_loss": [1], "train_acc": [1], "test_loss": [1], "test_acc": [1]}}',
     "config.filters_per_layer must be a list of positive integers, got '32'"),
    ('{"config": {"filters_per_layer": [32, 0]}, "results": {"num_epochs": 1, '
     '"train_loss": [1], "train_acc": [1], "test_loss": [1], "test_acc": [1]}}',
     r"config.filters_per_layer must be a list of positive integers; bad entries: \[0\]"),
    ('{"config": {}, "results": {"num_epochs": true, "train_loss": [1], "train_acc": [1], '
     '"test_loss": [1], "test_acc": [1]}}',
     "results.num_epochs must be a non-negative integer, got True"),
    ('{"config": {}, "results": {"num_epochs": 1, "train_loss": ["x"], "train_acc": [1], '
     '"test_loss": [1], "test_acc": [1]}}', r"results.train_loss must be a list of numbers "
     r"\(null for a diverged value\); bad entries: \['x'\]"),
    ('{"config": {}, "results": {"num_epochs": 1, "train_loss": [1], "train_acc": {}, '
     '"test_loss": [1], "test_acc": [1]}}', "results.train_acc must be a list of numbers "
     r"\(null for a diverged value\), got \{\}"),
])
def test_corrupt_result_file_error_names_the_file(tmp_path, content, words):
    path = tmp_path / "exp1_1_L2_K32.json"
    path.write_text(content)
    with pytest.raises(ex.ExperimentFileError, match=words) as info:
        ex.load_experiment(path)
    assert str(path) in str(info.value)
    from hw2.plot import plot_exp_results
    with pytest.raises(ValueError, match="exp1_1_L2_K32.json"):
        plot_exp_results("exp1_1_*", results_dir=tmp_path)


def test_missing_result_file_error_names_the_file(tmp_path):
    with pytest.raises(ex.ExperimentFileError, match="nope.json"):
        ex.load_experiment(tmp_path / "nope.json")


def test_plot_exp_results_overlays_runs_labelled_by_config(tiny_env):
    import matplotlib
    matplotlib.use("Agg")
    from hw2.plot import plot_exp_results

    for jobs in ex.sweep_jobs(["tiny"], {"epochs": 1}, grid=write_grid(tiny_env.parent / "g.json", 1),
                              protocol=None):
        ex.run_job(jobs)
    # A sweep writes each seed's files to seed<N>/ of its folder ($HW2_RESULTS_DIR here).
    fig, axes = plot_exp_results("tiny_*", results_dir=tiny_env / "seed42")
    assert len(axes) == 4
    assert [line.get_label() for line in axes[0].lines] == ["L1_K4", "L2_K4", "L1_K6"]
    assert plot_exp_results("exp9_*", results_dir=tiny_env / "seed42") is None


# --------------------------------------------------------------------------
# The grid and job specs
# --------------------------------------------------------------------------

def test_grid_matches_spec_and_jobs_are_plain_independent_data(tmp_path):
    counts = {"exp1_1": 8, "exp1_2": 12, "exp1_3": 4, "exp1_4": 6, "exp2": 4}
    assert {name: len(ex.EXPERIMENTS[name].runs()) for name in ex.STUDY} == counts
    assert {name: len(ex.EXPERIMENTS[name].runs()) for name in ex.CONTROLS} == \
        {"exp2_common": 1, "exp1_recipe2": 1}
    assert set(ex.EXPERIMENTS) == {*ex.STUDY, *ex.CONTROLS}
    jobs = ex.sweep_jobs(list(counts), {"out_dir": str(tmp_path)})
    # 34 runs, of which 1.1 and 1.2 share six (K = 32, 64 at L = 2, 4, 8): 28 per seed.
    seeds = ex.PROTOCOLS["gpu"].seeds
    assert len(seeds) >= 3 and len(jobs) == 28 * len(seeds)
    per_seed = [[j for j in jobs if j["seed"] == s] for s in seeds]
    # Seed by seed: every run of the first seed before any of the next.
    assert [j["seed"] for j in jobs] == [s for s in seeds for _ in range(28)]
    names = [ex.result_path(j).name for j in per_seed[0]]
    assert len(set(names)) == 28 and "exp1_3_L4_K64-128-256.json" in names
    assert "exp1_1_L2_K32.json" in names and "exp1_2_L2_K32.json" not in names
    assert "exp1_2_L2_K128.json" in names and "exp1_1_L16_K64.json" in names
    for seed, group in zip(seeds, per_seed):
        assert {Path(j["out_dir"]) for j in group} == {tmp_path / f"seed{seed}"}
    for spec in jobs:
        assert json.loads(json.dumps(spec)) == spec            # JSON-able
        cfg = ex.RunConfig.from_dict(spec)
        assert cfg.to_dict() == spec and cfg.epochs <= 20
        assert Path(spec["out_dir"]).is_absolute() and spec["checkpoints"].startswith(str(tmp_path))
    # Different runs never share a checkpoint.
    assert len({j["checkpoints"] for j in jobs}) == len(jobs)


def test_auto_pool_every_builds_every_model_of_the_grid():
    assert ex.max_poolings(32) == 5
    for exp in ex.EXPERIMENTS.values():
        for cfg in exp.runs():
            n = len(cfg.channels)
            p = cfg.pool_every
            if exp.model_type == "ycn":
                assert p == cfg.layers_per_block
            else:  # the smallest divisor of N leaving at most 5 poolings
                assert n % p == 0 and n // p <= 5
                assert all(n % q or n // q > 5 for q in range(1, p))
            ex.build_model(cfg)  # no feature map vanishes
    # One more pooling than the rule allows is rejected by the model itself.
    with pytest.raises(ValueError, match="vanishes"):
        ex.build_model(ex.RunConfig(run_name="x", filters_per_layer=[8], layers_per_block=6, pool_every=1))


@pytest.mark.parametrize("changes, field", [
    (dict(lr=-1.0), "lr"), (dict(bs_train=0), "bs_train"), (dict(model_type="mlp"), "model_type"),
    (dict(optimizer="lbfgs"), "optimizer"), (dict(filters_per_layer=[]), "filters_per_layer"),
    (dict(pool_every=0), "pool_every"), (dict(device="gpu0"), "device"), (dict(device="tpu"), "device"),
    (dict(warmup=1.5), "warmup"), (dict(batches=0), "batches"), (dict(augment="yes"), "augment"),
])
def test_run_config_rejects_bad_values_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        ex.RunConfig(run_name="x", **changes)


def test_run_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="learning_rate"):
        ex.RunConfig.from_dict({"run_name": "x", "learning_rate": 1})


def test_lr_schedule_warms_up_then_decays():
    f = ex.lr_factor("linear", 0.2, 100)
    assert f(0) == pytest.approx(1 / 20) and f(19) == 1.0 and f(20) == 1.0
    assert f(60) == pytest.approx(0.5) and f(100) == 0.0
    c = ex.lr_factor("cosine", 0.0, 10)
    assert c(0) == 1.0 and c(5) == pytest.approx(0.5) and c(10) == pytest.approx(0.0)
    assert ex.lr_factor("constant", 0.5, 10)(9) == 1.0


# --------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------

def _check_sweep_folder(out: Path, epochs: int) -> list[dict]:
    """Exactly the three result files, each complete; no temp files or checkpoints left."""
    assert {p.name for p in out.iterdir()} == TINY_FILES, sorted(out.iterdir())
    return [check_result_file(out / name, epochs) for name in sorted(TINY_FILES)]


def test_sweep_killed_mid_run_resumes_and_completes(tiny_cifar, tmp_path, capsys):
    epochs = 15
    grid = write_grid(tmp_path / "grid.json", epochs)
    out = tmp_path / "out" / "seed42"  # a sweep's folder for its seed (42 unless set)
    cmd = [sys.executable, "-m", "hw2.experiments", "sweep", "tiny", "--grid-file", str(grid), "-o",
           str(out.parent)]
    proc = subprocess.Popen(cmd, env={**os.environ, **ONE_THREAD, **tiny_cifar}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # Kill the whole process group once one run has finished and the next
        # one has written a checkpoint (i.e. mid-run).
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            done = [p for p in out.glob("*.json")] if out.exists() else []
            ckpts = list(out.glob(".*.ckpt.pt")) if out.exists() else []
            if done and ckpts:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the sweep ended before it could be interrupted:\n" + proc.stdout.read().decode()
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = {p.name for p in out.glob("*.json")}
    assert finished and finished < TINY_FILES
    assert list(out.glob(".*.ckpt.pt")), "the interrupted run left no checkpoint"

    again = subprocess.run(cmd, env={**os.environ, **ONE_THREAD, **tiny_cifar}, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(finished)} already have result files (skipped)" in again.stdout
    records = _check_sweep_folder(out, epochs)
    assert any(r["resumed_from_checkpoint"] for r in records)
    # A finished sweep is a no-op.
    assert ex.main(cmd[3:]) == 0
    assert "3 already have result files (skipped), 0 to run" in capsys.readouterr().out


def test_rerun_removes_temp_files_of_a_killed_attempt(tiny_env, tmp_path):
    # A kill between an atomic write's temporary file and its os.replace leaves
    # the temporary file; the next attempt of the same run removes it.
    out, prefix = tmp_path / "out", tmp_path / "out" / ".r.ckpt"
    out.mkdir()
    stale = [out / ".r_L1_K4.json.abc123.tmp", out / ".r.ckpt.pt.xyz.tmp"]
    other = [out / ".q_L1_K4.json.abc123.tmp", out / "r_L1_K4.json.tmp"]  # not this run's temp files
    for p in stale + other:
        p.write_text("partial")
    ex.run_experiment("r", out_dir=out, checkpoints=str(prefix), epochs=1, bs_train=16,
                      filters_per_layer=[4], layers_per_block=1, hidden_dims=[8], device="cpu")
    assert {p.name for p in out.iterdir()} == {"r_L1_K4.json", *(p.name for p in other)}


def test_sweep_with_worker_processes(tiny_env, tmp_path, monkeypatch):
    # The one-process-per-GPU path, exercised on the CPU with two workers
    # (forked rather than spawned: no second import of torch).
    import io

    from hw2.experiments import executors

    monkeypatch.setattr(executors, "_MP_START", "fork")
    jobs = ex.sweep_jobs(["tiny"], {"epochs": 2, "out_dir": str(tmp_path / "out")},
                         grid=write_grid(tmp_path / "grid.json", 2), protocol=None)
    stream = io.StringIO()
    assert ex.run_sweep(jobs, executors.LocalExecutor(gpus=[0, 1]), stream=stream) == 0
    _check_sweep_folder(tmp_path / "out" / "seed42", 2)
    assert stream.getvalue().count("best test loss at epoch") == 3


def test_local_executor_takes_a_count_of_gpus_or_their_indices():
    from hw2.experiments import executors

    assert executors.LocalExecutor(gpus=2).gpus == 2
    assert executors.LocalExecutor(gpus=[0, 1]).gpus == [0, 1]
    assert executors.LocalExecutor().gpus is None
    for gpus in (-1, True, 1.5, "2"):  # True is not one GPU
        with pytest.raises(ValueError, match="gpus must be a non-negative integer or "
                                             f"None, got {gpus!r}"):
            executors.LocalExecutor(gpus=gpus)


def test_sweep_dry_run_lists_runs(tmp_path, capsys):
    assert ex.main(["sweep", "exp1_4", "-o", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    seeds = ex.PROTOCOLS["gpu"].seeds
    assert out.count("todo") == 6 * len(seeds) and "exp1_4_L32_K32" in out
    assert ex.main(["sweep", "exp1_4", "-o", str(tmp_path), "--dry-run", "--seeds", "7"]) == 0
    assert capsys.readouterr().out.count("todo") == 6
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------
# Bad input: one line on stderr, exit code 2, no traceback
# --------------------------------------------------------------------------

BAD_ARGS = [
    [],
    ["fly"],
    ["run-exp", "-n", "x", "-L", "1"],                               # -K missing
    ["run-exp", "-n", "x", "-K", "abc", "-L", "1"],
    ["run-exp", "-n", "x", "-K", "8", "-L", "1", "-M", "mlp"],
    ["run-exp", "-n", "x", "-K", "8", "-L", "1", "--lr", "-1"],
    ["run-exp", "-n", "x", "-K", "8", "-L", "1", "--optimizer", "lbfgs"],
    ["run-exp", "-n", "x", "-K", "8", "-L", "6", "-P", "1"],         # the map vanishes
    ["run-exp", "-n", "x", "-K", "8", "-L", "1", "--model-kw", "wings=2"],
    ["run-exp", "-n", "x", "-K", "8", "-L", "1", "--train-size", "0"],
    ["sweep", "exp9"],
    ["sweep", "exp1_1", "--set", "epochs=0"],
    ["sweep", "exp1_1", "--set", "learning_rate=1"],
    ["sweep", "tiny", "--grid-file", "/nonexistent/grid.json"],
]


@pytest.mark.parametrize("args", BAD_ARGS)
def test_bad_cli_input_exits_2_with_one_line(args, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HW2_RESULTS_DIR", str(tmp_path))
    try:
        code = ex.main(args)
    except SystemExit as e:  # argparse's errors
        code = e.code
    captured = capsys.readouterr()
    assert code == 2, (captured.out, captured.err)
    err = captured.err.strip()
    assert err and "\n" not in err and "error" in err, err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args", [BAD_ARGS[3], BAD_ARGS[5], BAD_ARGS[7]])
def test_bad_cli_input_in_a_real_process_has_no_traceback(args, tmp_path):
    proc = cli(*args, env={"HW2_RESULTS_DIR": str(tmp_path)})
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert err and "\n" not in err and "Traceback" not in err, err


def test_interrupted_fit_resumes_exactly_with_schedule_and_augmentation(tiny_env, tmp_path):
    # The runner's own pieces; an interruption after epoch 2 of 3 changes nothing.
    from hw2.data import load_cifar10

    data = load_cifar10()
    cfg = ex.RunConfig(run_name="r", bs_train=16, epochs=3, filters_per_layer=[4], layers_per_block=1,
                       hidden_dims=[8], lr_schedule="linear", warmup=0.2, augment=True, device="cpu")
    cpu = torch.device("cpu")

    def fit(epochs, prefix):
        torch.manual_seed(0)
        dl_train, dl_val, dl_test = ex.build_batches(cfg, data, cpu, seed=0)
        assert dl_val is None
        trainer = ex.build_trainer(cfg, ex.build_model(cfg), cpu, len(dl_train))
        return trainer.fit(dl_train, dl_test, epochs, checkpoints=str(tmp_path / prefix))

    uninterrupted = fit(3, "a")
    fit(2, "b")
    assert fit(3, "b") == uninterrupted


# --------------------------------------------------------------------------
# The study's design: the same head within an experiment and K, protocols,
# a validation split
# --------------------------------------------------------------------------

def test_every_depth_of_one_experiment_and_k_has_the_same_head():
    """Only the studied variable changes: the features entering the head and
    the head itself are the same for every run of one experiment and K."""
    from hw2.cnn import count_parameters

    for name, exp in ex.EXPERIMENTS.items():
        by_k: dict[tuple, set] = {}
        for cfg in exp.runs():
            model = ex.build_model(cfg)
            head = (tuple(model.feature_shape), count_parameters(model.classifier),
                    repr(model.classifier))
            by_k.setdefault(tuple(cfg.filters_per_layer), set()).add(head)
        for ks, heads in by_k.items():
            assert len(heads) == 1, f"{name} K={list(ks)}: {len(heads)} different heads: {heads}"


def test_head_map_size_pools_the_last_map_and_keeps_the_default_layout():
    from hw2.cnn import ConvClassifier

    plain = ConvClassifier((3, 32, 32), 10, [8, 8], 1, [16])
    assert plain.feature_shape == (8, 8, 8) and not hasattr(plain, "head_pool")
    pooled = ConvClassifier((3, 32, 32), 10, [8, 8], 1, [16], head_map_size=2)
    assert pooled.feature_shape == (8, 2, 2)
    assert pooled.classifier[0].in_features == 8 * 2 * 2
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        features = torch.nn.functional.adaptive_avg_pool2d(pooled.feature_extractor(x), 2)
        torch.testing.assert_close(pooled(x), pooled.classifier(features.flatten(1)))
    with pytest.raises(ValueError, match=r"head_map_size \(16, 16\) is larger than the last feature map \(8×8\)"):
        ConvClassifier((3, 32, 32), 10, [8, 8], 1, [16], head_map_size=16)
    with pytest.raises(ValueError, match="head_map_size must be a positive int or"):
        ConvClassifier((3, 32, 32), 10, [8], 1, [16], head_map_size=(2, 0))


def test_protocols_are_presets_recorded_in_every_run(tmp_path, monkeypatch):
    monkeypatch.setenv("HW2_RESULTS_DIR", str(tmp_path))
    gpu = {c.file_stem: c for c in ex.EXPERIMENTS["exp2"].runs(protocol="gpu")}
    cpu = {c.file_stem: c for c in ex.EXPERIMENTS["exp2"].runs(protocol="cpu")}
    assert gpu.keys() == cpu.keys()
    for stem, g in gpu.items():
        c = cpu[stem]
        assert (g.protocol, c.protocol) == ("gpu", "cpu")
        assert (g.bs_train, g.epochs, g.train_size, g.val_size, g.test_size) == (512, 15, None, 5000, None)
        assert c.val_size > 0 and c.train_size + c.val_size <= 50_000 and c.epochs <= g.epochs
        # Only the budget (and the lr, by the protocol's scale) differs; the recipe is shared.
        assert c.lr == pytest.approx(g.lr * ex.PROTOCOLS["cpu"].lr_scale)
        same = {k for k in ("optimizer", "reg", "lr_schedule", "warmup", "augment", "hidden_dims",
                            "model_kw", "label_smoothing", "layers_per_block", "filters_per_layer")}
        assert {k: getattr(g, k) for k in same} == {k: getattr(c, k) for k in same}
        # One numeric setting per protocol, on every machine: bf16 autocast on a CPU
        # for cpu (the gpu protocol's amp is CUDA's bf16 autocast).
        assert (c.cpu_bf16, g.cpu_bf16, g.amp) == (True, False, True)
        # A protocol run's file lives in its seed's folder of the protocol's study.
        assert g.resolved_out_dir == tmp_path / "gpu" / "seed42"
        assert c.resolved_out_dir == tmp_path / "cpu" / "seed42"
        assert c.replace(seed=None).resolved_out_dir == tmp_path / "cpu"
    jobs = ex.sweep_jobs(["exp1_1"], protocol="cpu")
    assert {Path(j["out_dir"]) for j in jobs} == {
        tmp_path / "cpu" / f"seed{s}" for s in ex.PROTOCOLS["cpu"].seeds}
    with pytest.raises(ValueError, match="unknown protocol 'tpu'; choose one of gpu, cpu, speedrun"):
        ex.sweep_jobs(["exp1_1"], protocol="tpu")
    with pytest.raises(ValueError, match="RunConfig: protocol must be one of 'gpu', 'cpu', 'speedrun', got 'tpu'"):
        ex.RunConfig(run_name="x", protocol="tpu")


def test_train_and_validation_images_never_overlap_and_are_class_balanced():
    from hw2.data import train_val_indices

    labels = torch.arange(500) % 10
    train, val = train_val_indices(labels, 300, 100, seed=5)
    assert len(train) == 300 and len(val) == 100
    assert not set(train.tolist()) & set(val.tolist())
    assert torch.bincount(labels[val]).tolist() == [10] * 10
    assert torch.bincount(labels[train]).tolist() == [30] * 10
    again = train_val_indices(labels, 300, 100, seed=5)
    assert torch.equal(again[0], train) and torch.equal(again[1], val)
    rest, none = train_val_indices(labels, None, None, seed=5)
    assert len(rest) == 500 and len(none) == 0
    with pytest.raises(ValueError, match="after holding out 100 validation images: subset size 450"):
        train_val_indices(labels, 450, 100, seed=5)


def test_a_run_with_a_validation_split_records_it(tiny_env, tmp_path):
    """val_size holds images out of training; early stopping and the best epoch use them."""
    path = ex.run_experiment("v", out_dir=tmp_path, epochs=3, bs_train=8, val_size=10,
                             early_stopping=0, filters_per_layer=[4], layers_per_block=2,
                             hidden_dims=[8], device="cpu", head_map_size=2)
    record = ex.load_record(path)
    _, fit = ex.load_experiment(path)
    assert record["data"]["val_images"] == 10 and record["data"]["train_images"] == 30
    assert len(fit.val_loss) == len(fit.val_acc) == 3
    assert record["best_epoch"] == 1 + min(range(3), key=fit.val_loss.__getitem__)
    assert record["model"]["feature_shape"] == [4, 2, 2]
    assert record["model"]["feature_parameters"] + record["model"]["head_parameters"] \
        == record["model"]["parameters"]
    assert record["diverged"] is False
    assert set(record["provenance"]) >= {"source_sha256"}
    assert "NaN" not in path.read_text()


def test_a_diverged_run_is_written_as_strict_json(tiny_env, tmp_path):
    path = ex.run_experiment("nan", out_dir=tmp_path, epochs=2, bs_train=8, early_stopping=0,
                             optimizer="sgd", lr=1e12, filters_per_layer=[4], layers_per_block=1,
                             hidden_dims=[8], device="cpu")
    text = path.read_text()
    record = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert record["diverged"] is True and None in record["results"]["train_loss"]
    _, fit = ex.load_experiment(path)
    assert any(v != v for v in fit.train_loss)  # null reads back as NaN


@pytest.mark.parametrize("split, bad", [("val", float("nan")), ("test", float("inf"))])
def test_a_run_whose_validation_or_test_loss_alone_breaks_is_diverged(
        tiny_env, tmp_path, monkeypatch, split, bad):
    """Training stays finite; only the validation (or test) loss is NaN (or inf)."""
    from hw2.experiments import runner
    from hw2.training import EpochResult, Trainer

    loaders = {}
    build_batches, test_epoch = runner.build_batches, Trainer.test_epoch

    def keep_loaders(*args, **kw):
        loaders["train"], loaders["val"], loaders["test"] = built = build_batches(
            *args, **kw)
        return built

    def broken_on_split(self, dl, **kw):  # the loss of one split's every batch
        result = test_epoch(self, dl, **kw)
        if dl is loaders[split]:
            return EpochResult(losses=[bad] * len(result.losses), accuracy=result.accuracy)
        return result

    monkeypatch.setattr(runner, "build_batches", keep_loaders)
    monkeypatch.setattr(Trainer, "test_epoch", broken_on_split)
    path = ex.run_experiment("half", out_dir=tmp_path, epochs=2, bs_train=8, val_size=10,
                             early_stopping=0, filters_per_layer=[4], layers_per_block=1,
                             hidden_dims=[8], device="cpu")
    record = json.loads(path.read_text())
    results = record["results"]
    assert None not in results["train_loss"] + results[
        "test_loss" if split == "val" else "val_loss"], results
    assert results[f"{split}_loss"] == [None, None], results
    assert record["diverged"] is True, (
        f"diverged is {record['diverged']!r} with a {split} loss of {bad}")


# --------------------------------------------------------------------------
# The runner's structure: defaults written once, imports one way
# --------------------------------------------------------------------------

def _option_helps(help_output: str) -> dict[str, str]:
    """``{flag: its help text}`` for every option in an argparse ``--help`` output.

    An option's entry starts on a line indented by two spaces; its help follows
    two or more spaces after the flags, or on the lines below, indented further.
    """
    helps, current = {}, None
    for line in help_output.splitlines():
        if line.startswith("  -"):
            flags, _, rest = line.strip().partition("  ")
            current = [rest.strip()]
            for flag in flags.split(", "):
                helps[flag.split(" ")[0]] = current
        elif current is not None and line.startswith("   "):
            current.append(line.strip())
        else:
            current = None
    return {flag: " ".join(w for w in lines if w) for flag, lines in helps.items()}


def test_cli_runconfig_and_run_experiment_agree_on_every_default(capsys):
    """The CLI's options are RunConfig's fields: same names, same defaults, help for each."""
    import dataclasses
    import inspect
    import re

    from hw2.experiments import cli

    fields = {f.name: f for f in dataclasses.fields(ex.RunConfig)}
    defaults = {name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
                for name, f in fields.items() if name != "run_name"}
    helps = cli.field_help()
    assert set(helps) == set(fields), f"fields without a comment: {set(fields) - set(helps)}"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run-exp", "--help"])
    out = capsys.readouterr().out
    text = " ".join(out.split())
    # Every field's option says what it is, beyond its default or "(required)".
    option_helps = _option_helps(out)
    for name in fields:
        flag = "--" + name.replace("_", "-")
        assert flag in option_helps, f"{flag} has no entry in run-exp --help"
        words = re.sub(r"\s*\((required|default: [^()]*)\)$", "", option_helps[flag])
        assert re.search(r"[A-Za-z]", words), (
            f"{flag}: no help text in run-exp --help, only {option_helps[flag]!r}")
    for name, default in defaults.items():
        flag = "--" + name.replace("_", "-")
        assert flag in text, f"{flag} missing from run-exp --help"
        if name in cli.REQUIRED:
            continue
        shown = "none" if default in (None, {}) else (
            " ".join(map(str, default)) if isinstance(default, list) else str(default))
        assert f"(default: {shown})" in text, f"{flag}: default {shown} not in the help"
    # run_experiment takes RunConfig's fields as keywords, with RunConfig's defaults.
    assert not [p for p in inspect.signature(ex.run_experiment).parameters.values()
                if p.default is not inspect.Parameter.empty and p.name != "verbose"]
    # The CLI builds the same config from nothing but the required flags.
    args = cli.build_parser().parse_args(["run-exp", "-n", "a", "-K", "64", "-L", "2"])
    from_cli = ex.RunConfig.from_dict(cli._config_from_args(args))
    assert from_cli == ex.RunConfig(run_name="a")


def test_run_exp_protocol_preset_and_flags(tmp_path):
    from hw2.experiments import cli

    args = cli.build_parser().parse_args(["run-exp", "-n", "a", "-K", "8", "-L", "1",
                                          "--protocol", "cpu", "--epochs", "2"])
    spec = cli._config_from_args(args)
    assert spec == {"run_name": "a", "filters_per_layer": [8], "layers_per_block": 1,
                    "protocol": "cpu", "epochs": 2}


def test_the_runner_package_imports_one_way():
    """config -> grid -> results -> claims -> device -> runner -> sweep -> executors/slurm -> cli:
    no module
    imports one after it, and none uses another module's private name."""
    import ast

    order = ["config", "grid", "results", "claims", "device", "runner", "sweep", "executors",
             "slurm", "cli"]
    package = Path(ex.__file__).parent
    for i, name in enumerate(order):
        tree = ast.parse((package / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hw2.experiments."):
                target = node.module.split(".")[2]
                assert order.index(target) < i or (name, target) == ("slurm", "executors"), \
                    f"{name} imports {target}, which comes after it"
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{name} imports private {private} from {target}"
        lines = (package / f"{name}.py").read_text().splitlines()
        assert len(lines) <= 500, f"{name}.py has {len(lines)} lines"
    import subprocess
    code = "import sys, hw2.experiments; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "importing hw2.experiments imports torch"


# --------------------------------------------------------------------------
# The original course's notebooks: where results go, the course's own files
# --------------------------------------------------------------------------

def test_the_course_notebook_cell_writes_and_reads_results_relative_to_its_folder(
        tiny_cifar, monkeypatch, tmp_path):
    """Outside this repository, results go to ./results as the course's notebooks expect."""
    for key, value in tiny_cifar.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HW2_RESULTS_DIR", raising=False)
    notebook_folder = tmp_path / "course"
    notebook_folder.mkdir()
    monkeypatch.chdir(notebook_folder)
    assert ex.results_dir() == notebook_folder / "results"
    ex.run_experiment('test_run', seed=42, bs_train=50, batches=10, epochs=10, early_stopping=5,
                      filters_per_layer=[32, 64], layers_per_block=1, pool_every=1,
                      hidden_dims=[100], model_type='resnet', device="cpu")
    cfg, fit_res = ex.load_experiment('results/test_run_L1_K32-64.json')
    assert cfg["model_type"] == "resnet" and 1 <= fit_res.num_epochs <= 10
    # Inside the repository (a chapter's folder), the repository's results/.
    monkeypatch.chdir(Path(ex.__file__).resolve().parents[2] / "book")
    assert ex.results_dir() == Path(ex.__file__).resolve().parents[2] / "results"


def test_the_course_result_files_load_and_plot(tmp_path):
    """The course's Trainer records one loss per batch; its result file is {config, results}."""
    from hw2.plot import plot_exp_results

    course = {"config": {"run_name": "exp1_1", "filters_per_layer": [32], "layers_per_block": 2},
              "results": {"num_epochs": 3, "train_loss": [2.3, 2.1, 2.0, 1.9, 1.7, 1.6],
                          "train_acc": [20.0, 30.0, 40.0],
                          "test_loss": [2.2, 2.1, 2.0, 2.0, 1.9, 1.9],
                          "test_acc": [22.0, 28.0, 35.0]}}
    (tmp_path / "exp1_1_L2_K32.json").write_text(json.dumps(course))
    cfg, fit_res = ex.load_experiment(tmp_path / "exp1_1_L2_K32.json")
    assert fit_res.num_epochs == 3 and len(fit_res.train_loss) == 6 and fit_res.test_acc[-1] == 35
    fig, axes = plot_exp_results("exp1_1_L*_K32.json", results_dir=tmp_path)
    assert [line.get_label() for line in axes[0].lines] == ["L2_K32"]
    assert list(axes[0].lines[0].get_xdata()) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    # A per-batch list that does not divide into epochs is still an error, naming the file.
    course["results"]["train_loss"] = [2.3] * 5
    (tmp_path / "bad.json").write_text(json.dumps(course))
    with pytest.raises(ex.ExperimentFileError, match="bad.json: results.train_loss has 5 values"):
        ex.load_experiment(tmp_path / "bad.json")


def test_the_course_files_with_its_off_by_one_epoch_count_load(tmp_path):
    """The course's Trainer stores the 0-based index of its last epoch as num_epochs:
    6 accuracies say num_epochs=5. The lists decide, and the file loads with a warning;
    the book's own files stay strict."""
    from hw2.plot import plot_exp_results

    course = {"config": {"run_name": "exp1_1", "filters_per_layer": [64], "layers_per_block": 4},
              "results": {"num_epochs": 5, "train_loss": [2.0 - 0.1 * i for i in range(12)],
                          "train_acc": [20.0 + i for i in range(6)],
                          "test_loss": [2.1 - 0.1 * i for i in range(12)],
                          "test_acc": [22.0 + i for i in range(6)]}}
    path = tmp_path / "exp1_1_L4_K64.json"
    path.write_text(json.dumps(course))
    with pytest.warns(ex.ExperimentFileWarning, match="num_epochs is 5, but its lists hold 6 "
                                                      "epochs"):
        cfg, fit_res = ex.load_experiment(path)
    assert fit_res.num_epochs == 6 and len(fit_res.train_loss) == 12
    with pytest.warns(ex.ExperimentFileWarning):
        fig, axes = plot_exp_results("exp1_1_L*_K64.json", results_dir=tmp_path)
    assert list(axes[0].lines[0].get_xdata())[-1] == 6.0
    # A book file (it has "format") whose num_epochs disagrees is still an error.
    book = {**course, "format": ex.RESULT_FORMAT,
            "results": {**course["results"], "train_loss": [2.0] * 6, "test_loss": [2.0] * 6}}
    path.write_text(json.dumps(book))
    with pytest.raises(ex.ExperimentFileError, match="train_loss has 6 values for num_epochs=5"):
        ex.load_experiment(path)


# --------------------------------------------------------------------------
# What a result file says: its seed, its kept epoch
# --------------------------------------------------------------------------

SMALL = dict(bs_train=16, filters_per_layer=[4], layers_per_block=1, hidden_dims=[8],
             device="cpu", early_stopping=0)


def test_a_result_of_another_seed_is_not_done(tiny_env):
    out = tiny_env / "out"
    ex.run_experiment("r", out_dir=out, epochs=1, seed=42, **SMALL)
    same = ex.RunConfig(run_name="r", out_dir=str(out), epochs=1, seed=42, **SMALL)
    assert ex.result_state(same) == ("done", "")
    state, why = ex.result_state(same.replace(seed=43))
    assert state == "other" and "seed: 42 in the file, 43 wanted" in why
    # A drawn seed (None) asks for any seed: the file's is as good as another.
    assert ex.result_state(same.replace(seed=None))[0] == "done"


def test_the_result_file_keeps_the_epoch_of_the_lowest_validation_loss(tiny_env,
                                                                        monkeypatch):
    """Scripted validation losses 1.0, 0.5, 0.9: the run keeps epoch 2, not the last."""
    from hw2.training import EpochResult, TorchTrainer

    val_losses = iter([1.0, 0.5, 0.9])
    real, calls = TorchTrainer.test_epoch, []

    def scripted(self, dl, **kw):
        result = real(self, dl, **kw)
        calls.append(dl)
        if len(calls) % 2:  # each epoch scores the validation set, then the test set
            return EpochResult([next(val_losses)], result.accuracy)
        return result

    monkeypatch.setattr(TorchTrainer, "test_epoch", scripted)
    path = ex.run_experiment("k", out_dir=tiny_env / "o", epochs=3, val_size=20,
                             bs_test=20, **SMALL)
    record = ex.load_record(path)
    assert record["results"]["val_loss"] == [1.0, 0.5, 0.9]
    assert record["best_epoch"] == 2
    assert "best val loss at epoch 2" in ex.summary_line(path)


# --------------------------------------------------------------------------
# Checkpoint names: one per identity; an old name is adopted, not ignored
# --------------------------------------------------------------------------

def test_configurations_of_one_identity_share_a_checkpoint_name(tmp_path):
    base = ex.RunConfig(run_name="x", out_dir=str(tmp_path), filters_per_layer=[8],
                        layers_per_block=2, **{k: v for k, v in SMALL.items()
                                               if k not in ("filters_per_layer",
                                                            "layers_per_block")})
    explicit = base.replace(pool_every=base.resolved_pool_every,
                            bs_test=base.bs_train)
    assert base.identity() == explicit.identity()
    assert ex.checkpoint_prefix(base) == ex.checkpoint_prefix(explicit)
    assert ex.checkpoint_prefix(base) != ex.checkpoint_prefix(base.replace(lr=0.5))


def test_a_checkpoint_under_its_old_name_is_resumed_not_started_over(tiny_env, monkeypatch):
    from helpers import Killed, kill_after_first_epoch
    from hw2.experiments import runner

    grid = write_grid(tiny_env.parent / "g.json", 3)
    (job,) = [j for j in ex.sweep_jobs(["tiny"], {"out_dir": str(tiny_env)}, grid=str(grid),
                                       protocol=None) if j["filters_per_layer"] == [6]]
    cfg = ex.RunConfig.from_dict(job)
    with monkeypatch.context() as m:
        kill_after_first_epoch(m)
        with pytest.raises(Killed):
            ex.run_job(job)
    current = Path(f"{cfg.checkpoints}.pt")
    legacy = Path(f"{runner.legacy_checkpoint_prefix(cfg).resolve()}.pt")
    assert current.exists() and legacy != current
    current.rename(legacy)  # as code before 2026-12 named it
    path = ex.run_job(job)
    record = ex.load_record(path)
    assert record["resumed_from_checkpoint"] is True
    assert not legacy.exists() and not current.exists()


# --------------------------------------------------------------------------
# Claims: a claim another process took over is not this one's to remove
# --------------------------------------------------------------------------

def test_releasing_a_claim_taken_over_by_another_process_leaves_it(tmp_path):
    from hw2.experiments import claims

    cfg = ex.RunConfig(run_name="c", out_dir=str(tmp_path), **SMALL)
    mine = claims.try_claim(cfg)
    assert isinstance(mine, claims.Claim)
    # Another process judged it stale and took it over: the file is now its claim.
    theirs = {**json.loads(mine.path.read_text()), "token": "theirs", "pid": 1}
    mine.path.write_text(json.dumps(theirs))
    mine.release()
    assert mine.path.exists() and json.loads(mine.path.read_text())["token"] == "theirs"
