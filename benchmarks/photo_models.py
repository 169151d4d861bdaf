"""Photo colorizers side by side in one run: ``colorize images`` speed on real gray photos, and FLOPs.

    python benchmarks/photo_models.py --models resnet18-unet-photos,runs/photo-lite/model.json

For each model (shipped name, checkpoint .json or .onnx) it loads ``colorize.Colorizer`` with the backend and
precision asked for (default ``auto``, what ``colorize images`` picks) and times the ``colorize images`` pipeline
(decode, luminance, resize, batched inference, ab upsampling, merge, JPEG encode, atomic write) on the same
folder: the first ``--n`` photos of ``../shared/data/photos/BSDS500/val`` (481x321), made gray with Pillow's
``convert("L")`` and saved as JPEG (q 90). The best of ``--repeat`` runs is kept. FLOPs per 256x256 image are
counted by ``colorize.benchmarks.flops``. Pause other CPU work while it runs: this is a speed figure.

Beside the in-process figure, each model runs as a user runs it: ``python -m colorize images FOLDER -o OUT`` in a
new process, start-up (imports, model load from the artifact cache) included, best of ``--repeat``; and the I/O
floor of the same folder is measured in the same run (``colorize.benchmarks.io_floor``: Pillow decode, RGB, JPEG
encode, atomic write, on ``--jobs`` threads), in process and as a command. ``of floor`` is the ``colorize images``
command's images/s over the floor command's, both with their start-up.

Writes ``--out`` .json and .md (default ``results/photo_models``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from colorize.benchmarks.folder_speed import end_to_end  # noqa: E402
from colorize.benchmarks.io_floor import command_floor, command_rate, floor  # noqa: E402
from colorize.benchmarks.machine import describe_machine, machine_summary  # noqa: E402
from colorize.colorizer import DEFAULT_WORKING_SIZE, Colorizer  # noqa: E402

PHOTOS = REPO.parent / "shared" / "data" / "photos" / "BSDS500" / "val"


def make_gray_folder(folder: Path, n: int) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    paths = sorted(PHOTOS.glob("*.jpg"))[:n]
    if not paths:
        raise FileNotFoundError(f"no photos in {PHOTOS}")
    for p in paths:
        Image.open(p).convert("L").save(folder / p.name, quality=90)
    return len(paths)


def colorize_command_rate(model: str, folder: Path, out: Path, backend: str, precision: str, working_size: int,
                          batch_size: int, jobs: int, repeat: int) -> tuple[float, float]:
    """(best images/s, its seconds) of ``python -m colorize images`` on ``folder`` in a new process."""
    cmd = [sys.executable, "-m", "colorize", "images", str(folder), "-o", str(out), "--model", model,
           "--backend", backend, "--precision", precision, "--working-size", str(working_size),
           "--batch-size", str(batch_size), "--jobs", str(jobs), "--quality", "95"]
    return command_rate(cmd, folder, repeat, before=lambda: shutil.rmtree(out, ignore_errors=True), cwd=REPO)


def measure(model: str, folder: Path, out: Path, backend: str, precision: str, working_size: int,
            batch_size: int, jobs: int, repeat: int) -> dict:
    from colorize.benchmarks.flops import gflop_per_image

    t = time.perf_counter()
    col = Colorizer.load(model, backend, precision, working_size=working_size)
    load_s = time.perf_counter() - t
    with col:
        rates = [end_to_end(col, folder, out / f"r{i}", batch_size, jobs) for i in range(repeat)]
        ref = col.engine.model
        try:
            gflop = gflop_per_image(ref, 256, 256)
        except Exception as e:  # noqa: BLE001 - a count is a nicety, the speed is the figure
            print(f"{model}: no FLOP count ({e})", file=sys.stderr)
            gflop = None
    cmd_img_s, cmd_s = colorize_command_rate(model, folder, out / "cmd", backend, precision, working_size, batch_size, jobs,
                                             repeat)
    return {"model": model, "name": ref.name, "arch": ref.arch, "sha256": ref.sha256, "backend": col.engine.backend,
            "precision": col.engine.precision, "working_size": working_size,
            "min_working_size": col.min_working_size, "gflop_256": gflop, "load_s": round(load_s, 1),
            "img_s": round(max(rates), 2), "img_s_runs": [round(r, 2) for r in rates],
            "command_img_s": round(cmd_img_s, 2), "command_s": round(cmd_s, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True, help="comma list of models (names, .json or .onnx paths)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--working-size", type=int, default=DEFAULT_WORKING_SIZE)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "results" / "photo_models"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "gray"
        n = make_gray_folder(folder, args.n)
        floor_img_s = floor(sorted(folder.iterdir()), Path(tmp) / "floor", args.jobs, 95, max(3, args.repeat))
        floor_cmd_img_s, floor_cmd_s = command_floor(folder, Path(tmp) / "floor-cmd", args.jobs, 95,
                                                     max(3, args.repeat))
        for m in args.models.split(","):
            rows.append(measure(m, folder, Path(tmp) / f"out{len(rows)}", args.backend, args.precision,
                                args.working_size, args.batch_size, args.jobs, args.repeat))
            print(json.dumps(rows[-1]), file=sys.stderr)
    base = rows[0]["img_s"]
    for r in rows:
        r["speedup_vs_first"] = round(r["img_s"] / base, 2)
        r["of_floor"] = round(r["command_img_s"] / floor_cmd_img_s, 3)
    res = {"command": "python benchmarks/photo_models.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
           "folder": f"{n} photos of BSDS500/val, Pillow convert('L'), JPEG q90 in, JPEG out",
           "machine": describe_machine(with_gpu=False), "floor_img_s": round(floor_img_s, 1),
           "floor_command_img_s": round(floor_cmd_img_s, 1), "floor_command_s": round(floor_cmd_s, 2), "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    lines = [f"`{res['command']}` on {machine_summary(res['machine'])}; {res['folder']}. I/O floor (Pillow decode, "
             f"RGB, JPEG encode, atomic write, {args.jobs} threads): {floor_img_s:.1f} img/s in process, "
             f"{floor_cmd_img_s:.1f} img/s as a command ({floor_cmd_s:.2f} s, start-up included); `of floor` "
             "compares the two commands.", "",
             "| model | arch | backend/precision | GFLOP (256x256) | img/s | vs first | `colorize images` img/s, "
             "start-up included | of floor |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        g = f"{r['gflop_256']:.1f}" if r["gflop_256"] else "?"
        lines.append(f"| {r['name']} | {r['arch']} | {r['backend']}/{r['precision']} | {g} | {r['img_s']:.1f} | "
                     f"{r['speedup_vs_first']:.2f}x | {r['command_img_s']:.1f} ({r['command_s']:.1f} s) | {r['of_floor']:.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
