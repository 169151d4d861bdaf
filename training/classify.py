"""CIFAR-10 classifier training (``colorize train classify``).

ResNet with the CIFAR stem, random crop (zero padding 4) + horizontal flip,
label smoothing, SGD + Nesterov with a one-cycle schedule, bf16 autocast and
channels_last on CPU. Inputs are RGB normalized by the training split's
per-channel mean/std, which the checkpoint records (``data.input_mean/std``)
so the evaluation's semantic check feeds it the same way.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorize.training.augment import random_crop, random_flip, to_float_nchw
from colorize.training.config import ClassifyConfig


def subset(images: np.ndarray, labels: np.ndarray, limit: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random subset of ``limit`` images (all when ``limit`` is 0); the splits are
    sorted by class, so a plain prefix would hold one class only."""
    if not limit or limit >= len(images):
        return images, labels
    idx = np.sort(np.random.default_rng(seed).permutation(len(images))[:limit])
    return images[idx], labels[idx]


def autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 [N, H, W, 3] images on a [0, 1] scale."""
    x = images.reshape(-1, 3).astype(np.float64) / 255.0
    return x.mean(0).round(4).tolist(), x.std(0).round(4).tolist()


class ClassifierInput(nn.Module):
    """Normalizes float RGB [0, 1] NCHW with the recorded mean/std."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class ClassifyTask:
    def __init__(self, cfg: ClassifyConfig, num_classes: int, mean: list[float], std: list[float],
                 test: tuple[np.ndarray, np.ndarray], classes: list[str]):
        from colorize.models import create_model

        self.cfg = cfg
        self.model = create_model(cfg.arch, num_classes=num_classes, stem=cfg.stem, in_chans=3)
        if cfg.init:
            from colorize.models.checkpoint import load_weights_into

            try:
                load_weights_into(self.model, cfg.init, arch=cfg.arch,
                                  arch_kwargs={"num_classes": num_classes, "stem": cfg.stem, "in_chans": 3})
            except ValueError as e:
                raise ValueError(f"--init {cfg.init}: {e}") from None
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        self.norm = ClassifierInput(mean, std)
        self.mean, self.std, self.classes = mean, std, classes
        self.num_classes = num_classes
        self.test = test

    def make_optimizer(self, total_steps: int):
        decay, no_decay = [], []
        for p in self.model.parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)  # no weight decay on BN and biases
        opt = torch.optim.SGD(
            [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.cfg.lr, momentum=0.9, nesterov=True,
        )
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.cfg.lr, total_steps=max(total_steps, 1), pct_start=self.cfg.pct_start,
            div_factor=10.0, final_div_factor=100.0,
        )
        return opt, sched

    def _inputs(self, images: Tensor) -> Tensor:
        return self.norm(to_float_nchw(images)).contiguous(memory_format=self.memory_format)

    def train_step(self, images: Tensor, labels: Tensor, generator: torch.Generator):
        x = to_float_nchw(images)
        x = random_crop(x, self.cfg.crop_padding, generator)
        x = random_flip(x, generator)
        x = self.norm(x).contiguous(memory_format=self.memory_format)
        with autocast(self.cfg.bf16):
            logits = self.model(x)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.cfg.label_smoothing)
        correct = (logits.argmax(1) == labels).sum().item()
        return loss, {"correct": correct, "count": len(labels)}

    def summarize(self, totals: dict) -> dict:
        return {"train_acc": 100.0 * totals.get("correct", 0) / max(totals.get("count", 1), 1)}

    @torch.no_grad()
    def evaluate(self) -> dict:
        self.model.eval()
        images, labels = self.test
        correct, loss_sum = 0, 0.0
        for i in range(0, len(images), 500):
            x = self._inputs(torch.from_numpy(images[i : i + 500]))
            y = torch.from_numpy(labels[i : i + 500])
            with autocast(self.cfg.bf16):
                logits = self.model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
        n = max(len(images), 1)
        return {"test_loss": loss_sum / n, "test_acc": 100.0 * correct / n}

    def export(self, path: Path, metrics: dict) -> None:
        from colorize.models.checkpoint import save_checkpoint

        save_checkpoint(
            self.model, path, arch=self.cfg.arch,
            arch_kwargs={"num_classes": self.num_classes, "stem": self.cfg.stem, "in_chans": 3},
            data={"dataset": "cifar10 (JPEG copy, ../shared/data/cifar10)", "split": "train",
                  "input": "RGB in [0,1], normalized (x - input_mean) / input_std",
                  "input_mean": self.mean, "input_std": self.std, "classes": self.classes},
            metrics=metrics, extra={"training": {"command": self.cfg.command, "config": self.cfg.to_dict()}},
        )


def train_classifier(cfg: ClassifyConfig, *, resume: bool = False) -> dict:
    """Train a CIFAR-10 classifier as configured; returns the last epoch record."""
    from colorize.data.cifar10 import load_cifar10, read_classes
    from colorize.training.loop import fit

    torch.manual_seed(cfg.seed)
    x, y = load_cifar10("train", cfg.data)
    xt, yt = load_cifar10("test", cfg.data)
    x, y = subset(x, y, cfg.limit_train, cfg.seed)
    xt, yt = subset(xt, yt, cfg.limit_eval, cfg.seed)
    classes = read_classes(cfg.data)
    mean, std = channel_stats(x)
    task = ClassifyTask(cfg, len(classes), mean, std, (xt, yt), classes)
    return fit(cfg, task, x, y, resume=resume)
