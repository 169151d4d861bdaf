"""Memory soak of ``colorize serve`` on loopback: N clients for D seconds, the server's RSS sampled as it goes.

    python -m colorize.benchmarks.soak                                   # 16 clients, 600 s, examples/coffee.jpg
    python -m colorize.benchmarks.soak --clients 16 --duration 120 --warmup 30 --name short
    python -m colorize.benchmarks.soak --env MALLOC_ARENA_MAX=8 --name arenas8 -- --max-batch-size 4
    python -m colorize.benchmarks.soak --plot results/soak/a.json results/soak/b.json --name compare

It starts ``colorize serve`` (the real command, with the environment of this
process plus ``--env``; arguments after ``--`` go to the server) on 127.0.0.1
at a free port, waits for /readyz, then runs ``--clients`` closed-loop clients
posting the same image for ``--duration`` seconds (bounded: each client sends
one request at a time and stops at the deadline), sampling the server's VmRSS
and thread count from ``/proc/<pid>/status`` every ``--interval`` seconds.

Figures (RSS moves with each batch, so single samples are smoothed over a
window of ``SMOOTH`` samples, their median):

* ``start``: the first sample under load; ``after_warmup``: at ``--warmup`` s;
  ``end``: the last samples; ``growth`` = end / after_warmup - 1, and the
  least-squares slope of RSS after the warm-up, MiB per minute;
* ``bounded``: growth below ``GROWTH_LIMIT`` (5 %).

Writes ``results/soak/<name>.json`` and ``<name>.png`` (atomically)
and prints the JSON. Exit status 0 when bounded and no request failed, 1
otherwise, 2 when the server did not come up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from colorize.benchmarks.load_test import drive, free_port, split_server_args, stop_server, wait_ready
from colorize.benchmarks.machine import cpu_model
from colorize.fsutil import atomic_write_text

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "results" / "soak"
GROWTH_LIMIT = 0.05  # RSS after the warm-up may grow by less than this to the end of the run
SMOOTH = 5  # samples per median window of the start / after-warm-up / end figures


def proc_status(pid: int) -> tuple[int, int] | None:
    """(VmRSS bytes, threads) of ``pid`` from /proc, None once it is gone."""
    rss = threads = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    except OSError:
        return None
    return (rss, threads) if rss is not None and threads is not None else None


def figures(samples: list[tuple[float, int, int]], warmup: float) -> dict:
    """Start / after-warm-up / end RSS (medians of ``SMOOTH`` samples), growth and slope after the warm-up."""
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples], dtype=np.float64)
    if len(samples) < 2 * SMOOTH or t[-1] <= warmup:
        raise ValueError(f"{len(samples)} samples over {t[-1] if len(t) else 0:.0f} s: too few to judge a "
                         f"{warmup:g} s warm-up (run longer or sample more often)")
    i = int(np.searchsorted(t, warmup))
    start = float(np.median(rss[:SMOOTH]))
    after = float(np.median(rss[i : i + SMOOTH]))
    end = float(np.median(rss[-SMOOTH:]))
    slope = float(np.polyfit(t[i:], rss[i:], 1)[0]) * 60 / 2**20 if len(t) - i >= 2 else float("nan")
    growth = end / after - 1
    return {
        "start_mib": start / 2**20, "after_warmup_mib": after / 2**20, "end_mib": end / 2**20,
        "max_mib": float(rss.max()) / 2**20, "growth": growth, "slope_mib_per_min": slope,
        "threads_max": int(max(s[2] for s in samples)), "threads_end": int(samples[-1][2]),
        "bounded": bool(growth < GROWTH_LIMIT), "growth_limit": GROWTH_LIMIT,
    }


def plot(runs: list[dict], path: Path) -> Path:
    """RSS against time, one line per run; the warm-up shaded (one run) or marked by a dotted line per run."""
    from colorize.benchmarks.plots import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for run in runs:
        t = [s[0] for s in run["samples"]]
        mib = [s[1] / 2**20 for s in run["samples"]]
        f = run["figures"]
        (line,) = ax.plot(t, mib, lw=1.2, label=f"{run['name']}: {f['after_warmup_mib']:.0f} -> {f['end_mib']:.0f} "
                                                f"MiB ({100 * f['growth']:+.1f} % after a {run['warmup_s']:g} s warm-up)")
        if len(runs) > 1:
            ax.axvline(run["warmup_s"], color=line.get_color(), ls=":", lw=1)
    if len(runs) == 1:
        ax.axvspan(0, runs[0]["warmup_s"], color="0.9", zorder=0, label=f"warm-up ({runs[0]['warmup_s']:g} s)")
    ax.set_xlabel("seconds under load")
    ax.set_ylabel("server RSS, MiB")
    first = runs[0]
    ax.set_title(f"colorize serve, {first['clients']} clients posting {first['image']['name']} "
                 f"({first['image']['size'][0]}x{first['image']['size'][1]})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def run_soak(args, server_args: list[str]) -> tuple[dict, int]:
    from PIL import Image

    body = Path(args.image).read_bytes()
    with Image.open(args.image) as im:
        image = {"name": Path(args.image).name, "size": list(im.size), "format": im.format, "bytes": len(body)}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The clients stand for many callers but share one loopback address: no per-client cap.
    cmd = [sys.executable, "-m", "colorize", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--max-concurrent-per-client", "0", *server_args]
    env = {**os.environ, **dict(kv.split("=", 1) for kv in args.env)}
    log = tempfile.NamedTemporaryFile("w+", prefix="colorize-soak-", suffix=".log", delete=False)
    load_before = os.getloadavg()[0]
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    samples: list[tuple[float, int, int]] = []
    exit_code = None
    try:
        ready = wait_ready(url, args.ready_timeout, server, log, status=2)
        idle = proc_status(server.pid)
        print(f"ready: {ready}; idle RSS {idle[0] / 2**20:.0f} MiB, {idle[1]} threads; "
              f"{args.clients} clients for {args.duration:g} s", file=sys.stderr)

        async def monitor():
            t0 = time.perf_counter()
            while True:
                now = time.perf_counter() - t0
                st = proc_status(server.pid)
                if st is not None:
                    samples.append((round(now, 2), st[0], st[1]))
                if args.verbose and st is not None:
                    print(f"{now:7.1f} s  RSS {st[0] / 2**20:7.1f} MiB  threads {st[1]}", file=sys.stderr)
                await asyncio.sleep(args.interval)

        records = asyncio.run(drive(url, [body], args.clients, args.duration, monitor))
    finally:
        exit_code = stop_server(server)
        log.close()
    outcomes: dict[str, int] = {}
    for _, _, o in records:
        outcomes[o] = outcomes.get(o, 0) + 1
    result = {
        "schema": "colorize-soak/1",
        "name": args.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": shlex.join(["python", "-m", "colorize.benchmarks.soak", *sys.argv[1:]]),
        "server": shlex.join(["python", *cmd[1:]]),
        "env": dict(kv.split("=", 1) for kv in args.env),
        "machine": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "load_before": load_before,
                    "load_after": os.getloadavg()[0]},
        "ready": ready,
        "image": image,
        "clients": args.clients,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "interval_s": args.interval,
        "idle": {"rss_mib": idle[0] / 2**20, "threads": idle[1]},
        "requests": {"total": len(records), "by_outcome": outcomes,
                     "ok_per_s": outcomes.get("200", 0) / args.duration},
        "server_exit": exit_code,
        "figures": figures(samples, args.warmup),
        "samples": samples,  # (seconds under load, VmRSS bytes, threads)
    }
    failed = sum(v for k, v in outcomes.items() if k != "200")
    return result, 0 if result["figures"]["bounded"] and not failed else 1


def main(argv: list[str] | None = None) -> int:
    argv, server_args = split_server_args(argv)
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=600.0, help="seconds under load (default 600)")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds before the after-warm-up figure (default 60)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between RSS samples (default 2)")
    p.add_argument("--image", default=str(REPO / "examples" / "coffee.jpg"), help="request body (default coffee.jpg)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="server environment (repeatable)")
    p.add_argument("--name", default="soak", help="output name: results/soak/NAME.json and .png")
    p.add_argument("--out-dir", type=Path, default=OUT_DIR)
    p.add_argument("--ready-timeout", type=float, default=600.0)
    p.add_argument("--plot", nargs="+", metavar="JSON", help="do not run: plot earlier results together")
    p.add_argument("-v", "--verbose", action="store_true", help="print every sample")
    args = p.parse_args(argv)
    if args.plot:
        runs = [json.loads(Path(f).read_text()) for f in args.plot]
        print(plot(runs, args.out_dir / f"{args.name}.png"))
        return 0
    for kv in args.env:
        if "=" not in kv:
            p.error(f"--env {kv!r}: expected KEY=VALUE")
    if args.clients < 1 or args.duration <= args.warmup or args.interval <= 0:
        p.error("need --clients >= 1, --duration > --warmup and --interval > 0")
    result, status = run_soak(args, server_args)
    out = args.out_dir / f"{args.name}.json"
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    png = plot([result], args.out_dir / f"{args.name}.png")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
    print(f"wrote {out} and {png}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
