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

Devices (``task.device``, default the CPU; ``colorize.training.device``): the state is written as CPU tensors and read with
``map_location="cpu"``, so it resumes on either device. On CUDA each epoch's images go to the GPU at once (pinned,
non-blocking) and batches are cut there; a source of fresh images per epoch prepares the next epoch's in a
background thread (its resizes in ``workers`` threads) while the GPU trains on this one, and the loss is read back
only every ``log_every`` steps.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from colorize.fsutil import atomic_path
from colorize.training.config import TrainConfig
from colorize.training.records import append_jsonl

STATE_FILE = "state.pt"
METRICS_FILE = "metrics.jsonl"


class Task(Protocol):
    model: nn.Module  # a task may also have ``device`` (torch.device; default the CPU): where batches are sent

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


class _EpochImages:
    """The training images of each epoch as a tensor on ``device``: a fixed array uploaded once, or a per-epoch
    source (``for_epoch``) whose next epoch is prepared in a background thread when training on CUDA."""

    def __init__(self, images: Any, device: torch.device, workers: int = 1):
        self.images, self.device, self.workers = images, device, max(1, workers)
        self.per_epoch = hasattr(images, "for_epoch")
        self.prefetch = self.per_epoch and device.type == "cuda"
        self._fixed: Tensor | None = None
        self._next: tuple[int, threading.Thread, dict] | None = None

    def _host(self, epoch: int) -> Tensor:
        t = torch.from_numpy(np.ascontiguousarray(self.images.for_epoch(epoch, workers=self.workers)
                                                  if self.workers > 1 else self.images.for_epoch(epoch)))
        return t.pin_memory() if self.device.type == "cuda" else t

    def _start(self, epoch: int) -> None:
        box: dict = {}

        def run() -> None:
            try:
                box["images"] = self._host(epoch)
            except BaseException as e:  # raised again in the training thread
                box["error"] = e

        thread = threading.Thread(target=run, name=f"epoch-{epoch}-images", daemon=True)
        thread.start()
        self._next = (epoch, thread, box)

    def get(self, epoch: int, last_epoch: int) -> Tensor:
        """Epoch ``epoch``'s images on the device (uint8 [N, H, W, 3]); starts preparing the next one."""
        if not self.per_epoch:
            if self._fixed is None:
                from colorize.training.device import to_device

                self._fixed = to_device(torch.from_numpy(np.ascontiguousarray(self.images)), self.device)
            return self._fixed
        if self._next is not None and self._next[0] == epoch:
            _, thread, box = self._next
            thread.join()
            if "error" in box:
                raise box["error"]
            host = box["images"]
        else:
            host = self._host(epoch)
        self._next = None
        if self.prefetch and epoch + 1 < last_epoch:
            self._start(epoch + 1)
        return host.to(self.device, non_blocking=True)


class RunExistsError(RuntimeError):
    """The run folder already has a training state and ``resume`` was not asked for."""


def atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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


def fit(cfg: TrainConfig, task: Task, images: np.ndarray, labels: np.ndarray, *, resume: bool = False,
        workers: int = 1, schedule_steps: int | None = None, deadline: float | None = None) -> dict:
    """Train ``task.model`` on uint8 [N, H, W, 3] ``images``; returns the last epoch record.

    ``images`` may also be a source of fresh images per epoch: an object with ``len()`` and
    ``for_epoch(epoch, workers=1) -> uint8 [N, H, W, 3]`` (``colorize.data.photos.PhotoCrops``).

    Args:
        workers: threads that cut a per-epoch source's images (1: in the training thread, as before).
        schedule_steps: the run's length in steps, which the one-cycle spans (default: ``cfg.epochs`` epochs,
            or up to ``cfg.max_steps``, which does not shorten the schedule).
        deadline: a ``time.perf_counter()`` time to stop at (a time budget): the run stops at the first step
            past it, and at each epoch end the rest of the schedule is re-spanned to the steps that fit before
            it at the rate measured so far.

    Raises:
        RunExistsError: ``cfg.out`` holds a state and ``resume`` is False.
        ValueError: fewer training images than one batch.
    """
    run = _Run(cfg, task, len(images), schedule_steps)
    run.start(resume)
    source = _EpochImages(images, run.device, workers)
    labels_t = torch.from_numpy(np.asarray(labels)).to(run.device)
    record: dict = {}
    t_run, steps_run = time.perf_counter(), 0
    while run.epoch < cfg.epochs:
        if run.stopped(deadline):
            break  # ended exactly at an epoch end
        epoch_stats = run.train_epoch(source.get(run.epoch, run.last_epoch), labels_t, deadline)
        steps_run += epoch_stats.steps
        finished_epoch = run.step_in_epoch >= run.steps_per_epoch
        record = run.end_epoch(epoch_stats, finished_epoch)
        if not finished_epoch:
            break  # max_steps, schedule_steps or the deadline reached
        if deadline is not None and steps_run:
            run.fit_to_deadline(steps_run, t_run, deadline)
    return record


class _EpochStats:
    """What one epoch's steps add up to."""

    def __init__(self, device):
        self.totals: dict[str, float] = {}
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.loss_n = self.seen = self.steps = 0
        self.t0 = time.perf_counter()


class _Run:
    """One ``fit``: the model's task, its optimizer and schedule, and where the run is (epoch, step in it, step);
    saved to and resumed from ``cfg.out``/``state.pt``, recorded in ``metrics.jsonl``."""

    def __init__(self, cfg: TrainConfig, task: Task, n: int, schedule_steps: int | None):
        self.cfg, self.task, self.n = cfg, task, n
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.state_path, self.metrics_path = self.out / STATE_FILE, self.out / METRICS_FILE
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.steps_per_epoch = n // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"{n} training images is fewer than one batch of {cfg.batch_size} (lower --batch-size)")
        self.total_steps = schedule_steps or self.steps_per_epoch * cfg.epochs
        self.stop_at = schedule_steps or cfg.max_steps
        self.last_epoch = (min(cfg.epochs, math.ceil(self.stop_at / self.steps_per_epoch)) if self.stop_at
                           else cfg.epochs)
        self.device = getattr(task, "device", torch.device("cpu"))
        # One-cycle needs a few steps per phase; tiny runs (tests) get a schedule longer than the run.
        self.optimizer, self.scheduler = task.make_optimizer(max(self.total_steps, 20))
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0

    def start(self, resume: bool) -> None:
        """Resume from the saved state, or start afresh (dropping stale records of an aborted start)."""
        if self.state_path.is_file():
            if not resume:
                raise RunExistsError(f"{self.state_path} exists: pass --resume to continue that run, or choose "
                                     "another --out")
            state = torch.load(self.state_path, map_location="cpu", weights_only=True)
            self.task.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.epoch, self.step_in_epoch, self.global_step = (state["epoch"], state["step_in_epoch"],
                                                                state["global_step"])
            _respan_one_cycle(self.scheduler, max(self.total_steps, 20), self.cfg.pct_start)
            print(f"resumed {self.state_path}: epoch {self.epoch}, step {self.global_step}", file=sys.stderr)
        elif self.metrics_path.exists():
            self.metrics_path.unlink()

    def save_state(self) -> None:
        from colorize.training.device import to_cpu

        atomic_torch_save(to_cpu({
            "model": self.task.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "config": self.cfg.to_dict(),
        }), self.state_path)

    def stopped(self, deadline: float | None) -> bool:
        return bool(self.stop_at and self.global_step >= self.stop_at) or (
            deadline is not None and time.perf_counter() >= deadline)

    def train_epoch(self, images_t: Tensor, labels_t: Tensor, deadline: float | None) -> _EpochStats:
        """The rest of the current epoch's steps (up to ``stop_at`` or the deadline)."""
        cfg = self.cfg
        self.task.model.train()
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + self.epoch))
        perm = perm.to(self.device)
        stats = _EpochStats(self.device)
        while self.step_in_epoch < self.steps_per_epoch:
            if self.stop_at and self.global_step >= self.stop_at:
                break
            if deadline is not None and time.perf_counter() >= deadline:
                print(f"time budget reached at step {self.global_step}", file=sys.stderr)
                break
            idx = perm[self.step_in_epoch * cfg.batch_size : (self.step_in_epoch + 1) * cfg.batch_size]
            self._step(images_t[idx], labels_t[idx], stats)
        return stats

    def _step(self, images: Tensor, labels: Tensor, stats: _EpochStats) -> None:
        cfg = self.cfg
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.global_step)
        loss, step_stats = self.task.train_step(images, labels, gen)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.step_in_epoch += 1
        self.global_step += 1
        stats.steps += 1
        stats.seen += len(images)
        loss_d = loss.detach()
        stats.loss_sum, stats.loss_n = stats.loss_sum + loss_d.double() * len(images), stats.loss_n + len(images)
        logging = bool(cfg.log_every and self.global_step % cfg.log_every == 0)
        if self.device.type == "cpu" or logging:  # on CUDA, read back only when logging (no sync per step)
            lv = float(loss_d)
            if not math.isfinite(lv):
                raise FloatingPointError(f"loss is {lv} at step {self.global_step} (lower --lr)")
        for k, v in step_stats.items():
            stats.totals[k] = stats.totals.get(k, 0.0) + float(v)
        if logging:
            rate = stats.seen / (time.perf_counter() - stats.t0)
            append_jsonl(self.metrics_path, {"kind": "step", "epoch": self.epoch, "step": self.global_step,
                                             "loss": lv, "lr": self.scheduler.get_last_lr()[0],
                                             "img_per_s": round(rate, 2)})
            print(f"epoch {self.epoch} step {self.global_step}/{self.total_steps} loss {lv:.4f} {rate:.1f} img/s",
                  file=sys.stderr, flush=True)
        if cfg.save_every and self.global_step % cfg.save_every == 0:
            self.save_state()

    def end_epoch(self, stats: _EpochStats, finished: bool) -> dict:
        """Evaluate, record, save the state and the model, plot the curves; returns the epoch's record."""
        train_loss = float(stats.loss_sum) / max(stats.loss_n, 1)
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"mean loss is {train_loss} in epoch {self.epoch} (lower --lr)")
        elapsed = time.perf_counter() - stats.t0
        record = {"kind": "epoch", "epoch": self.epoch, "step": self.global_step, "complete": finished,
                  "train_loss": train_loss, **self.task.summarize(stats.totals),
                  "img_per_s": round(stats.seen / elapsed, 2) if elapsed > 0 else None,
                  "lr": self.scheduler.get_last_lr()[0]}
        record.update(self.task.evaluate())
        self.task.model.train()
        if finished:
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
        append_jsonl(self.metrics_path, record)
        self.save_state()
        self.task.export(self.out / "model", {k: v for k, v in record.items() if k != "kind"})
        try:
            from colorize.training.plots import plot_curves

            plot_curves(self.metrics_path, self.out / "curves.png")
        except ImportError as e:  # matplotlib is optional for training
            print(f"no curves plot ({e}; pip install matplotlib)", file=sys.stderr)
        print(json.dumps(record), file=sys.stderr, flush=True)
        return record

    def fit_to_deadline(self, steps_run: int, t_run: float, deadline: float) -> None:
        self.total_steps = _fit_to_deadline(self.scheduler, self.global_step, steps_run, t_run, deadline,
                                            self.total_steps, self.cfg.pct_start)
        self.stop_at = self.total_steps
        self.last_epoch = min(self.cfg.epochs, math.ceil(self.stop_at / self.steps_per_epoch))


def _fit_to_deadline(scheduler: Any, step: int, steps_run: int, t_run: float, deadline: float, total: int,
                     pct_start: float) -> int:
    """The run's new length: the steps that fit before ``deadline`` at the rate measured since ``t_run`` (epoch
    ends included); the schedule is re-spanned to it when it differs by more than 2 %."""
    per_step = (time.perf_counter() - t_run) / steps_run
    fits = step + max(1, int((deadline - time.perf_counter()) / per_step))
    if abs(fits - total) <= 0.02 * total or fits <= step + 1:
        return total
    _respan_one_cycle(scheduler, fits, pct_start)
    return fits
