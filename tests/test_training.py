"""hw2.training: results, early stopping, exact resume from checkpoints, both trainers."""
import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import hw2.layers as layers
import hw2.optimizers as optimizers
from hw2.training import (BatchResult, CheckpointError, EpochResult, FitResult, LayerTrainer,
                          TorchTrainer, Trainer)


# ------------------------------------------------------------------ helpers
def make_data(n=64, d=12, classes=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    return TensorDataset(x, y)


def loaders(seed=0, n_train=64, batch_size=16):
    """A shuffled train loader driven by its own generator, and a test loader."""
    dl_train = DataLoader(make_data(n_train, seed=1), batch_size=batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(seed))
    dl_test = DataLoader(make_data(32, seed=2), batch_size=batch_size)
    return dl_train, dl_test


class Interrupt(Exception):
    pass


class InterruptAfter:
    """Mixin: raise after a given number of training batches (a crash mid-epoch)."""

    def __init__(self, *args, interrupt_after, **kw):
        super().__init__(*args, **kw)
        self.batches_left = interrupt_after

    def train_batch(self, batch):
        if self.batches_left == 0:
            raise Interrupt
        self.batches_left -= 1
        return super().train_batch(batch)


class InterruptingTorchTrainer(InterruptAfter, TorchTrainer):
    pass


class InterruptingLayerTrainer(InterruptAfter, LayerTrainer):
    pass


def torch_setup(seed, trainer_cls=TorchTrainer, **kw):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.7)
    trainer = trainer_cls(model, nn.CrossEntropyLoss(), opt, "cpu", lr_scheduler=sched, **kw)
    return trainer, [p.detach() for p in model.parameters()]


def layer_setup(seed, trainer_cls=LayerTrainer, **kw):
    torch.manual_seed(seed)
    model = layers.MLP(12, 4, [32], dropout=0.3)
    opt = optimizers.MomentumSGD(model.params(), learn_rate=0.05, reg=1e-3, momentum=0.9)
    trainer = trainer_cls(model, layers.CrossEntropyLoss(), opt, **kw)
    return trainer, [p for p, _ in model.params()]


# ------------------------------------------------------------------ results
def test_fit_result_json_round_trip():
    res = FitResult(3, [2.5, 1.25, 1 / 3], [10.0, 50.0, 100.0], [2.0, 1.5, 1e-20], [0.0, 12.5, 99.9])
    back = FitResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back == res and isinstance(back, FitResult)
    assert all(type(v) is float for v in back.train_loss)


def test_fit_result_from_bad_dict():
    with pytest.raises(ValueError, match="missing keys.*test_acc"):
        FitResult.from_dict({"num_epochs": 1, "train_loss": [1.0], "train_acc": [1.0],
                             "test_loss": [1.0]})
    with pytest.raises(ValueError, match="differ in length"):
        FitResult.from_dict({"num_epochs": 1, "train_loss": [1.0], "train_acc": [1.0, 2.0],
                             "test_loss": [1.0], "test_acc": [1.0]})


# ------------------------------------------------------------ early stopping
class Stub:
    """A model/optimizer stand-in for the scripted trainer."""

    def train(self, mode=True):
        self.training = mode

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class ScriptedTrainer(Trainer):
    """Test losses follow a script, one value per epoch."""

    def __init__(self, test_losses):
        super().__init__(Stub(), None, Stub())
        self.script = iter(test_losses)

    def train_batch(self, batch):
        return BatchResult(torch.tensor(1.0), torch.tensor(1))

    def test_batch(self, batch):
        return BatchResult(next(self.script), 1)


SCRIPT = [5.0, 4.0, 4.5, 3.0, 3.5, 3.0, 3.1, 2.0, 2.5, 2.6, 2.7, 2.8]
ONE_BATCH = [(torch.zeros(1, 2), torch.zeros(1))]


@pytest.mark.parametrize("k, expected_epochs", [
    (1, 3),  # epoch 3 (4.5) does not improve on 4.0
    (2, 6),  # epochs 5 (3.5) and 6 (3.0, a tie is no improvement) do not improve on 3.0
    (3, 7),
    (4, 12),  # never four epochs in a row without a new best ... until the script ends
    (None, 12),
])
def test_early_stopping_stops_at_the_right_epoch(k, expected_epochs):
    res = ScriptedTrainer(SCRIPT).fit(ONE_BATCH, ONE_BATCH, num_epochs=12, early_stopping=k)
    assert res.num_epochs == expected_epochs
    assert res.test_loss == SCRIPT[:expected_epochs]
    assert res.train_acc == [100.0] * expected_epochs


class ScriptLoader:
    """One batch per pass, whose 'images' carry the loss the next epoch reports."""

    def __init__(self, losses):
        self.losses = iter(losses)

    def __len__(self):
        return 1

    def __iter__(self):
        yield torch.tensor([next(self.losses)], dtype=torch.float64), torch.zeros(1)


class LossFromBatchTrainer(Trainer):
    def __init__(self):
        super().__init__(Stub(), None, Stub())

    def train_batch(self, batch):
        return BatchResult(torch.tensor(1.0), torch.tensor(1))

    def test_batch(self, batch):
        return BatchResult(float(batch[0][0]), 1)


def test_with_a_validation_loader_early_stopping_watches_it_not_the_test_set():
    val = [5.0, 4.0, 4.5, 4.6, 1.0]   # no new best at epochs 3 and 4: stops after epoch 4
    test = [5.0, 6.0, 1.0, 0.5, 0.1]  # the test loss improving changes nothing
    res = LossFromBatchTrainer().fit(ONE_BATCH, ScriptLoader(test), 5, early_stopping=2,
                                     dl_val=ScriptLoader(val))
    assert res.num_epochs == 4
    assert res.val_loss == val[:4] and res.test_loss == test[:4]
    assert res.best_epoch == 2  # the lowest validation loss, not the lowest test loss (4)
    assert FitResult.from_dict(json.loads(json.dumps(res.to_dict()))) == res
    without = LossFromBatchTrainer().fit(ONE_BATCH, ScriptLoader(test), 5, early_stopping=2)
    assert without.num_epochs == 5 and without.val_loss == [] and "val_loss" not in without.to_dict()
    assert without.best_epoch == 5


def test_early_stopped_checkpoint_does_not_train_on(tmp_path):
    prefix = tmp_path / "run"
    first = ScriptedTrainer(SCRIPT).fit(ONE_BATCH, ONE_BATCH, 12, checkpoints=prefix, early_stopping=1)
    again = ScriptedTrainer([]).fit(ONE_BATCH, ONE_BATCH, 12, checkpoints=prefix, early_stopping=1)
    assert again == first and first.num_epochs == 3


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_epochs=0), "num_epochs.*0"),
    (dict(num_epochs=2.5), "num_epochs.*2.5"),
    (dict(num_epochs=True), "num_epochs"),
    (dict(num_epochs=2, early_stopping=0), "early_stopping.*0"),
    (dict(num_epochs=2, print_every=-1), "print_every"),
    (dict(num_epochs=2, max_batches=0), "max_batches"),
])
def test_fit_validates_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScriptedTrainer(SCRIPT).fit(ONE_BATCH, ONE_BATCH, **kwargs)
    with pytest.raises(TypeError, match="checkpoints"):
        ScriptedTrainer(SCRIPT).fit(ONE_BATCH, ONE_BATCH, 2, checkpoints=3)


def test_verbose_reports_every_print_every_epochs(capsys):
    ScriptedTrainer(SCRIPT).fit(ONE_BATCH, ONE_BATCH, num_epochs=5, print_every=2, verbose=True)
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines()] == [
        "--- epoch 2/5", "--- epoch 4/5", "--- epoch 5/5"]


def test_quiet_when_not_a_terminal(capsys):
    ScriptedTrainer(SCRIPT).fit(ONE_BATCH, ONE_BATCH, num_epochs=3)  # pytest's stderr is no TTY
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# ------------------------------------------------------------------ trainers
def test_layer_trainer_overfits_20_samples():
    torch.manual_seed(0)
    x, y = torch.randn(20, 3, 4, 4), torch.arange(20) % 10  # images: LayerTrainer flattens them
    dl = DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True)
    model = layers.MLP(48, 10, [64, 64], wstd=0.2)
    opt = optimizers.MomentumSGD(model.params(), learn_rate=0.05, reg=0, momentum=0.9)
    res = LayerTrainer(model, layers.CrossEntropyLoss(), opt).fit(dl, dl, num_epochs=30)
    assert res.train_acc[-1] == 100.0 and res.test_acc[-1] == 100.0
    assert res.train_loss[-1] < 0.1 * res.train_loss[0]


def test_train_epoch_max_batches_and_percent_accuracy():
    trainer, _ = layer_setup(0)
    dl_train, _ = loaders()
    res = trainer.train_epoch(dl_train, max_batches=2)
    assert isinstance(res, EpochResult) and len(res.losses) == 2
    assert all(type(v) is float for v in res.losses)
    assert 0 <= res.accuracy <= 100 and (res.accuracy * 32 / 100) == pytest.approx(
        round(res.accuracy * 32 / 100))  # a whole number of the 32 samples seen


def test_model_mode_switches_between_epochs():
    trainer, _ = torch_setup(0)
    dl_train, dl_test = loaders()
    trainer.train_epoch(dl_train, max_batches=1)
    assert trainer.model.training
    trainer.test_epoch(dl_test, max_batches=1)
    assert not trainer.model.training


@pytest.mark.parametrize("setup, interrupting", [
    (torch_setup, InterruptingTorchTrainer),
    (layer_setup, InterruptingLayerTrainer),
])
def test_resume_after_interruption_is_exact(tmp_path, setup, interrupting):
    epochs = 5
    trainer, full_weights = setup(0)
    full = trainer.fit(*loaders(), num_epochs=epochs)

    # The same run, crashing in the middle of epoch 3 (4 batches per epoch).
    trainer, _ = setup(0, interrupting, interrupt_after=2 * 4 + 2)
    prefix = tmp_path / "ckpt" / "run"
    with pytest.raises(Interrupt):
        trainer.fit(*loaders(), num_epochs=epochs, checkpoints=prefix)
    assert [f.name for f in prefix.parent.iterdir()] == ["run.pt"]  # no temporary files left
    # A new process: different initial weights and loader seed, all replaced from the checkpoint.
    trainer, weights = setup(123)
    resumed = trainer.fit(*loaders(seed=99), num_epochs=epochs, checkpoints=prefix)

    assert resumed == full and resumed.num_epochs == epochs
    assert len(trainer.epoch_seconds) == epochs
    for w, w_full in zip(weights, full_weights):
        assert torch.equal(w, w_full)


def _skip_rng_restore(monkeypatch, trainer):
    import hw2.checkpoint as checkpoint
    monkeypatch.setattr(checkpoint, "set_rng_state", lambda state: None)


def _skip_loader_restore(monkeypatch, trainer):
    import hw2.checkpoint as checkpoint
    monkeypatch.setattr(checkpoint, "load_loader_state", lambda dl, state: None)


def _skip_optimizer_restore(monkeypatch, trainer):
    monkeypatch.setattr(trainer.optimizer, "load_state_dict", lambda state: None)


@pytest.mark.parametrize("setup", [torch_setup, layer_setup], ids=["TorchTrainer", "LayerTrainer"])
@pytest.mark.parametrize("skip_restore", [
    None, _skip_rng_restore, _skip_loader_restore, _skip_optimizer_restore,
], ids=["nothing", "rng", "loader-generator", "optimizer"])
def test_resume_without_each_checkpoint_item_would_differ(tmp_path, monkeypatch, setup,
                                                          skip_restore):
    """Guard for the test above: every item restored from the checkpoint matters.

    The resumed run (in a "new process": other initial weights, global RNG and
    loader seed) reproduces the uninterrupted one exactly when everything is
    restored, and differs when the RNG states, the train loader's generator or
    the optimizer state (momentum buffers) are left out of the restore.
    """
    epochs = 3
    trainer, full_weights = setup(0)
    full = trainer.fit(*loaders(), num_epochs=epochs)
    trainer, _ = setup(0)
    trainer.fit(*loaders(), num_epochs=1, checkpoints=tmp_path / "run")

    trainer, weights = setup(123)
    if skip_restore is not None:
        skip_restore(monkeypatch, trainer)
    resumed = trainer.fit(*loaders(seed=99), num_epochs=epochs, checkpoints=tmp_path / "run")

    same_weights = all(torch.equal(w, f) for w, f in zip(weights, full_weights))
    if skip_restore is None:
        assert resumed == full and same_weights
    else:
        assert resumed.train_loss[0] == full.train_loss[0]  # epoch 1 comes from the checkpoint
        assert resumed.train_loss[1:] != full.train_loss[1:]
        assert not same_weights


def test_checkpoint_of_another_model_is_rejected(tmp_path):
    trainer, _ = layer_setup(0)
    trainer.fit(*loaders(), num_epochs=1, checkpoints=tmp_path / "run")
    model = layers.MLP(12, 4, [16])
    other = LayerTrainer(model, layers.CrossEntropyLoss(), optimizers.VanillaSGD(model.params()))
    with pytest.raises(CheckpointError, match="run.pt does not fit.*Delete it to start"):
        other.fit(*loaders(), num_epochs=2, checkpoints=tmp_path / "run")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt cannot be read.*damaged.*Delete it"):
        trainer.fit(*loaders(), num_epochs=2, checkpoints=tmp_path / "bad")
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(CheckpointError, match="folder.pt is not a file"):
        trainer.fit(*loaders(), num_epochs=2, checkpoints=tmp_path / "folder")
    torch.save({"format": 1, "epoch": 3}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="old.pt is not a checkpoint of this version.*format 1"):
        trainer.fit(*loaders(), num_epochs=2, checkpoints=tmp_path / "old")


def test_a_checkpoint_of_another_run_identity_is_refused_naming_the_difference(tmp_path):
    trainer, _ = layer_setup(0)
    trainer.fit(*loaders(), num_epochs=1, checkpoints=tmp_path / "run",
                run_identity={"lr": 0.001, "K": [32]})
    again, _ = layer_setup(0)
    with pytest.raises(CheckpointError, match=r"another run or with other settings \(lr: 0.001 "
                                              r"in the checkpoint, 0.5 now\)"):
        again.fit(*loaders(), num_epochs=2, checkpoints=tmp_path / "run",
                  run_identity={"lr": 0.5, "K": [32]})
    same, _ = layer_setup(0)
    epochs = []
    res = same.fit(*loaders(), num_epochs=2, checkpoints=tmp_path / "run",
                   run_identity={"lr": 0.001, "K": [32]}, on_epoch=epochs.append)
    assert res.num_epochs == 2 and epochs == [2]  # resumed after epoch 1


def test_torch_trainer_bfloat16_autocast_on_cpu():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 4))
    ds = TensorDataset(torch.randn(32, 3, 4, 4), torch.randint(0, 4, (32,)))
    dl = DataLoader(ds, batch_size=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    trainer = TorchTrainer(model, nn.CrossEntropyLoss(), opt, "cpu", amp_dtype=torch.bfloat16,
                           channels_last=True)
    res = trainer.fit(dl, dl, num_epochs=3)
    assert res.num_epochs == 3 and all(0 < v < 10 for v in res.train_loss + res.test_loss)
    assert res.train_loss[-1] < res.train_loss[0]
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_torch_trainer_arguments():
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="LayerTrainer"):
        TorchTrainer(layers.Linear(2, 2), nn.CrossEntropyLoss(), opt)
    with pytest.raises(ValueError, match="amp_dtype must be one of torch.bfloat16, "
                                         "torch.float16, None, got torch.float64"):
        TorchTrainer(model, nn.CrossEntropyLoss(), opt, amp_dtype=torch.float64)
    assert TorchTrainer(model, nn.CrossEntropyLoss(), opt).device == torch.device("cpu")


def test_resume_with_gpu_batches_loader_state(tmp_path):
    """The runner's path: a loader with state_dict() (hw2.data.GPUBatches, here on the CPU)."""
    from hw2.data import GPUBatches

    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (48, 3, 8, 8), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 4, (48,), generator=gen)

    def setup(seed, trainer_cls=TorchTrainer, **kw):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                              nn.Linear(4 * 64, 4))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        batches = (GPUBatches(x, y, 16, shuffle=True, augment=True, device="cpu", seed=seed),
                   GPUBatches(x[:16], y[:16], 16, device="cpu"))
        return trainer_cls(model, nn.CrossEntropyLoss(), opt, "cpu", **kw), batches

    trainer, batches = setup(0)
    full = trainer.fit(*batches, num_epochs=4)
    trainer, batches = setup(0, InterruptingTorchTrainer, interrupt_after=3 * 2 + 1)
    with pytest.raises(Interrupt):
        trainer.fit(*batches, num_epochs=4, checkpoints=tmp_path / "run")
    trainer, batches = setup(7)
    assert trainer.fit(*batches, num_epochs=4, checkpoints=tmp_path / "run") == full
    assert batches[0].epoch == 4


def test_verbose_epoch_shows_a_progress_bar(capsys):
    trainer, _ = torch_setup(0)
    dl_train, _ = loaders()
    res = trainer.train_epoch(dl_train, verbose=True)
    err = capsys.readouterr().err
    assert "train" in err and "4/4" in err and f"acc={res.accuracy:.1f}%" in err


# ------------------------------------------------------------------ the Part 2 recipe
def test_fit_mlp_is_the_hand_written_recipe():
    """fit_mlp equals the loop the Part 2 chapters used to write out, bit for bit."""
    from hw2.training import fit_mlp, seeded_loaders

    ds_train, ds_val, ds_test = make_data(60, d=12, seed=1), make_data(20, seed=3), make_data(30, seed=2)
    kw = dict(learn_rate=0.05, reg=1e-3, momentum=0.9)

    torch.manual_seed(7)
    model = layers.MLP(12, 4, [16, 8], dropout=0.2, wstd=0.3)
    trainer = LayerTrainer(model, layers.CrossEntropyLoss(), optimizers.MomentumSGD(model.params(), **kw))
    dl_train = DataLoader(ds_train, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(7))
    by_hand = trainer.fit(dl_train, DataLoader(ds_test, batch_size=500), 3,
                          dl_val=DataLoader(ds_val, batch_size=500))

    recipe = fit_mlp(ds_train, ds_test, hidden=[16, 8], optimizer_cls=optimizers.MomentumSGD,
                     optimizer_kw=kw, epochs=3, batch_size=16, seed=7, ds_val=ds_val,
                     in_features=12, num_classes=4, dropout=0.2, wstd=0.3)
    assert recipe == by_hand and len(recipe.val_loss) == 3
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        seeded_loaders(ds_train, batch_size=0)


# --------------------------------------------------------------------------
# Progress in Jupyter: a bar when a person runs a notebook, none in the book build
# --------------------------------------------------------------------------

PROGRESS_CELL = """
import torch
from hw2.training import TorchTrainer
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
trainer = TorchTrainer(model, torch.nn.CrossEntropyLoss(),
                       torch.optim.SGD(model.parameters(), lr=0.1))
batches = [(torch.randn(8, 3, 2, 2), torch.randint(0, 3, (8,))) for _ in range(4)]
result = trainer.fit(batches, batches, 2)
print("epochs", result.num_epochs)
"""


@pytest.mark.parametrize("quiet", [False, True])
def test_a_notebook_shows_progress_unless_run_by_the_book_build(quiet, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    if quiet:
        monkeypatch.setenv("HW2_QUIET", "1")  # what the book build and nbval set
    else:
        monkeypatch.delenv("HW2_QUIET", raising=False)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROGRESS_CELL)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    stdout = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "epochs 2" in stdout
    if quiet:
        assert stderr == "", stderr
    else:  # tqdm's bar for each pass: train and test, 4 batches each
        assert "train" in stderr and "test" in stderr and "4/4" in stderr, stderr


def test_a_script_whose_output_goes_to_a_file_shows_no_progress(monkeypatch):
    from hw2._progress import resolve_verbose as _resolve_verbose

    monkeypatch.delenv("HW2_QUIET", raising=False)
    assert _resolve_verbose(None) is False  # pytest captures stderr: not a terminal
    assert _resolve_verbose(True) is True and _resolve_verbose(False) is False


def test_a_run_diverged_when_any_split_lost_its_loss():
    from hw2.training import FitResult

    fine = FitResult(2, [1.0, 0.5], [50.0, 60.0], [1.1, 0.9], [40.0, 45.0],
                     [1.2, 0.8], [41.0, 44.0])
    assert not fine.diverged
    for split in ("train_loss", "val_loss", "test_loss"):
        broken = fine._replace(**{split: [1.0, float("nan")]})
        assert broken.diverged, split
    assert fine._replace(val_loss=[1.0, float("inf")]).diverged
