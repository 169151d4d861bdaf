"""Film speed: ``colorize video`` against per-frame colorization through the Colorizer and the decode+encode floor.

    python benchmarks/video_speed.py                       # 640x360 (20 s of film) and 1920x1080 (5 s), 3 runs each
    python benchmarks/video_speed.py --sizes 640x360 --runs 5

Clips are made at run time (``benchmarks/video_clips.py``: pans, zooms and a crossing object over the
evaluation photos of ``../shared/data/photos``, else ``examples/``; 24 fps, gray, an AAC sine). Each way of
turning the gray film into a colour film runs in a process of its own, timed from its start to its exit, so
**start-up is included** (Python, imports, model load from a warm cache: a first run on a machine also builds
the backend's model, which one warm-up run before the timing does here):

* ``colorize video``: the command line, defaults (backend and precision auto, steady colour, x264 crf 18
  veryfast): the decode thread, batched inference with the temporal step, the encode thread;
* **per-frame Colorizer**: what one would write with the Python API: decode each frame to RGB (PyAV),
  ``Colorizer.colorize`` it (backend and precision auto), encode it with the same encoder settings;
* **decode+encode floor**: the same clip decoded and encoded again with the same settings, the audio copied:
  no model, no colour. No colorizer that re-encodes the film can be faster.

Frames per second are the clip's frames over the wall time; "x real time" divides by the clip's 24 fps. Runs
alternate between the three so that other work on the machine falls on all of them; the median and the best
of ``--runs`` are reported, with the load average (other processes) before and after.

Writes ``results/video/speed.json`` and ``.md``. The machine's CPU is named in both.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FPS = 24
WAYS = ("colorize video", "per-frame Colorizer", "decode+encode floor")


def make_clip(path: Path, size: tuple[int, int], seconds: float) -> int:
    """Write a gray film of ``seconds`` at ``size`` with audio; returns its frame count."""
    from colorize.benchmarks.video_clips import ClipSpec, write_clip
    from colorize.benchmarks.video_quality import photos

    paths, _ = photos(1)
    frames = round(seconds * FPS)
    per_shot = 48
    spec = ClipSpec(paths[: max(1, -(-frames // per_shot))], size=size, frames_per_shot=per_shot, fps=FPS)
    spec.shots = -(-frames // per_shot)
    info = write_clip(spec, path, audio=True, crf=18)
    return info.n_frames


def _encoder(out, template, crf: int, preset: str):
    v = out.add_stream("libx264", rate=template.average_rate or FPS)
    v.width, v.height, v.pix_fmt = template.codec_context.width, template.codec_context.height, "yuv420p"
    v.time_base = template.time_base
    v.codec_context.time_base = template.time_base
    v.options = {"crf": str(crf), "preset": preset}
    v.thread_type = "AUTO"
    return v


def per_frame_colorizer(src: str, dst: str, crf: int, preset: str) -> None:
    """Decode, ``Colorizer.colorize`` each frame as an RGB array, encode: the plain API loop."""
    import av

    from colorize.colorizer import Colorizer

    col = Colorizer.load(small_model=None)
    with av.open(src) as inp, av.open(dst, "w") as out:
        s = inp.streams.video[0]
        s.thread_type = "AUTO"
        v = _encoder(out, s, crf, preset)
        for frame in inp.decode(s):
            rgb = col.colorize(frame.to_ndarray(format="rgb24"))
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts, f.time_base = frame.pts, frame.time_base
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    col.close()


def floor(src: str, dst: str, crf: int, preset: str) -> None:
    """Decode and encode again with the same settings, the audio copied: no model."""
    import av

    with av.open(src) as inp, av.open(dst, "w") as out:
        s = inp.streams.video[0]
        s.thread_type = "AUTO"
        v = _encoder(out, s, crf, preset)
        audio = {a.index: out.add_stream_from_template(a) for a in inp.streams.audio}
        for packet in inp.demux(s, *inp.streams.audio):
            if packet.stream is not s:
                if packet.dts is not None and packet.size:
                    packet.stream = audio[packet.stream_index]
                    out.mux(packet)
                continue
            for frame in packet.decode():
                frame.pict_type = av.video.frame.PictureType.NONE
                for p in v.encode(frame):
                    out.mux(p)
        for p in v.encode():
            out.mux(p)


def _command(way: str, src: Path, out: Path, crf: int, preset: str) -> list[str]:
    if way == "colorize video":
        return [sys.executable, "-m", "colorize", "video", str(src), "-o", str(out), "-q", "--crf", str(crf),
                "--preset", preset]
    flag = "--per-frame-colorizer" if way == "per-frame Colorizer" else "--floor"
    return [sys.executable, __file__, flag, str(src), str(out / src.name), "--crf", str(crf), "--preset", preset]


def _timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the process and its threads) of one run of ``cmd``."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return dt, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _wait_for_quiet(limit: float, max_wait: float) -> None:
    """Wait (at most ``max_wait`` s) until the 1-minute load average is below ``limit``: others' work stops."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline and os.getloadavg()[0] >= limit:
        time.sleep(5)


def run(args: argparse.Namespace) -> dict:
    from colorize.benchmarks.machine import load_average

    rows = []
    with tempfile.TemporaryDirectory(prefix="video-speed-") as tmp:
        tmp = Path(tmp)
        warm = tmp / "warm.mp4"
        make_clip(warm, (320, 180), 1.0)
        _timed(_command("colorize video", warm, tmp / "warm-out", args.crf, args.preset))  # backend cache built
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.split("x"))
            seconds = args.seconds_360 if h <= 480 else args.seconds_hd
            clip = tmp / f"clip{w}x{h}.mp4"
            n = make_clip(clip, (w, h), seconds)
            times: dict[str, list[float]] = {way: [] for way in WAYS}
            cpus: dict[str, list[float]] = {way: [] for way in WAYS}
            loads = []
            for r in range(args.runs):
                _wait_for_quiet(args.wait_load, args.max_wait)
                loads.append(load_average())
                for way in WAYS:
                    out = tmp / f"out-{size}-{r}-{way.split()[0]}"
                    out.mkdir()
                    wall, cpu = _timed(_command(way, clip, out, args.crf, args.preset))
                    times[way].append(wall)
                    cpus[way].append(cpu)
                loads.append(load_average())
                print(f"{size} run {r + 1}: " + ", ".join(f"{way} {n / times[way][-1]:.1f} fps" for way in WAYS),
                      file=sys.stderr)
            for way in WAYS:
                med, best = statistics.median(times[way]), min(times[way])
                rows.append({"size": size, "way": way, "frames": n, "seconds_median": med, "seconds_best": best,
                             "fps_median": n / med, "fps_best": n / best, "x_real_time_median": n / med / FPS,
                             "x_real_time_best": n / best / FPS, "runs": times[way],
                             "cpu_ms_per_frame": 1000 * statistics.median(cpus[way]) / n, "cpu_runs": cpus[way]})
            rows[-3]["load_avg"] = loads
    return {"rows": rows}


def to_markdown(report: dict) -> str:
    lines = ["# Film speed", "", f"`{report['command']}`", "", f"Machine: {report['machine_summary']}.", "",
             f"Gray film at 24 fps with an AAC track, x264 crf {report['crf']} {report['preset']}; each way in a "
             "process of its own, start-up included (model load from a warm cache); median and best of "
             f"{report['runs']} alternating runs.", "",
             "| size | frames | way | fps (median) | x real time | fps (best) | x real time | CPU ms per frame |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['size']} | {r['frames']} | {r['way']} | {r['fps_median']:.1f} | "
                     f"{r['x_real_time_median']:.2f}x | {r['fps_best']:.1f} | {r['x_real_time_best']:.2f}x | "
                     f"{r['cpu_ms_per_frame']:.1f} |")
    loads = {r["size"]: r["load_avg"] for r in report["rows"] if "load_avg" in r}
    lines += ["", "CPU ms per frame: user + system time of the whole process (all its threads, start-up "
              "included) over the frames, median of the runs; it does not depend on what else runs, and "
              "2000 / it bounds the frames per second two otherwise idle cores could give.", "",
              "Load average (1 min) before and after each round of runs: "
              + "; ".join(f"{size}: {', '.join(str(v) for v in vals)}" for size, vals in loads.items())
              + f". Each round waited (at most {report['max_wait']:g} s) for a load below {report['wait_load']:g}; "
              "on 2 cores a load above 2 means other processes took CPU time from the runs."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="640x360,1920x1080")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds-360", type=float, default=20.0, help="film length at 640x360 (default: 20 s)")
    ap.add_argument("--seconds-hd", type=float, default=5.0, help="film length at 1920x1080 (default: 5 s)")
    ap.add_argument("--wait-load", type=float, default=1.5, help="before each round, wait for a 1-minute load "
                                                                     "average below this (default: 1.5)")
    ap.add_argument("--max-wait", type=float, default=300.0, help="but at most this many seconds (default: 300)")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--out", default="results/video/speed.json")
    ap.add_argument("--per-frame-colorizer", nargs=2, metavar=("SRC", "DST"), help=argparse.SUPPRESS)
    ap.add_argument("--floor", nargs=2, metavar=("SRC", "DST"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.per_frame_colorizer:
        per_frame_colorizer(*args.per_frame_colorizer, args.crf, args.preset)
        return 0
    if args.floor:
        floor(*args.floor, args.crf, args.preset)
        return 0
    from colorize.benchmarks.machine import describe_machine, load_average, machine_summary
    from colorize.fsutil import atomic_write_text

    machine = describe_machine(with_gpu=False)
    report = run(args)
    machine["load_avg_end"] = load_average()
    report.update(command="python benchmarks/video_speed.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
                  machine=machine, machine_summary=machine_summary(machine), crf=args.crf, preset=args.preset,
                  runs=args.runs, wait_load=args.wait_load, max_wait=args.max_wait)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    md = to_markdown(report)
    atomic_write_text(out.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
