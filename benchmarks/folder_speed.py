"""Folder speed: end-to-end ``colorize images`` vs the model alone vs a naive one-image-at-a-time loop.

    python benchmarks/folder_speed.py                    # 1,000 CIFAR-size PNGs + 100 1920x1080 JPEGs
    python benchmarks/folder_speed.py --quick            # 200 + 12, for a smoke run
    python benchmarks/folder_speed.py --sweep            # working-size sweep: colour ceiling and model speed

Folders are generated under a temporary directory at run time (nothing is committed): CIFAR-10 test images
(grayscale PNGs, 32x32; synthetic when the dataset is absent) and 1920x1080 grayscale JPEGs made from
``../shared/data/photos`` (cover-resized; synthetic when absent). For each folder and backend it measures

* **end-to-end**: the ``colorize images`` pipeline (``colorize.cli.images``) after the model is loaded:
  decode, luminance, resize, batched inference, ab upsampling, merge, encode, atomic write;
* **model only**: ``Engine.run`` on random L of the same working shape and batch size;
* **naive**: what the original notebook, DeOldify and DDColor do: per image open, convert to RGB, float64 Lab
  at full resolution, resize L to the working size, eager PyTorch FP32 at batch 1, upsample ab, float64
  Lab -> RGB at full resolution, save (on a subset; the rate is what is compared);
* a per-stage profile of one 1080p image on both paths (where the time goes).

Writes ``results/folder_speed_cpu.md`` and ``.json``. Pause other CPU work while it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from colorize.job.plan import collect_tasks  # noqa: E402
from colorize.job.runner import TaskRunner, choose_merge  # noqa: E402
from colorize.colorizer import DEFAULT_WORKING_SIZE, Colorizer  # noqa: E402
from colorize.image.resize import working_shape  # noqa: E402

PHOTOS = REPO.parent / "shared" / "data" / "photos"


# -- data ----------------------------------------------------------------------------------------------------------


def make_cifar_folder(folder: Path, n: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        from colorize.data.cifar10 import load_cifar10

        images, _ = load_cifar10("test")
        source = "CIFAR-10 test images, grayscale"
    except Exception as e:  # dataset absent: synthetic textures of the same size
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        source = f"synthetic 32x32 (CIFAR-10 unavailable: {e})"
    for i in range(n):
        Image.fromarray(images[i % len(images)]).convert("L").save(folder / f"{i:04d}.png")
    return source


def make_hd_folder(folder: Path, n: int, size=(1920, 1080)) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted(p for p in PHOTOS.rglob("*") if p.suffix.lower() in (".jpg", ".png", ".tif"))
    for i in range(n):
        if photos:
            im = Image.open(photos[(i * 7) % len(photos)]).convert("L")
            s = max(size[0] / im.width, size[1] / im.height)  # cover, then centre-crop
            im = im.resize((round(im.width * s), round(im.height * s)), Image.BICUBIC)
            l, t = (im.width - size[0]) // 2, (im.height - size[1]) // 2
            im = im.crop((l, t, l + size[0], t + size[1]))
        else:
            im = Image.fromarray(np.random.default_rng(i).integers(0, 256, size[::-1], dtype=np.uint8))
        im.save(folder / f"{i:03d}.jpg", quality=90)
    return f"{len(photos)} photos from ../shared/data/photos, gray, cover-resized" if photos else "synthetic noise"


# -- measurements --------------------------------------------------------------------------------------------------


def end_to_end(col: Colorizer, folder: Path, out: Path, batch_size: int, jobs: int) -> float:
    """images/s of the ``colorize images`` pipeline on ``folder`` (model already loaded), with the merge that
    ``colorize images`` chooses for a job of that size (``colorize.job.runner.choose_merge``)."""
    args = argparse.Namespace(batch_size=batch_size, jobs=jobs, quality=95, report=None)
    tasks = collect_tasks([str(folder)], out, False, None)
    choose_merge(len(tasks))
    run = TaskRunner(col, args)
    t = time.perf_counter()
    run.run(tasks)
    dt = time.perf_counter() - t
    if run.errors:
        raise RuntimeError(f"end-to-end run failed on {len(run.errors)} files: {run.errors[:3]}")
    return len(tasks) / dt


def model_only(col: Colorizer, shape: tuple[int, int], batch_size: int, n: int) -> float:
    l = np.random.default_rng(0).uniform(-1, 1, (batch_size, 1, *shape)).astype(np.float32)
    col.engine.run(l)  # warm-up
    batches = max(1, -(-n // batch_size))
    t = time.perf_counter()
    for _ in range(batches):
        col.engine.run(l)
    return batches * batch_size / (time.perf_counter() - t)


class Naive:
    """The usual colorization script: one image at a time, float64 Lab at full size, eager PyTorch."""

    def __init__(self, model: str, working_size: int):
        import torch

        from colorize.artifacts.model_ref import resolve_model
        from colorize.backends.torch_backend import build_torch_model

        self.torch = torch
        self.ref = resolve_model(model)
        self.net = build_torch_model(self.ref).eval()
        self.working_size = working_size
        self.stages: dict[str, float] = {}

    def _t(self, name: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.stages[name] = self.stages.get(name, 0.0) + t1 - t0
        return t1

    def colorize_file(self, src: Path, dst: Path) -> None:
        from colorize.image.color import lab_to_rgb, rgb_to_lab
        from colorize.image.padding import pad_nchw

        norm = self.ref.normalization
        t = time.perf_counter()
        rgb = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64) / 255.0
        t = self._t("decode", t)
        lab = rgb_to_lab(rgb)
        t = self._t("rgb->lab (float64, full res)", t)
        h, w = lab.shape[:2]
        wh, ww = working_shape(h, w, self.working_size, 8)
        L = np.asarray(Image.fromarray(lab[..., 0].astype(np.float32)).resize((ww, wh), Image.BILINEAR))
        t = self._t("resize L", t)
        x = self.torch.from_numpy(pad_nchw(norm.normalize_l(L)[None, None].astype(np.float32), 8))
        with self.torch.no_grad():
            ab = self.net(x)[0, :, :wh, :ww].numpy() * norm.ab_scale
        t = self._t("model (eager fp32, batch 1)", t)
        ab = np.stack([np.asarray(Image.fromarray(c).resize((w, h), Image.BILINEAR)) for c in ab], -1)
        t = self._t("upsample ab", t)
        out = lab_to_rgb(np.concatenate([lab[..., :1], ab], -1))
        out = (out * 255 + 0.5).astype(np.uint8)
        t = self._t("lab->rgb (float64, full res)", t)
        Image.fromarray(out).save(dst)
        self._t("encode + write", t)

    def run(self, files: list[Path], out: Path) -> float:
        out.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        for f in files:
            self.colorize_file(f, out / f.name)
        return len(files) / (time.perf_counter() - t)


def profile_fast(col: Colorizer, path: Path, out: Path, repeat: int = 3) -> dict[str, float]:
    """ms per stage of the fast path on one image (single thread of work, no overlap)."""
    from colorize.image.io import load_image, save_image
    from colorize.image.merge import compose, lightness
    from colorize.image.resize import resize_plane

    st: dict[str, float] = {}

    def tick(name, t0):
        t1 = time.perf_counter()
        st[name] = st.get(name, 0.0) + (t1 - t0) * 1000 / repeat
        return t1

    for _ in range(repeat):
        t = time.perf_counter()
        d = load_image(path)
        t = tick("decode", t)
        L = lightness(d.pixels)
        t = tick("luminance (LUT, full res)", t)
        key = working_shape(*d.size, col.working_size, col.engine.stride)
        l = col.engine.normalization.normalize_l(resize_plane(L, key))[None, None].astype(np.float32)
        t = tick("resize L", t)
        ab = col.engine.run(l)[0]
        t = tick("model (batch 1)", t)
        rgb = compose(d.pixels, ab, ab_scale=col.engine.normalization.ab_scale)
        t = tick("upsample ab + merge -> sRGB uint8 (float32, row bands)", t)
        save_image(Image.fromarray(rgb), out / path.name)
        tick("encode + write", t)
    return st


# -- report --------------------------------------------------------------------------------------------------------


def sweep(col: Colorizer, sizes: list[int], n_photos: int) -> list[dict]:
    """Working-size sweep: the colour ceiling (true ab through working size and back) and model speed at 1080p."""
    from colorize.image.color import rgb_to_lab
    from colorize.image.merge import compose
    from colorize.image.resize import resize_plane

    photos = sorted(PHOTOS.glob("Sun_Hays80/*.jpg"))[:n_photos]
    rows = []
    for ws in sizes:
        de = []
        for p in photos:
            rgb = np.asarray(Image.open(p).convert("RGB"))
            lab = rgb_to_lab(rgb / 255.0)
            h, w = rgb.shape[:2]
            key = working_shape(h, w, ws, col.engine.stride)
            ab = np.stack([resize_plane(resize_plane(lab[..., c].astype(np.float32), key), (h, w)) for c in (1, 2)])
            back = rgb_to_lab(compose(rgb, ab) / 255.0)
            de.append(float(np.sqrt(((back - lab) ** 2).sum(-1)).mean()))
        shape = working_shape(1080, 1920, ws, col.engine.stride)
        rows.append({"working_size": ws, "shape_1080p": shape, "mean_dE76_ceiling": float(np.mean(de)),
                     "model_img_s_1080p": model_only(col, shape, 4, 8)})
        print(rows[-1], file=sys.stderr)
    return rows


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} logical CPUs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--backends", default="torch:fp32,auto:auto", help="comma list of backend:precision")
    ap.add_argument("--working-size", type=int, default=DEFAULT_WORKING_SIZE)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="end-to-end runs per folder (best kept; one if slow)")
    ap.add_argument("--naive-n", type=int, default=None, help="images per folder for the naive loop")
    ap.add_argument("--sweep", action="store_true", help="only the working-size sweep")
    ap.add_argument("--out", default=str(REPO / "results" / "folder_speed_cpu"))
    args = ap.parse_args()
    n_small, n_hd = (200, 12) if args.quick else (1000, 100)
    naive_n = args.naive_n or (max(20, n_small // 10), max(4, n_hd // 10))
    naive_n = naive_n if isinstance(naive_n, tuple) else (naive_n, naive_n)
    command = "python " + " ".join(shlex.quote(a) for a in [str(Path(__file__).relative_to(REPO)), *sys.argv[1:]])
    results: dict = {"command": command, "out": args.out, "machine": _machine(), "loadavg_start": os.getloadavg(),
                     "working_size": args.working_size, "batch_size": args.batch_size, "jobs": args.jobs, "runs": []}

    if args.sweep:
        col = Colorizer.load(backend="auto", working_size=args.working_size)
        results["sweep"] = sweep(col, [64, 128, 192, 256, 384, 512], 20)
        results["sweep_backend"] = f"{col.engine.backend}/{col.engine.precision}"
        Path(args.out + ".sweep.json").write_text(json.dumps(results, indent=1))
        return 0

    with tempfile.TemporaryDirectory(prefix="folder_speed_") as tmp:
        tmp = Path(tmp)
        src = {"cifar": make_cifar_folder(tmp / "cifar", n_small), "hd": make_hd_folder(tmp / "hd", n_hd)}
        results["folders"] = {"cifar": f"{n_small} PNGs 32x32 ({src['cifar']})",
                              "hd": f"{n_hd} JPEGs 1920x1080 q90 ({src['hd']})"}
        naive = Naive("resnet18-unet", args.working_size)
        for spec in args.backends.split(","):
            backend, precision = spec.split(":")
            col = Colorizer.load(backend=backend, precision=precision, working_size=args.working_size)
            for name, shape, n_naive in (("cifar", (32, 32), naive_n[0]),
                                         ("hd", working_shape(1080, 1920, args.working_size, col.engine.stride),
                                          naive_n[1])):
                folder = tmp / name
                # best of repeats, model-only measured before and after: the machine is shared and noisy
                mo = model_only(col, shape, args.batch_size, 256 if name == "cifar" else 16)
                e2e, t0 = 0.0, time.perf_counter()
                for i in range(args.repeat):
                    e2e = max(e2e, end_to_end(col, folder, tmp / f"out_{name}_{backend}_{i}", args.batch_size,
                                              args.jobs))
                    if time.perf_counter() - t0 > 90:
                        break
                mo = max(mo, model_only(col, shape, args.batch_size, 256 if name == "cifar" else 16))
                key = f"naive_{name}"
                if key not in results:
                    files = sorted(folder.iterdir())[:n_naive]
                    naive.run(files[:1], tmp / "naive_warm")
                    naive.stages.clear()
                    results[key] = {"img_s": naive.run(files, tmp / f"naive_{name}"), "n": len(files),
                                    "stages_ms": {k: v * 1000 / len(files) for k, v in naive.stages.items()}}
                row = {"folder": name, "backend": f"{col.engine.backend}/{col.engine.precision}",
                       "working_shape": list(shape), "e2e_img_s": e2e, "model_img_s": mo,
                       "e2e_over_model": e2e / mo, "e2e_over_naive": e2e / results[key]["img_s"]}
                results["runs"].append(row)
                print(row, file=sys.stderr)
            results.setdefault("profile_fast_1080p_ms", {})[f"{col.engine.backend}/{col.engine.precision}"] = \
                profile_fast(col, sorted((tmp / "hd").iterdir())[0], tmp)
            col.close()
    results["loadavg_end"] = os.getloadavg()
    Path(args.out + ".json").write_text(json.dumps(results, indent=1))
    Path(args.out + ".md").write_text(render(results))
    print(render(results))
    return 0


def render(r: dict) -> str:
    lines = [f"# Folder speed (CPU)\n\nCommand: `{r['command']}`  \nMachine: {r['machine']}; working size "
             f"{r['working_size']}, batch size {r['batch_size']}, {r['jobs']} I/O workers. Rates are the best of "
             "the repeated runs (end-to-end: up to `--repeat`; model-only: before and after). Load average (1 min) "
             f"at start / end: {r['loadavg_start'][0]:.1f} / {r['loadavg_end'][0]:.1f} (a shared machine).\n"]
    for k, v in r["folders"].items():
        lines.append(f"* `{k}`: {v}")
    lines += ["", "| folder | backend | working shape | end-to-end img/s | model-only img/s | e2e / model "
              "| naive img/s | e2e / naive |", "|---|---|---|---|---|---|---|---|"]
    for row in r["runs"]:
        nv = r[f"naive_{row['folder']}"]
        lines.append(f"| {row['folder']} | {row['backend']} | {row['working_shape'][0]}x{row['working_shape'][1]} "
                     f"| {row['e2e_img_s']:.1f} | {row['model_img_s']:.1f} | {row['e2e_over_model']:.0%} "
                     f"| {nv['img_s']:.2f} (n={nv['n']}) | {row['e2e_over_naive']:.1f}x |")
    lines += ["", "Per-stage time for one 1920x1080 JPEG (ms):", "",
              "| naive stage | ms | | fast stage | " + " | ".join(r["profile_fast_1080p_ms"]) + " |",
              "|---|---|---|---|" + "---|" * len(r["profile_fast_1080p_ms"])]
    naive = list(r["naive_hd"]["stages_ms"].items())
    fast_keys = list(next(iter(r["profile_fast_1080p_ms"].values())))
    for i in range(max(len(naive), len(fast_keys))):
        a = naive[i] if i < len(naive) else ("", None)
        b = fast_keys[i] if i < len(fast_keys) else ""
        vals = " | ".join(f"{p[b]:.1f}" if b else "" for p in r["profile_fast_1080p_ms"].values())
        lines.append(f"| {a[0]} | {'' if a[1] is None else f'{a[1]:.1f}'} | | {b} | {vals} |")
    sweep_file = Path(r["out"] + ".sweep.json") if r.get("out") else None
    if sweep_file and sweep_file.is_file():
        sw = json.loads(sweep_file.read_text())
        lines += ["", f"Working-size sweep (`{sw['command']}`, model speed with {sw['sweep_backend']}): colour "
                  "ceiling = mean CIE76 ΔE between 20 Sun_Hays80 photos (1024 px long side) and the same photos "
                  "with their true ab taken to the working size and back (the best any model can do there); "
                  "model speed at the 1080p working shape, batch 4.", "",
                  "| working size | 1080p working shape | ΔE ceiling | model img/s (1080p) |", "|---|---|---|---|"]
        for row in sw["sweep"]:
            lines.append(f"| {row['working_size']} | {row['shape_1080p'][0]}x{row['shape_1080p'][1]} "
                         f"| {row['mean_dE76_ceiling']:.2f} | {row['model_img_s_1080p']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
