"""Training throughput (images/s) of the experiment runner versus a course-style loop.

Same network (experiment 1.1's ConvClassifier with L=8, K=64, the grid's
hyperparameters), same device, same optimizer; only the way batches are made
and consumed differs:

- runner: ``hw2.experiments``' own path -- the whole dataset on the device as
  uint8 (``hw2.data.GPUBatches``), flip/crop augmentation on whole batches
  there, ``TorchTrainer.train_epoch`` with no host sync inside the epoch,
  bfloat16 autocast and channels-last on CUDA (float32 on a CPU);
- course: what the original assignment does -- a ``Dataset`` that turns each
  uint8 image into a PIL image, then ``ToTensor`` + ``Normalize`` (as
  torchvision's CIFAR10 dataset does), a ``DataLoader`` with 2 workers,
  float32, batch 128, and ``loss.item()`` / accuracy ``.item()`` per batch.

Each path runs a few timed segments of ``--batches`` batches after a warm-up
segment; the median images/s is reported, then the ratio runner / course.

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


def runner_rates(cfg, data, device, batches: int, repeats: int) -> list[float]:
    """images/s of TorchTrainer.train_epoch over GPUBatches, one value per segment."""
    ex.configure_backends(device)
    torch.manual_seed(0)
    dl_train, _, _ = ex.build_batches(cfg, data, device, seed=0)
    trainer = ex.build_trainer(cfg, ex.build_model(cfg), device, steps_per_epoch=len(dl_train))
    batches = min(batches, len(dl_train))
    rates = []
    for i in range(repeats + 1):  # the first segment warms up (cuDNN autotuning, allocator)
        _sync(device)
        t0 = time.perf_counter()
        trainer.train_epoch(dl_train, max_batches=batches, verbose=False)  # ends with one host sync
        _sync(device)
        if i:
            rates.append(batches * cfg.bs_train / (time.perf_counter() - t0))
    return rates


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
    p.add_argument("--train-size", type=int, help="training images (default: 2048 on CPU, all on GPU)")
    p.add_argument("--batches", type=int, help="batches per timed segment (default: 3 on CPU, 50 on GPU)")
    p.add_argument("--repeats", type=int, default=3, help="timed segments per path (median reported)")
    p.add_argument("--bs-runner", type=int, help="runner batch size (default: 128 on CPU, the grid's on GPU)")
    p.add_argument("--bs-course", type=int, default=128, help="course-style batch size")
    p.add_argument("--workers", type=int, default=2, help="course-style DataLoader workers")
    args = p.parse_args(argv)

    device = ex.resolve_device(args.device)
    on_cuda = device.type == "cuda"
    grid_run = next(c for c in ex.EXPERIMENTS["exp1_1"].runs()
                    if c.layers_per_block == 8 and c.filters_per_layer == [64])
    cfg = grid_run.replace(
        device=str(device),
        train_size=args.train_size if args.train_size else (None if on_cuda else 2048),
        bs_train=args.bs_runner or (grid_run.bs_train if on_cuda else 128),
        lr_schedule="constant", warmup=0.0,
    )
    batches = args.batches or (50 if on_cuda else 3)

    data = load_cifar10()
    print(f"device: {ex.device_name(device)} ({device}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"network: exp1_1 L=8 K=64 ConvClassifier (P={cfg.resolved_pool_every}, H={cfg.hidden_dims}, "
          f"{sum(p.numel() for p in ex.build_model(cfg).parameters()):,} parameters); "
          f"{cfg.optimizer} lr {cfg.lr:g}; {cfg.train_size or len(data.train_y)} training images")

    r = runner_rates(cfg, data, device, batches, args.repeats)
    precision = "bfloat16 autocast, channels-last" if (on_cuda and cfg.amp) else "float32"
    print(f"runner: GPUBatches + TorchTrainer, batch {cfg.bs_train}, {precision}: "
          f"median {statistics.median(r):,.0f} images/s ({args.repeats} x {batches} batches: "
          f"{', '.join(f'{x:,.0f}' for x in r)})", flush=True)
    c = course_rates(cfg, data, device, batches, args.repeats, args.bs_course, args.workers)
    print(f"course: PIL -> ToTensor DataLoader ({args.workers} workers), batch {args.bs_course}, float32: "
          f"median {statistics.median(c):,.0f} images/s ({args.repeats} x {batches} batches: "
          f"{', '.join(f'{x:,.0f}' for x in c)})")
    print(f"ratio runner / course: {statistics.median(r) / statistics.median(c):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
