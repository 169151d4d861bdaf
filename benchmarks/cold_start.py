"""Cold start: how long a user waits for a small job, as separate processes, on this machine.

    python -m colorize.benchmarks.cold_start [--repeat 3] [--out results/cold_start]

Each figure is the wall time of a fresh ``python -m colorize ...`` process (start, imports, model load, the
work, exit), on the default model and backend (``auto``):

* ``one_photo``: ``colorize images PHOTO -o OUT`` on one photo (the first of BSDS500 val when
  ``../shared/data/photos`` is here, else ``examples/astronaut.jpg``), artifact cache already built;
* ``samples_first``: ``colorize images examples -o OUT`` (the 4 bundled samples) on a fresh, empty
  ``COLORIZE_CACHE``: everything a first run builds (quality-guard verdicts, OpenVINO's compiled-model cache);
* ``samples_after``: the same command again on that cache;
* ``serve_ready``: ``colorize serve`` on a loopback port, from the process start to the first 200 of /readyz
  (after one uncounted start, which builds what only serve needs: the small-image model's guard verdict).

Python writes its ``.pyc`` files as in an installed package (``PYTHONDONTWRITEBYTECODE`` is dropped from the
children's environment; one uncounted run writes them). Each ``colorize images`` figure also has the process's
CPU time (user + system), which other processes on a busy machine disturb much less than its wall time.

``stages`` times the first image's path inside one process (cache built): imports, ``Colorizer.load``,
``prepare``, the first ``run`` (first shape), ``finish`` and the write. Medians of ``--repeat`` runs (each
``samples_first`` run on its own new cache). No test asserts these times: the targets are for this report.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from colorize.benchmarks.machine import describe_machine, load_average, machine_summary
from colorize.benchmarks.report import write_text

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "examples"
BSDS_VAL = REPO.parent / "shared" / "data" / "photos" / "BSDS500" / "val"
#: The issue's targets, seconds.
TARGETS = {"one_photo": 1.2, "samples_first": 2.0, "samples_after": 1.5, "serve_ready": 3.0}
LABELS = {
    "one_photo": "one photo, `colorize images` (cache built)",
    "samples_first": "4 samples, `colorize images examples`, fresh cache",
    "samples_after": "4 samples again, same cache",
    "serve_ready": "`colorize serve` to /readyz 200 (cache built)",
}

_STAGES = r"""
import json, sys, time
t0 = time.perf_counter(); marks = {}
def mark(name):
    global t0
    t = time.perf_counter(); marks[name] = round(t - t0, 4); t0 = t
from colorize.colorizer import Colorizer
mark("import colorize.colorizer")
col = Colorizer.load()
mark("Colorizer.load")
p = col.prepare(sys.argv[1])
mark("prepare (decode, L, resize)")
ab = col.run([p])
mark("first run (first shape)")
ab = col.run([p])
mark("second run (same shape)")
out = col.finish(p, ab[0])
mark("finish (merge)")
out.save(sys.argv[2], quality=95)
mark("write")
marks["engine"] = f"{col.engine.backend}/{col.engine.precision}"
print(json.dumps(marks))
"""


def _photo() -> Path:
    photos = sorted(BSDS_VAL.glob("*.jpg")) if BSDS_VAL.is_dir() else []
    return photos[0] if photos else SAMPLES / "astronaut.jpg"


def _env(cache: Path) -> dict:
    env = dict(os.environ, COLORIZE_CACHE=str(cache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its .pyc files: let the first run write them
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _timed(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """(wall s, CPU s of the process, its last stderr line)."""
    cpu, t = _children_cpu(), time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=600)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-2000:]}")
    return wall, _children_cpu() - cpu, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""


def _images(inputs: list[str], out: Path, env: dict) -> tuple[float, float, str]:
    return _timed([sys.executable, "-m", "colorize", "images", *inputs, "-o", str(out), "-q"], env)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_ready(env: dict, timeout: float = 120.0) -> float:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/readyz"
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "colorize", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "warning"], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        while time.perf_counter() - t < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"colorize serve exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - t
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"colorize serve was not ready after {timeout:.0f} s")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(repeat: int) -> dict:
    photo = _photo()
    samples = [str(SAMPLES)]
    runs: dict[str, list[float]] = {k: [] for k in TARGETS}
    cpu: dict[str, list[float]] = {k: [] for k in TARGETS if k != "serve_ready"}
    lines: dict[str, str] = {}

    def images(key: str, inputs: list[str], out: Path, env: dict) -> None:
        wall, used, lines[key] = _images(inputs, out, env)
        runs[key].append(wall)
        cpu[key].append(used)

    with tempfile.TemporaryDirectory(prefix="colorize-cold-") as tmp:
        tmp = Path(tmp)
        _images([str(photo)], tmp / "pyc", _env(tmp / "pyc-cache"))  # writes the .pyc files; not counted
        for i in range(repeat):
            images("samples_first", samples, tmp / f"first{i}", _env(tmp / f"cache{i}"))  # a fresh, empty cache
        env = _env(tmp / "cache0")  # built by the first run
        serve_first = _serve_ready(env)  # builds what only serve needs (the small-image model's guard verdict)
        for i in range(repeat):
            images("samples_after", samples, tmp / f"after{i}", env)
            images("one_photo", [str(photo)], tmp / f"photo{i}", env)
            runs["serve_ready"].append(_serve_ready(env))
        stages = []
        for i in range(repeat):
            r = subprocess.run([sys.executable, "-c", _STAGES, str(photo), str(tmp / f"stage{i}.jpg")], env=env,
                               capture_output=True, text=True, cwd=REPO, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(f"stage timing failed:\n{r.stderr[-2000:]}")
            stages.append(json.loads(r.stdout.strip().splitlines()[-1]))
    stage_median = {k: round(statistics.median(s[k] for s in stages), 4) for k in stages[0] if k != "engine"}
    results = {}
    for k, v in runs.items():
        results[k] = {"median_s": round(statistics.median(v), 3), "runs_s": [round(x, 3) for x in v],
                      "target_s": TARGETS[k], "met": statistics.median(v) <= TARGETS[k]}
        if k in cpu:
            results[k]["cpu_median_s"] = round(statistics.median(cpu[k]), 3)
    return {
        "photo": str(photo.relative_to(REPO.parent) if photo.is_relative_to(REPO.parent) else photo),
        "results": results,
        "serve_ready_first_on_images_cache_s": round(serve_first, 3),
        "summary_lines": lines,
        "stages_s": stage_median,
        "engine": stages[0]["engine"],
    }


def to_markdown(report: dict, command: str) -> str:
    rows = ["| what | median wall s | runs s | CPU s (median) | target s | met |", "|---|---|---|---|---|---|"]
    for k, r in report["results"].items():
        used = f"{r['cpu_median_s']:.2f}" if "cpu_median_s" in r else "–"
        rows.append(f"| {LABELS[k]} | {r['median_s']:.2f} | {', '.join(f'{x:.2f}' for x in r['runs_s'])} | {used} "
                    f"| {r['target_s']} | {'yes' if r['met'] else 'no'} |")
    stages = ["| first image, in one process | median s |", "|---|---|"]
    stages += [f"| {k} | {v:.3f} |" for k, v in report["stages_s"].items()]
    return "\n".join([
        "# Cold start",
        "",
        f"Machine: {machine_summary(report['machine'])}.",
        f"Command: `{command}`; photo: `{report['photo']}`; engine: {report['engine']} (backend auto).",
        "",
        *rows,
        "",
        f"`colorize serve`'s first start on the cache `colorize images` built (it also builds the small-image "
        f"model's guard verdict, which a folder of photos never needs): {report['serve_ready_first_on_images_cache_s']:.2f} s.",
        "CPU s: user + system time of the process, less sensitive than wall time to other processes on the machine.",
        "",
        *stages,
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement (default 3)")
    ap.add_argument("--out", default=str(REPO / "results" / "cold_start"),
                    help="folder for <name>.json and <name>.md")
    ap.add_argument("--name", default="cpu", help="file name of the results (default: cpu)")
    args = ap.parse_args(argv)
    machine = describe_machine(with_gpu=False)
    report = measure(max(1, args.repeat))
    machine["load_avg_end"] = load_average()
    report["machine"] = machine
    command = f"python -m colorize.benchmarks.cold_start --repeat {args.repeat}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(json.dumps(report, indent=1) + "\n", out / f"{args.name}.json")
    md = to_markdown(report, command)
    write_text(md, out / f"{args.name}.md")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
