"""Where the memory of a loaded ``colorize serve`` goes: Python allocations (tracemalloc) against RSS and glibc
malloc's own counters, to tell a leak from allocator growth.

    python -m colorize.benchmarks.serve_tracemalloc --duration 180 --warmup 60
    python -m colorize.benchmarks.serve_tracemalloc --allocator default      # without colorize.serve.allocator.configure

The service runs in this process (``create_app`` on uvicorn in a thread, the
default model, ``tracemalloc`` started before the model loads); the clients
run in a child process (``colorize.benchmarks.load_test.drive``) so that their
allocations are not traced. Every ``--interval`` s it records RSS, the traced
Python memory (numpy buffers included: numpy reports them to tracemalloc) and
``mallinfo2`` (in use / free in malloc's arenas / mmapped). At the warm-up
and at the end it takes a snapshot; the lines whose allocations grew most
between the two are printed with their tracebacks.

A leak shows as traced memory (or malloc's ``in_use``) that keeps rising;
fragmentation as RSS and malloc's ``free`` rising while ``in_use`` stays flat.
Writes ``results/soak/tracemalloc-<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _top(after: tracemalloc.Snapshot, before: tracemalloc.Snapshot, n: int) -> list[dict]:
    ignore = [tracemalloc.Filter(False, name) for name in (
        tracemalloc.__file__, "<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>", "<unknown>")]
    stats = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "traceback")
    stats.sort(key=lambda s: s.size_diff, reverse=True)  # what grew most first
    return [{"size_diff": s.size_diff, "size": s.size, "count_diff": s.count_diff, "count": s.count,
             "traceback": s.traceback.format(limit=6)} for s in stats[:n]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=180.0)
    p.add_argument("--warmup", type=float, default=60.0)
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--image", default=str(REPO / "examples" / "coffee.jpg"))
    p.add_argument("--allocator", choices=("configured", "default"), default="configured",
                   help="configured: colorize.serve.allocator.configure() first, as colorize serve does")
    p.add_argument("--frames", type=int, default=12, help="traceback depth tracemalloc keeps")
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--name", default=None, help="output name (default: the --allocator value)")
    args = p.parse_args(argv)

    from colorize.serve import allocator

    setup = allocator.configure() if args.allocator == "configured" else None
    tracemalloc.start(args.frames)

    import uvicorn

    from colorize.benchmarks.load_test import free_port, wait_ready
    from colorize.benchmarks.soak import proc_status
    from colorize.colorizer import Colorizer
    from colorize.serve.config import ServeConfig
    from colorize.serve.service import create_app

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # the clients share one loopback address: no per-client cap
    app = create_app(lambda: Colorizer.load(), ServeConfig(port=port, log_level="warning", max_concurrent_per_client=0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_ready(url, 600)

    code = ("import asyncio, sys; from pathlib import Path; from colorize.benchmarks.load_test import drive; "
            "asyncio.run(drive(sys.argv[1], [Path(sys.argv[2]).read_bytes()], int(sys.argv[3]), float(sys.argv[4])))")
    load = subprocess.Popen([sys.executable, "-c", code, url, args.image, str(args.clients), str(args.duration)],
                            cwd=REPO)
    samples, snaps = [], {}
    t0 = time.monotonic()
    try:
        while load.poll() is None:
            t = time.monotonic() - t0
            rss, threads = proc_status(os.getpid())
            traced, _ = tracemalloc.get_traced_memory()
            m = allocator.mallinfo() or {}
            samples.append({"t": round(t, 1), "rss": rss, "threads": threads, "traced": traced, **m})
            print(f"{t:6.0f} s RSS {rss / 2**20:6.0f} MiB  traced {traced / 2**20:6.1f} MiB  malloc in use "
                  f"{m.get('in_use', 0) / 2**20:6.1f} free {m.get('free', 0) / 2**20:6.1f} mmapped "
                  f"{m.get('mmapped', 0) / 2**20:6.1f} MiB  threads {threads}", file=sys.stderr, flush=True)
            if "warmup" not in snaps and t >= args.warmup:
                snaps["warmup"] = tracemalloc.take_snapshot()
            time.sleep(args.interval)
        snaps["end"] = tracemalloc.take_snapshot()
    finally:
        if load.poll() is None:
            load.terminate()
            load.wait()
        server.should_exit = True
        thread.join(60)
    top = _top(snaps["end"], snaps["warmup"], args.top) if "warmup" in snaps else []
    result = {
        "command": " ".join(["python -m colorize.benchmarks.serve_tracemalloc", *(argv if argv is not None else sys.argv[1:])]),
        "allocator": setup.describe() if setup else "glibc defaults (no mallopt)",
        "clients": args.clients, "duration_s": args.duration, "warmup_s": args.warmup,
        "samples": samples, "top_growth_after_warmup": top,
    }
    out = REPO / "results" / "soak" / f"tracemalloc-{args.name or args.allocator}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for s in top:
        print(f"{s['size_diff'] / 1024:+9.1f} KiB ({s['count_diff']:+d} blocks), now {s['size'] / 1024:.1f} KiB:")
        print("\n".join("    " + line for line in s["traceback"]))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
