"""One training loop for every model in the book.

``Trainer.fit`` runs epochs, ``train_epoch``/``test_epoch`` run batches, and
subclasses say only what one batch does (``train_batch``/``test_batch``):

- :class:`LayerTrainer` for the from-scratch ``hw2.layers`` models, whose
  backward pass is called by hand and whose optimizer is one of
  ``hw2.optimizers``;
- :class:`TorchTrainer` for ``torch.nn.Module`` models trained with autograd
  and ``torch.optim``, on any device, optionally with mixed precision.

The loop never waits for the device inside an epoch unless it prints a
progress bar: a batch may return its loss and number of correct predictions
as 0-dim tensors, and an epoch's results are copied to the host once, at its
end. Checkpoints are :mod:`hw2.checkpoint`'s business, progress bars
:mod:`hw2._progress`'s.

Why one module of some 650 lines: it holds the assignment's API -- the result
types, the Trainer whose loop the chapters show, its two subclasses -- and the
Part 2 recipe built on them (:func:`fit_mlp`), which the chapters name as
``hw2.training``'s.
"""
from __future__ import annotations

import abc
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from hw2 import _checks, checkpoint
from hw2._progress import QUIET_ENV, in_notebook, progress_bar, resolve_verbose
from hw2.checkpoint import CheckpointError, checkpoint_epoch, checkpoint_seed

__all__ = ["BatchResult", "EpochResult", "FitResult", "Trainer", "LayerTrainer",
           "TorchTrainer", "CheckpointError",
           "checkpoint_epoch", "checkpoint_seed", "seeded_loaders", "mlp_trainer",
           "fit_mlp", "QUIET_ENV", "in_notebook"]

class BatchResult(NamedTuple):
    """What one batch gives: its mean loss and how many predictions were right.

    Either field may be a 0-dim tensor (still on the device) or a Python number.
    """

    loss: float
    num_correct: int


class EpochResult(NamedTuple):
    """One pass over a data loader.

    Attributes:
        losses: the loss of every batch.
        accuracy: the accuracy in percent.
    """

    losses: list[float]
    accuracy: float


class FitResult(NamedTuple):
    """A whole training run: one entry per epoch (mean batch loss, accuracy in percent).

    ``val_loss`` / ``val_acc`` are filled only when :meth:`Trainer.fit` was
    given a validation loader (empty otherwise, as in the original assignment).
    """

    num_epochs: int
    train_loss: list[float]
    train_acc: list[float]
    test_loss: list[float]
    test_acc: list[float]
    val_loss: list[float] = []
    val_acc: list[float] = []

    @property
    def has_validation(self) -> bool:
        return bool(self.val_loss)

    @property
    def diverged(self) -> bool:
        """Whether a loss of any split became NaN or infinite."""
        return not all(math.isfinite(v) for v in
                       (*self.train_loss, *self.val_loss, *self.test_loss))

    @property
    def best_epoch(self) -> int:
        """The epoch (1-based) of the lowest validation loss, else test loss.

        The same rule early stopping follows, so it is the epoch a run would
        keep; 0 for a run with no epochs.
        """
        losses = self.val_loss if self.val_loss else self.test_loss
        if not losses:
            return 0
        return min(range(len(losses)), key=lambda i: losses[i]) + 1

    def to_dict(self) -> dict[str, Any]:
        """Plain ``int``/``list[float]`` values, ready for ``json.dump``.

        The validation lists appear only when the run had a validation split.
        """
        fields = self._fields[1:] if self.has_validation else self._fields[1:5]
        return {"num_epochs": int(self.num_epochs),
                **{k: [float(v) for v in getattr(self, k)] for k in fields}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FitResult":
        """The inverse of :meth:`to_dict` (e.g. on the output of ``json.load``)."""
        if not isinstance(d, dict):
            raise TypeError(f"FitResult.from_dict needs a dict, got {type(d).__name__}")
        required = cls._fields[:5]
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"FitResult.from_dict: missing keys {missing}")
        present = [k for k in cls._fields[1:] if k in d]
        # JSON has no NaN: a diverged run's non-finite losses are stored as null.
        lists = {
            k: [math.nan if v is None else float(v) for v in d[k]] for k in present
        }
        lengths = {len(v) for v in lists.values()}
        if len(lengths) != 1:
            raise ValueError(f"FitResult.from_dict: per-epoch lists differ in length "
                             f"({ {k: len(v) for k, v in lists.items()} })")
        return cls(num_epochs=int(d["num_epochs"]), **lists)


_positive_int = _checks.positive_int


def _to_list(values: Sequence) -> list[float]:
    """Numbers or 0-dim tensors -> floats, with one host transfer for the tensors."""
    if values and all(isinstance(v, Tensor) for v in values):
        return torch.stack([v.detach().reshape(()).float() for v in values]).tolist()
    return [float(v) for v in values]


@dataclass
class _Progress:
    """A fit's bookkeeping: the history so far, and early stopping's count.

    ``monitored`` is the split whose loss early stopping watches ('val', else
    'test'); a new lowest loss of it resets the count of epochs without one.
    """

    splits: list[str]
    monitored: str
    epoch: int = 0
    best_loss: float = math.inf
    epochs_without_improvement: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self):
        if not self.history:
            self.history = {f"{split}_{m}": [] for split in self.splits
                            for m in ("loss", "acc")}

    def record(self, results: dict[str, EpochResult]) -> None:
        """One finished epoch: its mean losses and accuracies, and the count."""
        for split, res in results.items():
            self.history[f"{split}_loss"].append(sum(res.losses) / len(res.losses))
            self.history[f"{split}_acc"].append(res.accuracy)
        if self.history[f"{self.monitored}_loss"][-1] < self.best_loss:
            self.best_loss = self.history[f"{self.monitored}_loss"][-1]
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        self.epoch += 1

    def stalled(self, early_stopping: int | None) -> bool:
        """Whether early stopping ends the fit: ``early_stopping`` epochs without a
        new lowest monitored loss."""
        return (early_stopping is not None
                and self.epochs_without_improvement >= early_stopping)

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of it."""
        return dict(epoch=self.epoch, results=self.history, best_loss=self.best_loss,
                    epochs_without_improvement=self.epochs_without_improvement)

    def restore(self, saved: dict[str, Any], path: Path) -> None:
        """Take up a checkpoint's bookkeeping (its history must have these splits)."""
        try:
            self.history = {k: list(saved["results"][k]) for k in self.history}
        except KeyError as e:
            raise CheckpointError(
                f"checkpoint {path} has no {e.args[0]} history: it was written by a "
                f"fit {'with' if self.monitored == 'test' else 'without'} a "
                f"validation loader. Delete it to start afresh."
            ) from None
        self.epoch = saved["epoch"]
        self.best_loss = saved["best_loss"]
        self.epochs_without_improvement = saved["epochs_without_improvement"]

    def line(self, results: dict[str, EpochResult]) -> str:
        """``train loss 1.234 acc 56.7% | test loss ...`` of the last epoch."""
        return " | ".join(f"{split} loss {self.history[f'{split}_loss'][-1]:.3f} "
                          f"acc {res.accuracy:.1f}%" for split, res in results.items())

    def result(self) -> FitResult:
        return FitResult(self.epoch, **self.history)



class Trainer(abc.ABC):
    """Trains a model: epochs of batches, early stopping, checkpoints.

    Subclasses implement :meth:`train_batch` and :meth:`test_batch`; the
    epoch and fit loops are shared. The model needs ``train(mode)``; the
    optimizer ``state_dict()``/``load_state_dict()`` (for checkpoints).
    """

    def __init__(self, model, loss_fn: Callable, optimizer):
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        #: Wall-clock seconds of each epoch (train + test) of the last fit,
        #: including the epochs before a resume.
        self.epoch_seconds: list[float] = []
        #: Wall-clock seconds of each epoch's training pass alone.
        self.train_seconds: list[float] = []

    # ------------------------------------------------------------------ fit
    def fit(self, dl_train: Iterable, dl_test: Iterable, num_epochs: int,
            checkpoints: str | os.PathLike | None = None,
            early_stopping: int | None = None, print_every: int = 1,
            max_batches: int | None = None, verbose: bool | None = None,
            dl_val: Iterable | None = None, run_identity: dict | None = None,
            on_epoch: Callable[[int], Any] | None = None) -> FitResult:
        """Train for ``num_epochs`` epochs, validating and testing after each one.

        Args:
            dl_train, dl_test: iterables of ``(X, y)`` batches with ``len()``.
            num_epochs: total number of epochs, counting those of a resumed run.
            checkpoints: path prefix: after every epoch everything needed to
                resume is written (atomically) to ``f"{checkpoints}.pt"``; if
                that file exists when fit starts, training resumes from it.
            early_stopping: stop after this many consecutive epochs without a
                new lowest validation loss (test loss without ``dl_val``);
                None: never stop early.
            print_every: when verbose, report every this many epochs (and the
                last).
            max_batches: use at most this many batches per epoch of each loader.
            verbose: progress bars and epoch reports; None shows them on a
                terminal and in a notebook run interactively, never in the book
                build or nbval (:data:`QUIET_ENV`).
            dl_val: a validation loader (held-out training images). When
                given, early stopping watches its loss, and the test set is
                only scored; without it early stopping watches the test loss,
                as the original assignment does.
            run_identity: plain data saying what this fit trains (the
                experiment runner passes its configuration). It is saved in
                every checkpoint, and a checkpoint saved with another identity
                is refused (:class:`CheckpointError` naming what differs): a
                run never resumes another run's training.
            on_epoch: called with the epoch number after each epoch (and its
                checkpoint); the runner uses it as a heartbeat.

        Returns:
            The per-epoch losses and accuracies of the whole run.
        """
        num_epochs = _positive_int("num_epochs", num_epochs)
        early_stopping = _positive_int("early_stopping", early_stopping,
                                       allow_none=True)
        print_every = _positive_int("print_every", print_every)
        max_batches = _positive_int("max_batches", max_batches, allow_none=True)
        checkpoint_file = checkpoint.check_place(checkpoints)
        verbose = resolve_verbose(verbose)
        loaders = {"train": dl_train, "val": dl_val, "test": dl_test}
        progress = _Progress([s for s, dl in loaders.items() if dl is not None],
                             monitored="val" if dl_val is not None else "test")
        self.epoch_seconds, self.train_seconds = [], []

        # Resume where a checkpoint left off.
        if checkpoint_file is not None and checkpoint_file.is_file():
            saved = self.load_checkpoint(checkpoint_file, dl_train, dl_test, dl_val,
                                         run_identity=run_identity)
            progress.restore(saved, checkpoint_file)
            if verbose:
                print(f"*** Resuming from {checkpoint_file} after epoch "
                      f"{progress.epoch}")

        while progress.epoch < num_epochs and not progress.stalled(early_stopping):
            epoch = progress.epoch + 1
            report = verbose and (epoch % print_every == 0 or epoch == num_epochs)
            kw = {"max_batches": max_batches, "verbose": report}
            # 1. Train, then evaluate on the validation and test sets.
            start = time.perf_counter()
            results = {"train": self.train_epoch(dl_train, **kw)}
            self.train_seconds.append(time.perf_counter() - start)
            for split in ("val", "test"):
                if loaders[split] is not None:
                    results[split] = self.test_epoch(loaders[split], **kw)
            self.epoch_seconds.append(time.perf_counter() - start)
            # 2. The history and early stopping's count.
            progress.record(results)
            # 3. Checkpoint: everything the next epoch depends on.
            if checkpoint_file is not None:
                self.save_checkpoint(checkpoint_file, dl_train, dl_test, dl_val,
                                     run=run_identity, **progress.state())
            if report:
                print(f"--- epoch {epoch}/{num_epochs}: {progress.line(results)} "
                      f"| {self.epoch_seconds[-1]:.1f} s")
            if on_epoch is not None:
                on_epoch(progress.epoch)

        if verbose and progress.epoch < num_epochs:
            print(f"*** Early stopping after epoch {progress.epoch}: no new lowest "
                  f"{progress.monitored} loss for "
                  f"{progress.epochs_without_improvement} epochs")
        return progress.result()

    # --------------------------------------------------------------- epochs
    def train_epoch(self, dl_train: Iterable, *, max_batches: int | None = None,
                    verbose: bool | None = None) -> EpochResult:
        """One pass over ``dl_train`` in training mode, updating the model."""
        self.model.train(True)
        return self._foreach_batch(
            dl_train, self.train_batch, "train", max_batches, verbose
        )

    def test_epoch(self, dl_test: Iterable, *, max_batches: int | None = None,
                   verbose: bool | None = None) -> EpochResult:
        """One pass over ``dl_test`` in evaluation mode, without updating the model."""
        self.model.train(False)
        return self._foreach_batch(
            dl_test, self.test_batch, "test", max_batches, verbose
        )

    @abc.abstractmethod
    def train_batch(self, batch) -> BatchResult:
        """Forward, backward and optimizer step on one ``(X, y)`` batch."""

    @abc.abstractmethod
    def test_batch(self, batch) -> BatchResult:
        """Forward only, on one ``(X, y)`` batch."""

    def _foreach_batch(self, dl, forward_fn: Callable, name: str,
                       max_batches: int | None, verbose: bool | None) -> EpochResult:
        max_batches = _positive_int("max_batches", max_batches, allow_none=True)
        verbose = resolve_verbose(verbose)
        num_batches = len(dl) if max_batches is None else min(len(dl), max_batches)
        losses, corrects, num_samples = [], [], 0
        with progress_bar(total=num_batches, desc=name, disable=not verbose) as bar:
            for batch_idx, batch in enumerate(dl):
                if batch_idx >= num_batches:
                    break
                result = forward_fn(batch)
                losses.append(result.loss)
                corrects.append(result.num_correct)
                num_samples += len(batch[1])
                if verbose:  # the only per-batch host sync, and only for the bar
                    bar.set_postfix(loss=f"{float(result.loss):.3f}", refresh=False)
                bar.update()
            if num_samples == 0:
                raise ValueError(f"{name} data loader yielded no samples")
            losses = _to_list(losses)  # one host transfer per epoch
            accuracy = 100.0 * sum(_to_list(corrects)) / num_samples
            bar.set_postfix(
                loss=f"{sum(losses) / len(losses):.3f}", acc=f"{accuracy:.1f}%"
            )
        return EpochResult(losses=losses, accuracy=accuracy)

    # ---------------------------------------------------------- checkpoints
    def model_state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_model_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)

    def extra_state_dict(self) -> dict[str, Any]:
        """Subclass state for checkpoints besides model and optimizer.

        For example a learning-rate scheduler's state.
        """
        return {}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def save_checkpoint(
        self, path: Path, dl_train, dl_test, dl_val=None, **progress
    ) -> None:
        """Save model, optimizer, RNG and loader states and ``progress`` in ``path``."""
        checkpoint.write(path, {
            **progress,
            "model": self.model_state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "extra": self.extra_state_dict(),
            "rng": checkpoint.rng_state(),
            "loaders": {
                "train": checkpoint.loader_state(dl_train),
                "test": checkpoint.loader_state(dl_test),
                "val": checkpoint.loader_state(dl_val),
            },
            "epoch_seconds": list(self.epoch_seconds),
            "train_seconds": list(self.train_seconds),
        })

    def load_checkpoint(self, path: Path, dl_train=None, dl_test=None, dl_val=None, *,
                        run_identity: dict | None = None) -> dict[str, Any]:
        """Restore everything :meth:`save_checkpoint` wrote; return the checkpoint.

        Tensors are loaded onto the CPU first and then copied into the model's
        and optimizer's own tensors, so a checkpoint written on one device
        resumes on another.

        Raises:
            CheckpointError: a damaged checkpoint, one of another layout, one
                saved with another ``run_identity`` or one that does not fit
                the model; the message names the file and the remedy
                (:func:`hw2.checkpoint.read`).
        """
        saved = checkpoint.read(path, run_identity)
        try:
            self.load_model_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.load_extra_state_dict(saved["extra"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(
                f"checkpoint {path} does not fit this trainer's model or "
                f"optimizer ({str(e).splitlines()[0]}). {checkpoint.FRESH}"
            ) from None
        for dl, split in ((dl_train, "train"), (dl_test, "test"), (dl_val, "val")):
            if dl is not None:
                checkpoint.load_loader_state(dl, saved["loaders"].get(split))
        checkpoint.set_rng_state(saved["rng"])
        self.epoch_seconds = list(saved["epoch_seconds"])
        self.train_seconds = list(saved.get("train_seconds", []))
        return saved


class LayerTrainer(Trainer):
    """Trains an ``hw2.layers`` model with an ``hw2.optimizers`` optimizer.

    The backward pass is explicit: the loss layer's backward gives dL/dscores,
    the model's backward turns it into parameter gradients. Image batches
    are flattened to (N, D), since the layer models are MLPs.

    Args:
        model: an ``hw2.layers.Layer`` (e.g. ``MLP``) giving class scores
            (N, C).
        loss_fn: a loss layer, e.g. ``hw2.layers.CrossEntropyLoss()``.
        optimizer: an ``hw2.optimizers.Optimizer`` over ``model.params()``.
    """

    def __init__(self, model, loss_fn, optimizer):
        super().__init__(model, loss_fn, optimizer)

    @staticmethod
    def _flatten(X: Tensor) -> Tensor:
        return X.reshape(X.shape[0], -1)  # (N, C, H, W) -> (N, D)

    def train_batch(self, batch) -> BatchResult:
        X, y = batch
        X = self._flatten(X)
        self.optimizer.zero_grad()
        scores = self.model(X)  # (N, C)
        loss = self.loss_fn(scores, y)
        # dL/dscores, then through the model
        self.model.backward(self.loss_fn.backward())
        self.optimizer.step()
        return BatchResult(loss, (scores.argmax(dim=1) == y).sum())

    def test_batch(self, batch) -> BatchResult:
        X, y = batch
        scores = self.model(self._flatten(X))
        loss = self.loss_fn(scores, y)
        return BatchResult(loss, (scores.argmax(dim=1) == y).sum())

    # hw2.layers models have no state_dict: save their parameter tensors.
    def model_state_dict(self) -> dict[str, Any]:
        return {"params": [p.clone() for p, _ in self.model.params()]}

    def load_model_state_dict(self, state: dict[str, Any]) -> None:
        params = [p for p, _ in self.model.params()]
        saved = state["params"]
        if (len(saved) != len(params)
                or any(s.shape != p.shape for s, p in zip(saved, params))):
            raise ValueError(
                f"checkpoint parameter shapes {[tuple(s.shape) for s in saved]} "
                f"differ from the model's {[tuple(p.shape) for p in params]}"
            )
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)


class TorchTrainer(Trainer):
    """Trains a ``torch.nn.Module`` with autograd and a ``torch.optim`` optimizer.

    Args:
        device: where to train; the model is moved there. None: where the
            model's parameters already are.
        lr_scheduler: a ``torch.optim.lr_scheduler`` stepped after every
            training batch (and saved in checkpoints).
        amp_dtype: e.g. ``torch.bfloat16``: run forward and loss under
            ``torch.autocast`` with this dtype (float16 adds a gradient
            scaler).
        channels_last: keep the model and 4-d image batches in channels-last
            memory format (faster convolutions on tensor cores).
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable,
                 optimizer: torch.optim.Optimizer,
                 device: torch.device | str | None = None, *, lr_scheduler=None,
                 amp_dtype: torch.dtype | None = None, channels_last: bool = False):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"TorchTrainer trains torch.nn.Module models, "
                f"got {type(model).__name__} (use LayerTrainer for hw2.layers models)"
            )
        _checks.one_of("amp_dtype", amp_dtype, (torch.bfloat16, torch.float16, None))
        super().__init__(model, loss_fn, optimizer)
        if device is None:
            first = next(model.parameters(), None)
            device = first.device if first is not None else "cpu"
        self.device = torch.device(device)
        self.lr_scheduler = lr_scheduler
        self.amp_dtype = amp_dtype
        self.channels_last = bool(channels_last)
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=amp_dtype == torch.float16)

    def _to_device(self, batch) -> tuple[Tensor, Tensor]:
        X, y = batch
        if self.channels_last and X.dim() == 4:
            X = X.to(self.device, memory_format=torch.channels_last, non_blocking=True)
        else:
            X = X.to(self.device, non_blocking=True)
        return X, y.to(self.device, non_blocking=True)

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_batch(self, batch) -> BatchResult:
        X, y = self._to_device(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            scores = self.model(X)  # (N, C)
            loss = self.loss_fn(scores, y)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()
        return BatchResult(loss.detach(), (scores.argmax(dim=1) == y).sum())

    def test_batch(self, batch) -> BatchResult:
        X, y = self._to_device(batch)
        with torch.no_grad(), self._autocast():
            scores = self.model(X)
            loss = self.loss_fn(scores, y)
        return BatchResult(loss, (scores.argmax(dim=1) == y).sum())

    def extra_state_dict(self) -> dict[str, Any]:
        state = {"scaler": self.scaler.state_dict()}
        if self.lr_scheduler is not None:
            state["lr_scheduler"] = self.lr_scheduler.state_dict()
        return state

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.lr_scheduler is not None:
            if "lr_scheduler" not in state:
                raise ValueError(
                    "the checkpoint has no lr_scheduler state, but this trainer has one"
                )
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])


# ---------------------------------------------------------------------------
# The Part 2 recipe: an MLP of hw2.layers, trained on seeded batches
# ---------------------------------------------------------------------------

def seeded_loaders(ds_train, *eval_sets, batch_size: int, seed: int = 0,
                   eval_batch_size: int = 500) -> tuple:
    """A shuffled training ``DataLoader`` and in-order loaders for evaluation sets.

    Args:
        ds_train: the training ``Dataset``.
        *eval_sets: datasets only scored (validation, test), in that order.
        batch_size: training images per step.
        seed: seeds the training loader's own generator, so the sequence of
            batches is the same on every run, whatever else draws random numbers.
        eval_batch_size: images per evaluation batch.

    Returns:
        ``(dl_train, *dl_eval)``.
    """
    from torch.utils.data import DataLoader

    _positive_int("batch_size", batch_size)
    _positive_int("eval_batch_size", eval_batch_size)
    dl_train = DataLoader(ds_train, batch_size=batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(seed))
    return (dl_train, *(DataLoader(ds, batch_size=eval_batch_size) for ds in eval_sets))


def mlp_trainer(hidden: Sequence[int], optimizer_cls, optimizer_kw: dict, *,
                seed: int = 0, in_features: int = 3072, num_classes: int = 10,
                **mlp_kw) -> "LayerTrainer":
    """A :class:`LayerTrainer` for a fresh ``hw2.layers.MLP`` and its optimizer.

    Args:
        hidden: widths of the hidden layers.
        optimizer_cls: an ``hw2.optimizers`` class, e.g. ``MomentumSGD``.
        optimizer_kw: its keyword arguments (``learn_rate``, ``reg``, ...).
        seed: seeds torch's global generator before the weights are drawn.
        in_features, num_classes: the MLP's input and output sizes (CIFAR-10
            images as vectors by default).
        **mlp_kw: more ``MLP`` keywords (``dropout``, ``wstd``, ``activation``).
    """
    from hw2 import layers

    torch.manual_seed(seed)
    model = layers.MLP(in_features, num_classes, list(hidden), **mlp_kw)
    optimizer = optimizer_cls(model.params(), **optimizer_kw)
    return LayerTrainer(model, layers.CrossEntropyLoss(), optimizer)


def fit_mlp(ds_train, ds_test, *, hidden: Sequence[int], optimizer_cls,
            optimizer_kw: dict, epochs: int, batch_size: int, seed: int = 0,
            ds_val=None, early_stopping: int | None = None,
            eval_batch_size: int = 500, **mlp_kw) -> FitResult:
    """Train a fresh MLP with :func:`mlp_trainer` on :func:`seeded_loaders`.

    The recipe the Part 2 chapters share. With ``ds_val`` the validation set
    is scored every epoch and early stopping watches it (see :meth:`Trainer.fit`).
    """
    trainer = mlp_trainer(hidden, optimizer_cls, optimizer_kw, seed=seed, **mlp_kw)
    eval_sets = (ds_test,) if ds_val is None else (ds_val, ds_test)
    dl_train, *dl_eval = seeded_loaders(ds_train, *eval_sets, batch_size=batch_size,
                                        seed=seed, eval_batch_size=eval_batch_size)
    dl_val = dl_eval[0] if ds_val is not None else None
    return trainer.fit(dl_train, dl_eval[-1], epochs, early_stopping=early_stopping,
                       dl_val=dl_val, verbose=False)
