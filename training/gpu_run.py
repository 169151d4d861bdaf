"""Train the photo colorizer for a number of minutes on a data pack, evaluate it, and write the results to ``$OUT``.

Made for a lent GPU machine (its own ``python3``: torch, numpy, pillow, safetensors; nothing from onnx, onnxruntime,
openvino or matplotlib is imported, though a curve PNG is drawn when matplotlib happens to be there), and runs the
same on the CPU:

    python3 -m colorize.training.gpu_run --pack packs/photos-256 --minutes 9 --out "$OUT"

1. The photos and the pretrained encoder come from the pack (``colorize.training.pack``; checked against its manifest):
   ``$COLORIZE_PHOTOS`` and ``$COLORIZE_PRETRAINED`` are pointed at it.
2. Warm-up: a few steps on a copy of the starting weights measure the step rate (on CUDA after cuDNN has chosen its
   kernels); the starting weights are put back. The one-cycle schedule is sized to the steps that fit in
   ``--minutes`` at that rate, and re-spanned at each epoch end to the rate measured so far (``colorize.training.loop.fit``
   with a deadline). An epoch is sized to about ``--epoch-seconds`` of training (more crops per photo), so the
   per-epoch validation and checkpoint cost little.
3. The run's checkpoint (``model.{json,safetensors}``, fp16 as ``colorize.training.ship`` writes it: what comes back from
   the GPU machine is at most 16 MiB a file, and an fp32 efficientnet_lite0-unet is 18.7 MB), ``metrics.jsonl`` and
   the evaluation on the pack's
   ``eval`` split through ``colorize.Colorizer`` (torch backend, FP32, Pillow gray, as ``colorize evaluate --photos``:
   PSNR against the gray input, colourfulness ratio; ``samples.jpg``) go to ``--out``, with ``gpu_run.json``
   (img/s, crops seen, device name, schedule, evaluation) and the curve: ``curve.csv`` always, ``curve.png`` when
   matplotlib exists.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from colorize.fsutil import atomic_path, atomic_write_text
from colorize.training.config import arch_kwargs, decoder_widths


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python3 -m colorize.training.gpu_run", description=__doc__.split("\n\n")[0])
    p.add_argument("--pack", required=True, help="data pack folder (python -m colorize.training.pack)")
    p.add_argument("--minutes", type=float, required=True, help="training time budget (minutes, after the warm-up)")
    p.add_argument("--out", default=os.environ.get("OUT") or "runs/gpu-run", help="results folder (default $OUT)")
    p.add_argument("--device", default="auto", help="cpu | cuda | auto (default %(default)s)")
    p.add_argument("--arch", default="efficientnet_lite0-unet")
    p.add_argument("--encoder-init", default="imagenet", help="'imagenet' (the packed weights) or 'none'")
    p.add_argument("--encoder-lr-mult", type=float, default=0.3)
    p.add_argument("--refine-channels", type=int, default=32, help="convex refinement width (bins head, loss ce)")
    p.add_argument("--decoder-channels", type=decoder_widths, default=None, metavar="C1,C2,...",
                   help="U-Net decoder widths, deepest first (default: the arch's)")
    p.add_argument("--gamut", choices=("full", "srgb"), default="full",
                   help="bins head: srgb keeps only the bins an sRGB colour can reach (default %(default)s)")
    p.add_argument("--l1-weight", type=float, default=5.0)
    p.add_argument("--rebalance", type=float, default=0.5)
    p.add_argument("--rebalance-power", type=float, default=1.0)
    p.add_argument("--crop", type=int, default=160)
    p.add_argument("--working-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--pct-start", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=23)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="threads that cut each epoch's crops (default: up to 8)")
    p.add_argument("--epoch-seconds", type=float, default=60.0, help="size an epoch to about this much training")
    p.add_argument("--max-crops-per-image", type=int, default=32, help="cap on crops per photo and epoch (memory)")
    p.add_argument("--warmup-steps", type=int, default=15, help="steps timed in the warm-up (after 5 untimed)")
    p.add_argument("--eval-limit", type=int, default=0, help="evaluate on the first N eval photos (0 = all)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--keep-state", action="store_true",
                   help="train in --out/run: its state.pt and fp32 model stay (too large to come back from $OUT)")
    return p.parse_args(argv)


def _config(a: argparse.Namespace, run_dir: Path):
    from colorize.training.config import ColorizeConfig

    kw = arch_kwargs("bins", None, None, "convex", a.refine_channels, None if a.gamut == "full" else a.gamut,
                     a.decoder_channels)
    return ColorizeConfig(
        out=str(run_dir), arch=a.arch, arch_kwargs=kw,
        encoder_init=None if a.encoder_init == "none" else a.encoder_init, encoder_lr_mult=a.encoder_lr_mult,
        loss="ce", l1_weight=a.l1_weight, rebalance=a.rebalance, rebalance_power=a.rebalance_power,
        photos=str(a.pack), working_size=a.working_size, crop=a.crop, crops_per_image=4, batch_size=a.batch_size,
        lr=a.lr, pct_start=a.pct_start, seed=a.seed, limit_eval=127, device=a.device, workers=a.workers,
        threads=a.threads, epochs=10_000, save_every=0, log_every=20,
        command="python3 -m colorize.training.gpu_run " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
    )


def measure_step_rate(task, batch_size: int, crop: int, steps: int, untimed: int = 5) -> float:
    """Training steps per second of ``task`` on random batches; the model's weights and buffers are restored."""
    import torch

    device = task.device
    model = task.model
    snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer, _ = task.make_optimizer(100)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, crop, crop, 3), dtype=torch.uint8, generator=gen).to(device)
    labels = torch.zeros(batch_size, dtype=torch.int64, device=device)
    model.train()

    def step(i: int) -> None:
        loss, _ = task.train_step(images, labels, torch.Generator().manual_seed(i))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for i in range(untimed):
        step(i)
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        step(untimed + i)
    sync()
    rate = steps / (time.perf_counter() - t0)
    model.load_state_dict(snapshot)
    return rate


def write_curve(metrics_path: Path, out: Path) -> list[str]:
    """``out/curve.csv`` (step records: step, loss, lr, img/s; epoch records: validation PSNR) and, when matplotlib
    exists, ``out/curve.png``; returns the files written."""
    from colorize.training.records import read_jsonl

    records = read_jsonl(metrics_path)
    cols = ["kind", "epoch", "step", "loss", "lr", "img_per_s", "train_loss", "val_psnr", "val_psnr_gray"]
    with atomic_path(out / "curve.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
    written = ["curve.csv"]
    try:
        import matplotlib  # noqa: F401  (optional: absent on the GPU machine)
    except ImportError:
        return written
    from colorize.training.plots import plot_curves

    plot_curves(metrics_path, out / "curve.png")
    return written + ["curve.png"]


def evaluate_run(model_json: Path, pack: Path, working_size: int, limit: int, out: Path) -> dict:
    """The checkpoint on the pack's ``eval`` split through ``colorize.Colorizer`` (torch backend, FP32, Pillow gray),
    as ``colorize evaluate --photos`` does; ``out/samples.jpg`` is its gray | ours | truth grid."""
    from colorize import Colorizer
    from colorize.data.photos import photo_paths
    from colorize.training.photo_eval import evaluate_photos

    paths = photo_paths(pack, "eval")
    if limit:
        paths = paths[:limit]
    colorizer = Colorizer.load(str(model_json), "torch", "fp32", working_size=working_size, small_model=None)
    with colorizer:
        return evaluate_photos(colorizer, paths, colorizer.engine.model.normalization, grid=str(out / "samples.jpg"),
                               grid_count=6, gray="pillow")


def main(argv: list[str] | None = None) -> int:
    t_start = time.perf_counter()
    a = _args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    pack = Path(a.pack).resolve()
    from colorize.training.pack import PRETRAINED_DIR, verify

    try:
        manifest = verify(pack)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.environ["COLORIZE_PHOTOS"] = str(pack)
    if (pack / PRETRAINED_DIR).is_dir():
        os.environ.setdefault("COLORIZE_PRETRAINED", str(pack / PRETRAINED_DIR))

    import torch

    from colorize.training.colorize_train import build_colorizer_run
    from colorize.training.device import device_name
    from colorize.training.loop import fit

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    run_dir = out / "run" if a.keep_state else Path(tempfile.mkdtemp(prefix="gpu-run-"))
    cfg = _config(a, run_dir)
    try:
        task, source, labels = build_colorizer_run(cfg)
    except (FileNotFoundError, ValueError, ModuleNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t_setup = time.perf_counter()
    rate = measure_step_rate(task, cfg.batch_size, cfg.crop, a.warmup_steps)
    t_warm = time.perf_counter()
    n_photos = len(source.photos)
    source.per_image = max(1, min(a.max_crops_per_image,
                                  math.ceil(rate * cfg.batch_size * a.epoch_seconds / n_photos)))
    cfg.crops_per_image = source.per_image
    budget = a.minutes * 60.0
    schedule = max(20, int(rate * budget))
    print(f"{device_name(task.device)}: {rate:.2f} steps/s ({rate * cfg.batch_size:.0f} img/s) in the warm-up; "
          f"{source.per_image} crops per photo per epoch, schedule {schedule} steps in {a.minutes} min",
          file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    record = fit(cfg, task, source, labels, workers=a.workers, schedule_steps=schedule, deadline=t0 + budget)
    train_s = time.perf_counter() - t0
    steps = record.get("step", 0)
    from colorize.training.ship import ship

    ship(str(run_dir / "model.json"), str(out / "model"), name=f"{cfg.arch}-gpu-run")
    shutil.copyfile(run_dir / "metrics.jsonl", out / "metrics.jsonl")
    curve_files = write_curve(out / "metrics.jsonl", out)
    t_eval = time.perf_counter()
    evaluation = evaluate_run(out / "model.json", pack, cfg.working_size, a.eval_limit, out)
    result = {
        "device": device_name(task.device), "torch": torch.__version__, "cuda": torch.version.cuda,
        "minutes": a.minutes, "train_seconds": round(train_s, 1), "steps": steps, "schedule_steps": schedule,
        "batch_size": cfg.batch_size, "crop": cfg.crop, "crops_seen": steps * cfg.batch_size,
        "img_per_s": round(steps * cfg.batch_size / train_s, 1) if train_s > 0 else None,
        "img_per_s_warmup": round(rate * cfg.batch_size, 1), "crops_per_image": source.per_image,
        "epochs_run": record.get("epoch", 0) + (1 if record.get("complete") else 0),
        "last_epoch": record, "eval": evaluation, "eval_photos": "the pack's eval split (reduced, see pack)",
        "pack": {"reduced": manifest["reduced"], "total_bytes": manifest["total_bytes"]},
        "seconds": {"setup": round(t_setup - t_start, 1), "warmup": round(t_warm - t_setup, 1),
                    "train": round(train_s, 1), "eval": round(time.perf_counter() - t_eval, 1),
                    "total": round(time.perf_counter() - t_start, 1)},
        "files": ["model.json", "model.safetensors", "metrics.jsonl", "samples.jpg", *curve_files],
        "config": cfg.to_dict(),
    }
    atomic_write_text(out / "gpu_run.json", json.dumps(result, indent=1) + "\n")
    m, g = evaluation["model"], evaluation["gray"]
    print(f"{result['device']}: {steps} steps, {result['crops_seen']} crops, {result['img_per_s']} img/s; "
          f"eval PSNR {m['psnr']:.2f} dB (gray {g['psnr']:.2f}), colourfulness ratio {m['colorfulness_ratio']:.3f}"
          f" -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
