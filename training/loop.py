"""The training loop shared by the classifier and the colorizers.

A ``Task`` owns the model, its loss and its evaluation; ``fit`` owns the
schedule, checkpointing and logging:

* batches are drawn from a permutation seeded by (seed, epoch), augmentation
  from a generator seeded by (seed, step), so a resumed run sees the same data
  in the same order as an uninterrupted one;
* ``OUT/state.pt`` (model, optimizer, scheduler, position) is written
  atomically every ``save_every`` steps and at each epoch end; ``resume=True``
  continues from it (loaded with ``weights_only=True``: no unpickling);
* ``OUT/metrics.jsonl`` gets a ``step`` record every ``log_every`` steps and
  an ``epoch`` record (training and evaluation metrics) per epoch;
* at each epoch end the model is exported as ``OUT/model.{json,safetensors}``
  (fp32, the checkpoint format) and ``OUT/curves.png`` is redrawn.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from training.config import TrainConfig

STATE_FILE = "state.pt"
METRICS_FILE = "metrics.jsonl"


class Task(Protocol):
    model: nn.Module

    def make_optimizer(self, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
        """(optimizer, LR scheduler stepped once per step)."""

    def train_step(self, images: Tensor, labels: Tensor, generator: torch.Generator) -> tuple[Tensor, dict]:
        """Loss of one batch of uint8 NHWC images (backward is done by ``fit``) and
        additive statistics (e.g. ``{"correct": k, "count": n}``)."""

    def summarize(self, totals: dict) -> dict:
        """Epoch training metrics from the summed statistics."""

    def evaluate(self) -> dict:
        """Evaluation metrics (model in eval mode; ``fit`` restores train mode)."""

    def export(self, path: Path, metrics: dict) -> None:
        """Write the model in the checkpoint format."""


class RunExistsError(RuntimeError):
    """The run folder already has a training state and ``resume`` was not asked for."""


def atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def _respan_one_cycle(scheduler: Any, total_steps: int, pct_start: float) -> None:
    """Resuming with another length (``--epochs`` / ``--limit-train`` changed, to fit a time
    budget): stretch or shrink the rest of a one-cycle schedule to end at the new total.
    The phase boundaries are OneCycleLR's own (``_schedule_phases``; torch 2.x)."""
    old = getattr(scheduler, "total_steps", None)
    phases = getattr(scheduler, "_schedule_phases", None)
    if old is None or old == total_steps or not phases:
        return
    if total_steps <= scheduler.last_epoch:
        raise ValueError(f"cannot resume at step {scheduler.last_epoch} into a schedule of {total_steps} steps")
    scheduler.total_steps = total_steps
    phases[0]["end_step"] = float(pct_start * total_steps) - 1
    phases[-1]["end_step"] = total_steps - 1
    print(f"schedule re-spanned from {old} to {total_steps} steps", file=sys.stderr)


def fit(cfg: TrainConfig, task: Task, images: np.ndarray, labels: np.ndarray, *, resume: bool = False) -> dict:
    """Train ``task.model`` on uint8 [N, H, W, 3] ``images``; returns the last epoch record.

    ``images`` may also be a source of fresh images per epoch: an object with ``len()`` and
    ``for_epoch(epoch) -> uint8 [N, H, W, 3]`` (``training.photos.PhotoCrops``).

    Raises:
        RunExistsError: ``cfg.out`` holds a state and ``resume`` is False.
        ValueError: fewer training images than one batch.
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path, metrics_path = out / STATE_FILE, out / METRICS_FILE
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    n = len(images)
    steps_per_epoch = n // cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"{n} training images is fewer than one batch of {cfg.batch_size} (lower --batch-size)")
    total_steps = steps_per_epoch * cfg.epochs
    # One-cycle needs a few steps per phase; tiny runs (tests) get a schedule longer than the run.
    optimizer, scheduler = task.make_optimizer(max(total_steps, 20))
    epoch, step_in_epoch, global_step = 0, 0, 0
    if state_path.is_file():
        if not resume:
            raise RunExistsError(f"{state_path} exists: pass --resume to continue that run, or choose another --out")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        task.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        epoch, step_in_epoch, global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        _respan_one_cycle(scheduler, max(total_steps, 20), cfg.pct_start)
        print(f"resumed {state_path}: epoch {epoch}, step {global_step}", file=sys.stderr)
    elif metrics_path.exists():
        metrics_path.unlink()  # a fresh run: stale records from an earlier aborted start

    def save_state() -> None:
        atomic_torch_save(
            {
                "model": task.model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "step_in_epoch": step_in_epoch,
                "global_step": global_step,
                "config": cfg.to_dict(),
            },
            state_path,
        )

    per_epoch = hasattr(images, "for_epoch")
    images_t = None if per_epoch else torch.from_numpy(np.ascontiguousarray(images))
    labels_t = torch.from_numpy(np.asarray(labels))
    record: dict = {}
    while epoch < cfg.epochs:
        task.model.train()
        if per_epoch:
            images_t = torch.from_numpy(np.ascontiguousarray(images.for_epoch(epoch)))
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        totals: dict[str, float] = {}
        loss_sum, loss_n = 0.0, 0
        t0, seen = time.perf_counter(), 0
        while step_in_epoch < steps_per_epoch:
            if cfg.max_steps and global_step >= cfg.max_steps:
                break
            idx = perm[step_in_epoch * cfg.batch_size : (step_in_epoch + 1) * cfg.batch_size]
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + global_step)
            loss, stats = task.train_step(images_t[idx], labels_t[idx], gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step_in_epoch += 1
            global_step += 1
            seen += len(idx)
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise FloatingPointError(f"loss is {lv} at step {global_step} (lower --lr)")
            loss_sum, loss_n = loss_sum + lv * len(idx), loss_n + len(idx)
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            if cfg.log_every and global_step % cfg.log_every == 0:
                rate = seen / (time.perf_counter() - t0)
                append_jsonl(
                    metrics_path,
                    {"kind": "step", "epoch": epoch, "step": global_step, "loss": lv,
                     "lr": scheduler.get_last_lr()[0], "img_per_s": round(rate, 2)},
                )
                print(f"epoch {epoch} step {global_step}/{total_steps} loss {lv:.4f} {rate:.1f} img/s",
                      file=sys.stderr, flush=True)
            if cfg.save_every and global_step % cfg.save_every == 0:
                save_state()
        finished_epoch = step_in_epoch >= steps_per_epoch
        elapsed = time.perf_counter() - t0
        record = {"kind": "epoch", "epoch": epoch, "step": global_step, "complete": finished_epoch,
                  "train_loss": loss_sum / max(loss_n, 1), **task.summarize(totals),
                  "img_per_s": round(seen / elapsed, 2) if elapsed > 0 else None,
                  "lr": scheduler.get_last_lr()[0]}
        record.update(task.evaluate())
        task.model.train()
        if finished_epoch:
            epoch, step_in_epoch = epoch + 1, 0
        append_jsonl(metrics_path, record)
        save_state()
        task.export(out / "model", {k: v for k, v in record.items() if k != "kind"})
        try:
            from training.plots import plot_curves

            plot_curves(metrics_path, out / "curves.png")
        except ImportError as e:  # matplotlib is optional for training
            print(f"no curves plot ({e}; pip install matplotlib)", file=sys.stderr)
        print(json.dumps(record), file=sys.stderr, flush=True)
        if not finished_epoch:
            break  # max_steps reached
    return record
