"""Colorization quality on CIFAR-10 (or any uint8 RGB images of one size).

``evaluate_colorizer`` colorizes the images from their L channel and reports,
for the model and for the gray baseline (keep L, ab = 0) side by side:
per-image mean PSNR, PSNR from the mean MSE, SSIM, colorfulness and the
colorfulness ratio (see ``colorize.training.metrics`` for the definitions), and, when a
classifier is given, its accuracy on true-colour, gray and colorized images and
the fraction of the gray-to-colour accuracy gap that colorization recovers.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import torch
from torch import Tensor, nn

from colorize.fsutil import atomic_path
from colorize.image.color import DEFAULT_NORMALIZATION, Normalization
from colorize.training.metrics import (
    colorfulness,
    gap_recovered,
    gray_baseline,
    mse_per_image,
    psnr_from_mse,
    ssim,
    to_uint8,
)


@torch.no_grad()
def colorize_uint8(model: nn.Module, rgb: Tensor, norm: Normalization = DEFAULT_NORMALIZATION,
                   batch_size: int = 250, bf16: bool = False, gray: str = "lstar") -> Tensor:
    """Colorize uint8 RGB [N, H, W, 3] images from their gray made by ``gray`` (``colorize.training.gray``: the L* of the
    original, or a gray file as users make it); uint8 [N, H, W, 3] out, with the gray input's L*. The model runs on
    the device its weights are on."""
    from colorize.training.gray import model_l_uint8
    from colorize.training.lab import merge_lab

    model.eval()
    device = next(model.parameters()).device
    outs = []
    for i in range(0, len(rgb), batch_size):
        l = model_l_uint8(rgb[i : i + batch_size], gray, norm)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            ab = model(l.to(device)).float().cpu()
        outs.append(to_uint8(merge_lab(l, ab, norm)))
    return torch.cat(outs)


@torch.no_grad()
def classify_uint8(classifier: nn.Module, rgb: Tensor, mean: list[float], std: list[float],
                   batch_size: int = 500, bf16: bool = False) -> Tensor:
    """Predicted labels of uint8 RGB [N, H, W, 3] images (inputs normalized by mean/std)."""
    classifier.eval()
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    preds = []
    for i in range(0, len(rgb), batch_size):
        x = (rgb[i : i + batch_size].permute(0, 3, 1, 2).float() / 255.0 - m) / s
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            preds.append(classifier(x).float().argmax(1))
    return torch.cat(preds)


def _summary(out: Tensor, truth: Tensor) -> dict:
    mse = mse_per_image(out, truth)
    return {"psnr": float(psnr_from_mse(mse).mean()), "psnr_from_mean_mse": float(psnr_from_mse(mse.mean())),
            "ssim": float(ssim(out, truth).mean()), "colorfulness": float(colorfulness(out).mean())}


def evaluate_colorizer(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    norm: Normalization = DEFAULT_NORMALIZATION,
    classifier: nn.Module | None = None,
    classifier_input: tuple[list[float], list[float]] | None = None,
    batch_size: int = 250,
    bf16: bool = False,
    gray: str = "pillow",
) -> dict:
    """Metrics of ``model`` and of the gray baseline on uint8 RGB ``images`` [N, H, W, 3].

    ``gray``: how the input gray is made from each original (``colorize.training.gray``; default Pillow's ``convert("L")``,
    what users have); the gray baseline is that same gray image.

    Returns:
        ``{"n": N, "model": {...}, "gray": {...}, "truth": {"colorfulness": ...},
        "classifier": {...} (when given), "seconds": ...}``; each of ``model``/``gray`` has
        psnr, psnr_from_mean_mse, ssim, colorfulness, colorfulness_ratio (and accuracy).
    """
    t0 = time.perf_counter()
    truth = torch.from_numpy(np.ascontiguousarray(images))
    if truth.dtype != torch.uint8 or truth.dim() != 4 or truth.shape[-1] != 3:
        raise ValueError(f"images must be uint8 [N, H, W, 3], got {truth.dtype} {list(truth.shape)}")
    from colorize.training.gray import gray_images

    method = gray
    out = colorize_uint8(model, truth, norm, batch_size, bf16, gray=method)
    gray = gray_images(truth, method, norm)
    truth_cf = float(colorfulness(truth).mean())
    res = {"n": len(truth), "gray_input": method, "model": _summary(out, truth), "gray": _summary(gray, truth),
           "truth": {"colorfulness": truth_cf}}
    for k in ("model", "gray"):
        res[k]["colorfulness_ratio"] = res[k]["colorfulness"] / truth_cf if truth_cf > 0 else math.nan
    if classifier is not None and labels is not None:
        mean, std = classifier_input or ([0.0] * 3, [1.0] * 3)
        y = torch.from_numpy(np.asarray(labels))
        acc = {name: 100.0 * float((classify_uint8(classifier, x, mean, std, 2 * batch_size, bf16) == y).double().mean())
               for name, x in (("truth", truth), ("gray", gray), ("model", out))}
        res["truth"]["accuracy"] = acc["truth"]
        res["gray"]["accuracy"] = acc["gray"]
        res["model"]["accuracy"] = acc["model"]
        res["classifier"] = {"gap_recovered": gap_recovered(acc["model"], acc["gray"], acc["truth"])}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def sample_grid(model: nn.Module, images: np.ndarray, path, *, norm: Normalization = DEFAULT_NORMALIZATION,
                scale: int = 3, columns: int = 2, gray: str = "pillow") -> None:
    """Write a PNG grid of ``gray | ours | truth`` triplets (upscaled ``scale``x, nearest) atomically."""
    from PIL import Image

    truth = torch.from_numpy(np.ascontiguousarray(images))
    from colorize.training.gray import gray_images

    out = colorize_uint8(model, truth, norm, gray=gray)
    gray = gray_images(truth, gray, norm)
    n, h, w, _ = truth.shape
    rows = math.ceil(n / columns)
    gap = 4
    cell_w = 3 * w + 2 * 1
    canvas = np.full((rows * (h + gap) - gap, columns * (cell_w + 3 * gap) - 3 * gap, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        y0, x0 = r * (h + gap), c * (cell_w + 3 * gap)
        for j, src in enumerate((gray, out, truth)):
            canvas[y0 : y0 + h, x0 + j * (w + 1) : x0 + j * (w + 1) + w] = src[i].numpy()
    im = Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
    with atomic_path(path, suffix=".png") as tmp:
        im.save(tmp)


def format_table(res: dict) -> str:
    """The metrics as a text table, the gray baseline beside each figure."""
    rows = [("PSNR, per-image mean (dB)", "psnr", "{:.2f}"), ("PSNR of mean MSE (dB)", "psnr_from_mean_mse", "{:.2f}"),
            ("SSIM", "ssim", "{:.4f}"), ("colorfulness", "colorfulness", "{:.2f}"),
            ("colorfulness ratio", "colorfulness_ratio", "{:.3f}")]
    if "accuracy" in res["model"]:
        rows.append(("classifier accuracy (%)", "accuracy", "{:.2f}"))
    lines = [f"{'metric':<28}{'model':>10}{'gray':>10}{'truth':>10}"]
    for label, key, fmt in rows:
        t = res["truth"].get(key)
        lines.append(f"{label:<28}{fmt.format(res['model'][key]):>10}{fmt.format(res['gray'][key]):>10}"
                     f"{(fmt.format(t) if t is not None else '-'):>10}")
    if "classifier" in res:
        lines.append(f"{'gap recovered':<28}{res['classifier']['gap_recovered']:>10.3f}{0.0:>10.3f}{1.0:>10.3f}")
    lines.append(f"({res['n']} images, {res['seconds']} s)")
    return "\n".join(lines)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
