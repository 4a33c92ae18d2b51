"""Training throughput (images/s) of the experiment runner versus two plain loops.

Same network (experiment 1.1's ConvClassifier with L=8, K=64, the grid's
hyperparameters), same device, same optimizer and batch size; only the way
batches are made and consumed differs:

- runner: ``hw2.experiments``' own path -- the whole dataset on the device as
  uint8 (``hw2.data.GPUBatches``), flip/crop augmentation on whole batches
  there, ``TorchTrainer.train_epoch`` with no host sync inside the epoch,
  channels-last memory, bfloat16 autocast on CUDA (float32 on a CPU);
- plain: the leanest PyTorch loop on the same model -- batches already made
  (float32, channels-last, in memory on the device), then zero_grad,
  forward, loss, backward, step, and nothing else. It does no augmentation:
  whatever the runner spends on making its batches shows in the ratio;
- course: what the original assignment does -- a ``Dataset`` that turns each
  uint8 image into a PIL image, then ``ToTensor`` + ``Normalize`` (as
  torchvision's CIFAR10 dataset does), a ``DataLoader`` with 2 workers,
  float32, batch 128, and ``loss.item()`` / accuracy ``.item()`` per batch.

The runner and the plain loop alternate, one timed segment of ``--batches``
batches each per round, after a warm-up round; each round gives a ratio, and
the median ratio is reported with the median images/s of each path (a slow
moment of a shared machine hits both paths of a round alike). The course
loop runs after them.

    HW2_CIFAR10=/path/to/cifar10-jpeg.tar.xz python benchmarks/runner_throughput.py
    python benchmarks/runner_throughput.py --device cuda      # full sizes on a GPU

Defaults depend on the device: on a CPU a 2,048-image subset, 3 batches per
segment, runner batch 128; on CUDA the full 50,000 images, 50 batches per
segment, the grid's batch size (512).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from hw2 import experiments as ex
from hw2.data import CIFAR10_MEAN, CIFAR10_STD, class_balanced_indices, load_cifar10


class PILCIFAR10(torch.utils.data.Dataset):
    """torchvision.datasets.CIFAR10's item path: uint8 HWC array -> PIL image -> transform."""

    def __init__(self, x, y):
        from torchvision import transforms

        self.images = x.permute(0, 2, 3, 1).contiguous().numpy()  # (N, H, W, C) uint8, like torchvision
        self.labels = y.tolist()
        self.transform = transforms.Compose([
            transforms.RandomCrop(32, padding=4, padding_mode="reflect"),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD),
        ])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_batches(cfg, data, device, count: int, batch_size: int):
    """``count`` ready batches: normalised float32, channels-last, on ``device``."""
    from hw2.data import CIFAR10_MEAN, CIFAR10_STD

    idx = class_balanced_indices(data.train_y, count * batch_size, 0)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1) * 255
    x = ((data.train_x[idx].float() - mean) / std).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = data.train_y[idx].to(device)
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(y), batch_size)]


def plain_loop(model, optimizer, loss_fn, batches) -> None:
    """zero_grad, forward, loss, backward, step for each batch; one sync at the end."""
    model.train()
    for X, y in batches:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(X), y).backward()
        optimizer.step()


def runner_and_plain(cfg, data, device, batches: int, repeats: int):
    """Alternating segments of the runner and the plain loop: (runner rates, plain rates)."""
    ex.configure_backends(device)
    torch.manual_seed(0)
    dl_train, _, _ = ex.build_batches(cfg, data, device, seed=0)
    trainer = ex.build_trainer(cfg, ex.build_model(cfg), device, steps_per_epoch=len(dl_train))
    batches = min(batches, len(dl_train))
    torch.manual_seed(0)
    model = ex.build_model(cfg).to(device).to(memory_format=torch.channels_last)
    optimizer, _ = ex.build_optimizer(cfg, model, steps_per_epoch=batches)
    loss_fn = torch.nn.CrossEntropyLoss()
    ready = plain_batches(cfg, data, device, batches, cfg.bs_train)
    runner, plain = [], []
    with ex.flush_denormals(device):  # as the runner trains
        for i in range(repeats + 1):  # the first round warms up (allocators, autotuning)
            _sync(device)
            t0 = time.perf_counter()
            trainer.train_epoch(dl_train, max_batches=batches, verbose=False)
            _sync(device)
            t1 = time.perf_counter()
            plain_loop(model, optimizer, loss_fn, ready)
            _sync(device)
            t2 = time.perf_counter()
            if i:
                runner.append(batches * cfg.bs_train / (t1 - t0))
                plain.append(batches * cfg.bs_train / (t2 - t1))
    return runner, plain


def course_rates(cfg, data, device, batches: int, repeats: int, batch_size: int, workers: int) -> list[float]:
    """images/s of a plain loop over a PIL/ToTensor DataLoader, one value per segment."""
    torch.manual_seed(0)
    idx = class_balanced_indices(data.train_y, cfg.train_size, 0)
    loader = torch.utils.data.DataLoader(
        PILCIFAR10(data.train_x[idx], data.train_y[idx]), batch_size=batch_size, shuffle=True,
        num_workers=workers, drop_last=True, pin_memory=device.type == "cuda")
    model = ex.build_model(cfg).to(device)
    optimizer, _ = ex.build_optimizer(cfg, model, steps_per_epoch=len(loader))
    loss_fn = torch.nn.CrossEntropyLoss()
    batches = min(batches, len(loader))
    rates = []
    model.train()
    for i in range(repeats + 1):
        it = iter(loader)  # a fresh epoch: workers start, as in a course loop
        next(it)           # ... but worker start-up is not counted
        _sync(device)
        t0 = time.perf_counter()
        total_loss = correct = 0
        for _ in range(batches):
            X, y = next(it)
            X, y = X.to(device), y.to(device)
            optimizer.zero_grad()
            scores = model(X)
            loss = loss_fn(scores, y)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()                              # host sync per batch
            correct += (scores.argmax(dim=1) == y).sum().item()
        _sync(device)
        if i:
            rates.append(batches * batch_size / (time.perf_counter() - t0))
        del it
    return rates


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--train-size", type=int,
                   help="training images (default: 2048 on CPU, all on GPU)")
    p.add_argument("--batches", type=int,
                   help="batches per timed segment (default: 3 on CPU, 50 on GPU)")
    p.add_argument("--repeats", type=int, default=7,
                   help="timed rounds (median reported)")
    p.add_argument("--bs-runner", type=int,
                   help="runner and plain batch size (default: 128 on CPU, the grid's on GPU)")
    p.add_argument("--bs-course", type=int, default=128, help="course-style batch size")
    p.add_argument("--workers", type=int, default=2, help="course-style DataLoader workers")
    p.add_argument("--no-course", action="store_true", help="skip the course-style loop")
    args = p.parse_args(argv)

    device = ex.resolve_device(args.device)
    on_cuda = device.type == "cuda"
    grid_run = next(c for c in ex.EXPERIMENTS["exp1_1"].runs()
                    if c.layers_per_block == 8 and c.filters_per_layer == [64])
    cfg = grid_run.replace(
        device=str(device), val_size=None,
        train_size=args.train_size if args.train_size else (None if on_cuda else 2048),
        bs_train=args.bs_runner or (grid_run.bs_train if on_cuda else 128),
        lr_schedule="constant", warmup=0.0,
    )
    batches = args.batches or (50 if on_cuda else 3)

    data = load_cifar10()
    print(f"device: {ex.device_name(device)} ({device}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    n_params = sum(p.numel() for p in ex.build_model(cfg).parameters())
    print(f"network: exp1_1 L=8 K=64 ConvClassifier (P={cfg.resolved_pool_every}, "
          f"H={cfg.hidden_dims}, {n_params:,} parameters); {cfg.optimizer} lr {cfg.lr:g}; "
          f"{cfg.train_size or len(data.train_y)} training images")

    r, plain = runner_and_plain(cfg, data, device, batches, args.repeats)
    ratios = [a / b for a, b in zip(r, plain)]
    precision = "bfloat16 autocast, channels-last" if (on_cuda and cfg.amp) else \
        "float32, channels-last"
    print(f"runner: GPUBatches + TorchTrainer, batch {cfg.bs_train}, {precision}: "
          f"median {statistics.median(r):,.0f} images/s ({args.repeats} x {batches} batches: "
          f"{', '.join(f'{x:,.0f}' for x in r)})", flush=True)
    print(f"plain:  ready channels-last batches, zero_grad/forward/backward/step, batch "
          f"{cfg.bs_train}: median {statistics.median(plain):,.0f} images/s "
          f"({', '.join(f'{x:,.0f}' for x in plain)})", flush=True)
    print(f"ratio runner / plain: median {statistics.median(ratios):.3f}x over "
          f"{len(ratios)} rounds ({', '.join(f'{x:.3f}' for x in ratios)})", flush=True)
    if args.no_course:
        return 0
    c = course_rates(cfg, data, device, batches, args.repeats, args.bs_course, args.workers)
    print(f"course: PIL -> ToTensor DataLoader ({args.workers} workers), batch {args.bs_course}, "
          f"float32: median {statistics.median(c):,.0f} images/s ({args.repeats} x {batches} "
          f"batches: {', '.join(f'{x:,.0f}' for x in c)})")
    print(f"ratio runner / course: {statistics.median(r) / statistics.median(c):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
