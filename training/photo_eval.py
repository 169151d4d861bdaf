"""Colorization quality on real photos, through the pipeline users run (``colorize evaluate --photos``).

Each photo of the ``eval`` split (``colorize.data.photos``) is colorized by
``colorize.Colorizer`` at full resolution, exactly as ``colorize images`` does it
(L reduced to the working size, ab predicted there, enlarged and merged with the
full-resolution L), and compared with the true colour photo. The input is the gray
a user would have (``colorize.training.gray``; default Pillow's ``convert("L")``), and the
gray baseline is that gray image itself (with ``lstar``: the colour photo's L* with ab = 0). Metrics are those of ``colorize.training.metrics`` computed per
photo at its own size: per-photo mean PSNR, PSNR of the mean MSE, SSIM,
colorfulness and its ratio to the ground truth's.
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np
import torch

from colorize.image.color import Normalization
from colorize.training.metrics import colorfulness, gray_baseline, mean_ab, mse_per_image, psnr_from_mse, ssim
from colorize.data.photos import split_folder

def _per_image(out: torch.Tensor, truth: torch.Tensor, truth_ab: torch.Tensor) -> dict:
    """``truth_ab``: ``mean_ab(truth)``, taken once per photo."""
    cast = (mean_ab(out) - truth_ab)[0]
    return {"mse": float(mse_per_image(out, truth)[0]), "ssim": float(ssim(out, truth)[0]),
            "colorfulness": float(colorfulness(out)[0]), "cast_a": float(cast[0]), "cast_b": float(cast[1])}


def _summary(rows: list[dict]) -> dict:
    """Means over ``rows``; ``cast_a``/``cast_b``: the mean signed cast (a*, b* of the output's mean colour less the
    original's), ``cast``: the mean size of each image's cast (its a*b* distance, Lab units)."""
    mse = torch.tensor([r["mse"] for r in rows], dtype=torch.float64)
    return {"psnr": float(psnr_from_mse(mse).mean()), "psnr_from_mean_mse": float(psnr_from_mse(mse.mean())),
            "ssim": float(np.mean([r["ssim"] for r in rows])),
            "colorfulness": float(np.mean([r["colorfulness"] for r in rows])),
            "cast_a": float(np.mean([r["cast_a"] for r in rows])), "cast_b": float(np.mean([r["cast_b"] for r in rows])),
            "cast": float(np.mean([math.hypot(r["cast_a"], r["cast_b"]) for r in rows]))}


def evaluate_photos(colorizer, paths: list[Path], norm: Normalization, *, grid: str | None = None,
                    grid_count: int = 6, grid_height: int = 160, gray: str = "pillow", per_image: bool = False) -> dict:
    """Metrics of ``colorizer`` (an ``colorize.Colorizer``) and of the gray baseline on ``paths`` (the ``eval``
    split from ``colorize.data.photos.photo_paths``; results are also given per folder of that split).

    Returns:
        ``{"n", "model": {...}, "gray": {...}, "truth": {"colorfulness"}, "per_folder": {...}, "seconds"}``
        with the same keys as ``colorize.training.evaluate.evaluate_colorizer`` (no classifier: photos have no labels).
    """
    from colorize.data.folder import load_rgb

    res = evaluate_arrays(colorizer, ((split_folder(p, "eval"), load_rgb(p)) for p in paths), len(paths), norm,
                          grid=grid, grid_count=grid_count, grid_height=grid_height, gray=gray, per_image=per_image)
    for row, p in zip(res.get("per_image", ()), paths):
        row["name"] = f"{row['group']}/{Path(p).name}"
    return res


def evaluate_arrays(colorizer, items, count: int, norm: Normalization, *, grid: str | None = None,
                    grid_count: int = 6, grid_height: int = 160, gray: str = "pillow", per_image: bool = False) -> dict:
    """``evaluate_photos`` over ``count`` (group, uint8 RGB [H, W, 3]) ``items`` (e.g. CIFAR-10 test images through
    the pipeline, one group).

    Besides the summaries, ``per_folder`` gives each group's PSNR (model, gray) and colourfulness ratio, and
    ``per_image`` one row per item in order: its group, PSNR of the model and of the gray input, colourfulness
    of the model and of the truth, the cast the model added (``cast_a``, ``cast_b``: its mean a*, b* less the
    original's) and the original's own mean a*, b* (``truth_a``, ``truth_b``).
    """
    from colorize.training.gray import check_method, gray_uint8

    check_method(gray)
    t0 = time.perf_counter()
    rows: dict[str, list[dict]] = {"model": [], "gray": [], "truth": []}
    folders: list[str] = []
    picks = set(np.linspace(0, count - 1, min(grid_count, count)).round().astype(int).tolist()) if grid else set()
    strips = []
    for i, (group, rgb) in enumerate(items):
        truth = torch.from_numpy(np.array(rgb))[None]  # a writable copy
        if gray == "lstar":
            out = torch.from_numpy(np.asarray(colorizer.colorize(rgb), dtype=np.uint8))[None]
            base = gray_baseline(truth, norm)
        else:
            g = gray_uint8(rgb, gray)
            out = torch.from_numpy(np.asarray(colorizer.colorize(g), dtype=np.uint8))[None]
            base = torch.from_numpy(np.repeat(g[..., None], 3, axis=-1))[None]
        truth_ab = mean_ab(truth)
        rows["model"].append(_per_image(out, truth, truth_ab))
        rows["gray"].append(_per_image(base, truth, truth_ab))
        rows["truth"].append({"colorfulness": float(colorfulness(truth)[0]), "mean_a": float(truth_ab[0, 0]),
                              "mean_b": float(truth_ab[0, 1])})
        folders.append(group)
        if i in picks:
            strips.append(_strip((base[0].numpy(), out[0].numpy(), rgb), grid_height))
    truth_cf = float(np.mean([r["colorfulness"] for r in rows["truth"]]))
    res = {"n": len(folders), "gray_input": gray, "model": _summary(rows["model"]), "gray": _summary(rows["gray"]),
           "truth": {"colorfulness": truth_cf}}
    for k in ("model", "gray"):
        res[k]["colorfulness_ratio"] = res[k]["colorfulness"] / truth_cf if truth_cf > 0 else math.nan
    res["per_folder"] = {}
    for f in sorted(set(folders)):
        idx = [i for i, g in enumerate(folders) if g == f]
        cf_truth = float(np.mean([rows["truth"][i]["colorfulness"] for i in idx]))
        cf_model = float(np.mean([rows["model"][i]["colorfulness"] for i in idx]))
        summary = {k: _summary([rows[k][i] for i in idx]) for k in ("model", "gray")}
        res["per_folder"][f] = {"n": len(idx), **{k: summary[k]["psnr"] for k in ("model", "gray")},
                                "colorfulness_ratio": cf_model / cf_truth if cf_truth > 0 else math.nan,
                                **{k: summary["model"][k] for k in ("cast_a", "cast_b", "cast")}}
    if per_image:
        psnr = {k: psnr_from_mse(torch.tensor([r["mse"] for r in rows[k]], dtype=torch.float64)).tolist()
                for k in ("model", "gray")}
        res["per_image"] = [{"group": folders[i], "psnr_model": psnr["model"][i], "psnr_gray": psnr["gray"][i],
                             "colorfulness_model": rows["model"][i]["colorfulness"],
                             "colorfulness_truth": rows["truth"][i]["colorfulness"],
                             "cast_a": rows["model"][i]["cast_a"], "cast_b": rows["model"][i]["cast_b"],
                             "truth_a": rows["truth"][i]["mean_a"], "truth_b": rows["truth"][i]["mean_b"]}
                            for i in range(len(folders))]
    if grid and strips:
        _write_grid(strips, grid)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def _strip(images: tuple[np.ndarray, ...], height: int) -> np.ndarray:
    from PIL import Image

    h, w = images[0].shape[:2]
    size = (max(1, round(w * height / h)), height)
    gap = np.full((height, 4, 3), 255, np.uint8)
    parts = []
    for im in images:
        parts += [np.asarray(Image.fromarray(im).resize(size, Image.BICUBIC, reducing_gap=2.0)), gap]
    return np.concatenate(parts[:-1], axis=1)


def _write_grid(strips: list[np.ndarray], path: str) -> None:
    """Stack ``gray | ours | truth`` strips (padded to one width) into one image, written atomically."""
    from PIL import Image

    from colorize.fsutil import atomic_write_bytes

    width = max(s.shape[1] for s in strips)
    rows = []
    for s in strips:
        pad = np.full((s.shape[0], width - s.shape[1], 3), 255, np.uint8)
        rows += [np.concatenate([s, pad], axis=1), np.full((6, width, 3), 255, np.uint8)]
    canvas = np.concatenate(rows[:-1], axis=0)
    buf = io.BytesIO()
    fmt = "JPEG" if str(path).lower().endswith((".jpg", ".jpeg")) else "PNG"
    Image.fromarray(canvas).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    atomic_write_bytes(path, buf.getvalue())


def contact_sheet(colorizer, paths: list[Path], path: str, gray: str = "pillow", height: int = 160) -> None:
    """``gray | ours | truth`` strips of ``paths`` (e.g. the worst photos of an evaluation), one per row."""
    from colorize.data.folder import load_rgb
    from colorize.training.gray import gray_uint8

    strips = []
    for p in paths:
        rgb = load_rgb(p)
        g = gray_uint8(rgb, gray)
        out = np.asarray(colorizer.colorize(g), dtype=np.uint8)
        strips.append(_strip((np.repeat(g[..., None], 3, axis=-1), out, rgb), height))
    _write_grid(strips, path)
