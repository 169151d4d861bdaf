"""Ray speed: ``colorize images --ray`` against the local ``colorize images`` on the same folder, in one run.

    python benchmarks/ray_speed.py                             # 100 BSDS500/val photos, gray JPEG; ~4 min here
    python benchmarks/ray_speed.py --n 12 --driver-files 2000  # a smoke run

Every ``colorize images`` run is a subprocess, as a user runs it, with the shipped default model and backend
``auto``, on the same folder (``../shared/data/photos/BSDS500/val`` converted to gray JPEG in a temporary
folder, synthetic noise where the photos are absent):

* **local**: ``colorize images IN -o OUT -q`` (run first and last: the spread is the machine's noise), and once
  more with numpy's OpenBLAS held to one thread, as every Ray actor is (``colorize.ray.pipeline.ACTOR_ENV``);
* **embedded**: ``--ray``, the embedded Ray instance on this machine;
* **cluster**: ``--ray ADDRESS``, a two-node cluster on this machine (``ray.cluster_utils.Cluster``, head plus
  one added node, 1 CPU each, loopback only): the same cores split in two nodes, so it shows the overhead of
  going through a cluster, not the gain of a second machine.

For each: img/s over the run (the summary's own figure: from the first file to the last, model load and, for
Ray, actor start-up included; Ray's own start is not) and over the process's wall time; Ray's start-up (embedded
start, joining the running cluster). Then the **driver's per-file cost**, on ``--driver-files`` empty files
and a no-op actor (no decode, no model): planning (list, mirror, skip-existing check), and the driver's CPU
per file while the dataset is built and the status rows come back, with the rows/s that this sets as a ceiling.

Writes ``results/ray/ray_speed.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the cluster listens on loopback only

from colorize.benchmarks.machine import describe_machine, load_average  # noqa: E402
from colorize.ray.pipeline import ACTOR_ENV, files_per_block  # noqa: E402

PHOTOS = REPO.parent / "shared" / "data" / "photos" / "BSDS500" / "val"
OUT_DIR = REPO / "results" / "ray"
SUMMARY = re.compile(r"colorized (\d+) of (\d+) images in ([\d.]+) s \(([\d.]+) img/s\) with ([\w./-]+)")


def make_folder(folder: Path, n: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted(PHOTOS.glob("*.jpg"))[:n]
    for i in range(n):
        if photos:
            im = Image.open(photos[i % len(photos)]).convert("L")
        else:
            im = Image.fromarray(np.random.default_rng(i).integers(0, 256, (321, 481), dtype=np.uint8))
        im.save(folder / f"{i:03d}.jpg", quality=90)
    if photos:
        return f"{n} photos of BSDS500/val (481x321 and 321x481), gray JPEG q90"
    return f"{n} synthetic noise images 481x321 (BSDS500/val not found)"


def cli_run(name: str, args: list[str], env: dict) -> dict:
    cmd = [sys.executable, "-m", "colorize", "images", *args]
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    m = SUMMARY.search(r.stderr)
    if r.returncode != 0 or m is None:
        raise RuntimeError(f"{name}: exit {r.returncode}\n{r.stderr[-3000:]}")
    done, run_s = int(m.group(1)), float(m.group(3))
    out = {"mode": name, "command": "colorize images " + shlex.join(args), "files": done, "run_s": run_s,
           "img_s_run": round(done / run_s, 2), "wall_s": round(wall, 2), "img_s_wall": round(done / wall, 2),
           "engine": m.group(5)}
    start = re.search(r"Ray start-up ([\d.]+) s", r.stderr)
    if start:
        out["ray_startup_s"] = float(start.group(1))
        out["pool"] = re.search(r"pool: ([^\n]+)", r.stderr).group(1)
        out["where"] = re.search(r"on (\d+ Ray nodes?, \d+ actor process(?:es)?)", r.stderr).group(1)
        out["first_result_s"] = float(re.search(r"first result after ([\d.]+) s", r.stderr).group(1))
    print(f"{name:15s} {out['img_s_run']:6.2f} img/s over the run, {out['img_s_wall']:6.2f} over {wall:.1f} s wall"
          + (f"; Ray start-up {out['ray_startup_s']:.1f} s; {out['pool']}" if start else ""), flush=True)
    return out


class NoopBatch:
    """A stand-in for ``ColorizeBatch`` that touches no file: the rows an actor returns, nothing else."""

    def __init__(self, **options):
        self.pid = os.getpid()

    def __call__(self, batch: dict) -> dict:
        n = len(batch["src"])
        text = np.array([""] * n, object)
        return {"index": np.asarray(batch["index"], np.int64), "src": batch["src"], "dst": batch["dst"],
                "ok": np.ones(n, bool), "error": text, "width": np.zeros(n, np.int64), "height": np.zeros(n, np.int64),
                "before": text, "after": text, "node": np.array(["noop"] * n, object),
                "pid": np.full(n, self.pid, np.int64), "engine": np.array(["noop"] * n, object)}


def driver_cost(n: int, tmp: Path) -> dict:
    """The driver's own time per file: planning, then building the dataset and collecting rows (no-op actor)."""
    import tracemalloc

    from colorize.job.plan import make_plan
    from colorize.ray.driver import run_tasks

    folder = tmp / "empty"
    folder.mkdir()
    for i in range(n):
        (folder / f"{i:07d}.png").touch()
    t = time.perf_counter()
    plan = make_plan([folder], tmp / "empty-out", skip_existing=True)
    plan_s = time.perf_counter() - t
    tracemalloc.start()  # a second plan, for the memory it holds (tracemalloc slows it down)
    held = make_plan([folder], tmp / "empty-out", skip_existing=True)
    plan_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del held
    marks = {}

    def started(cluster, pool):
        marks["wall"], marks["cpu"] = time.perf_counter(), time.process_time()

    def row(_):
        marks["last"], marks["last_cpu"] = time.perf_counter(), time.process_time()
        marks.setdefault("first", marks["last"])

    run = run_tasks(plan.tasks, on_start=started, on_row=row, worker_class=NoopBatch, batch_size=8)
    end, cpu = marks["last"], marks["last_cpu"] - marks["cpu"]  # Ray's shutdown not counted
    assert len(run.done) == n, (len(run.done), run.stopped)
    out = {"files": n, "blocks": -(-n // files_per_block(n, run.pool.actors, 8)), "pool": run.pool.describe(),
           "plan_us_per_file": round(plan_s / n * 1e6, 1), "plan_bytes_per_file": round(plan_bytes / n),
           "driver_cpu_us_per_file": round(cpu / n * 1e6, 1), "first_row_s": round(marks["first"] - marks["wall"], 2),
           "rows_per_s_after_first": round(n / max(1e-9, end - marks["first"])), "wall_s": round(end - marks["wall"], 2)}
    print(f"driver: planning {out['plan_us_per_file']} us/file ({out['plan_bytes_per_file']} B/file held); "
          f"dataset + rows {out['driver_cpu_us_per_file']} us CPU/file; first row after {out['first_row_s']} s, "
          f"then {out['rows_per_s_after_first']} rows/s (no-op actor)", flush=True)
    return out


def write_markdown(res: dict, path: Path) -> None:
    m = res["machine"]
    lines = [
        "# `colorize images --ray` against the local run (CPU)", "",
        f"Command: `{res['command']}`  ",
        f"Machine: {m['cpu']} ({', '.join(f for f, on in m.get('isa', {}).items() if on and f.startswith('amx'))}), "
        f"{m['logical_cpus']} logical CPUs; a niced training process was running beside it "
        f"(load average {res['load_start']} at start, {res['load_end']} at end).  ",
        f"Folder: {res['folder']}; model `{res['model']}`, backend auto.", "",
        "| mode | engine | Ray pool | img/s (run) | img/s (wall) | wall s | Ray start-up s | first result s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        lines.append(f"| {r['mode']} | {r['engine']} | {r.get('pool', '–')} | {r['img_s_run']} | "
                     f"{r['img_s_wall']} | {r['wall_s']} | {r.get('ray_startup_s', '–')} | "
                     f"{r.get('first_result_s', '–')} |")
    d = res["driver"]
    lines += [
        "", "img/s (run) is the summary's own figure: for the local run from the loaded model to the last file; "
        "for Ray from the start of execution to the last file, actor start-up (process, model load) included and "
        "Ray's own start-up not. Wall: process start to exit. `local, 1 BLAS thread` is the local run in the "
        f"environment every actor gets ({', '.join(f'{k}={v}' for k, v in ACTOR_ENV.items())}): numpy's OpenBLAS "
        "threads, called from every decode/encode thread, slow the local run down on two cores. The cluster is two "
        "1-CPU nodes on the same two cores, so it measures the cost of going through a cluster, not the gain of a "
        "node.", "",
        f"Driver, per file ({d['files']:,} empty files in {d['blocks']} blocks, no-op actor, {d['pool']}): planning "
        f"{d['plan_us_per_file']} µs and {d['plan_bytes_per_file']} B held; building the dataset and collecting the "
        f"rows {d['driver_cpu_us_per_file']} µs of driver CPU; first row {d['first_row_s']} s after Ray was up "
        f"(actor start), then {d['rows_per_s_after_first']:,} rows/s.", "",
    ]
    path.write_text("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="photos in the folder (default 100)")
    ap.add_argument("--driver-files", type=int, default=20000, help="empty files for the driver's cost (default 20000)")
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="results folder")
    a = ap.parse_args()
    from ray.cluster_utils import Cluster

    from colorize.artifacts.model_ref import DEFAULT_PHOTO_MODEL

    res = {"command": "python benchmarks/ray_speed.py" + "".join(f" {x}" for x in sys.argv[1:]),
           "machine": describe_machine(with_gpu=False), "load_start": load_average(), "model": DEFAULT_PHOTO_MODEL,
           "runs": []}
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryDirectory(prefix="ray-speed-") as tmp:
        tmp = Path(tmp)
        env["COLORIZE_CACHE"] = str(tmp / "cache")  # one artifact cache for every run and node
        os.environ["COLORIZE_CACHE"] = env["COLORIZE_CACHE"]
        src = tmp / "in"
        res["folder"] = make_folder(src, a.n)
        one = tmp / "one"  # warm-up: fills the artifact cache (quality-guard verdicts) that every run then reads
        make_folder(one, 1)
        cli_run("warm-up", [str(one), "-o", str(tmp / "o0"), "-q"], env)
        res["runs"].append(cli_run("local", [str(src), "-o", str(tmp / "o1"), "-q"], env))
        res["runs"].append(cli_run("local, 1 BLAS thread", [str(src), "-o", str(tmp / "o1b"), "-q"], {**env, **ACTOR_ENV}))
        res["runs"].append(cli_run("embedded", [str(src), "-o", str(tmp / "o2"), "-q", "--ray"], env))
        t = time.perf_counter()
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        res["cluster_start_s"] = round(time.perf_counter() - t, 2)
        try:
            res["runs"].append(cli_run("cluster", [str(src), "-o", str(tmp / "o3"), "-q", "--ray", cluster.address],
                                       env))
        finally:
            cluster.shutdown()
        res["runs"].append(cli_run("local, again", [str(src), "-o", str(tmp / "o4"), "-q"], env))
        res["driver"] = driver_cost(a.driver_files, tmp)
    res["load_end"] = load_average()
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "ray_speed.json").write_text(json.dumps(res, indent=2) + "\n")
    write_markdown(res, a.out / "ray_speed.md")
    print(f"wrote {a.out / 'ray_speed.json'} and ray_speed.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
