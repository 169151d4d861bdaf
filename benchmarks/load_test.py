"""Load benchmark of ``colorize serve`` on loopback: N concurrent clients vs one request at a time.

    python -m colorize.benchmarks.load_test                      # 32 clients, 60 s, default model, backend auto
    python -m colorize.benchmarks.load_test --clients 32 --duration 60 --baseline-duration 20 -- --max-batch-size 16

It starts ``colorize serve`` as a child process on 127.0.0.1 (a free port;
arguments after ``--`` go to the server), waits for /readyz, then:

1. **baseline**: one client, one request at a time, ``--baseline-duration`` s;
2. **warm-up**: ``--clients`` concurrent clients for ``--warmup`` s (not measured);
3. **load**: ``--clients`` concurrent clients for ``--duration`` s, sampling the
   server's RSS from ``/proc/<pid>/status`` every 0.5 s;

and reports throughput (ratio to the baseline), p50/p90/p99 latency, every
non-200 answer or transport error (all are counted as unexpected), the batch
sizes the server ran (from /metrics), and whether RSS stayed within 10 % of its
value at the start of the measured window. Requests are grayscale JPEGs made
from ``BSDS500/val`` photos when ``../shared/data/photos`` exists (481x321 and
321x481, so two batch shapes), else synthetic images. The report is written
(atomically) to ``results/serve_load_<device>.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from colorize.benchmarks.machine import cpu_model
from colorize.fsutil import atomic_write_text

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO.parent / "shared" / "data" / "photos" / "BSDS500" / "val"
RSS_TOLERANCE = 0.10  # "steady": every sample in the measured window within 10 % of the window's first sample


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def request_images(n: int = 8) -> tuple[list[bytes], str]:
    """``n`` grayscale JPEG request bodies and where they came from."""
    from PIL import Image

    files = sorted(PHOTOS.glob("*.jpg"))[:n] if PHOTOS.is_dir() else []
    out = []
    for f in files:
        buf = io.BytesIO()
        Image.open(f).convert("L").save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    if out:
        return out, f"{len(out)} grayscale JPEGs (q90) from shared/data/photos/BSDS500/val (481x321 / 321x481)"
    rng = np.random.default_rng(0)
    for i in range(n):
        y, x = np.mgrid[0:321, 0:481]
        g = (127 + 60 * np.sin(x / (17 + i)) + 60 * np.cos(y / (23 + i)) + rng.normal(0, 8, x.shape)).clip(0, 255)
        buf = io.BytesIO()
        Image.fromarray(g.astype(np.uint8)).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out, f"{n} synthetic 481x321 grayscale JPEGs (q90)"


async def drive(
    url: str, bodies: list[bytes], clients: int, seconds: float, on_tick=None
) -> list[tuple[float, float, str]]:
    """``clients`` closed-loop clients posting images for ``seconds``; requests still in flight then are
    abandoned (not recorded). Returns (end time, latency s, outcome) per completed request. ``on_tick``, an
    async callable, runs alongside (monitoring)."""
    import httpx

    records: list[tuple[float, float, str]] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:

        async def loop(i: int) -> None:
            k = i
            while True:
                body = bodies[k % len(bodies)]
                k += clients
                t0 = time.perf_counter()
                try:
                    r = await client.post(url + "/colorize", content=body, headers={"content-type": "image/jpeg"})
                    outcome = str(r.status_code)
                    if r.status_code == 200 and not r.content.startswith(b"\x89PNG"):
                        outcome = "200-not-png"
                except httpx.HTTPError as e:
                    outcome = type(e).__name__
                t1 = time.perf_counter()
                records.append((t1, t1 - t0, outcome))

        tasks = [asyncio.ensure_future(loop(i)) for i in range(clients)]
        if on_tick is not None:
            tasks.append(asyncio.ensure_future(on_tick()))
        await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return records


def summarize(records: list[tuple[float, float, str]], window: tuple[float, float] | None = None) -> dict:
    """Stats of the requests completed in ``window`` (perf_counter times); throughput = completions / window
    length, or, without a window (one client, closed loop), completions / their summed latency."""
    if window is not None:
        records = [r for r in records if window[0] <= r[0] < window[1]]
    ok = np.array([lat for _, lat, o in records if o == "200"]) * 1000
    outcomes: dict[str, int] = {}
    for _, _, o in records:
        outcomes[o] = outcomes.get(o, 0) + 1
    seconds = window[1] - window[0] if window is not None else float(ok.sum() / 1000)
    pct = (lambda q: float(np.percentile(ok, q))) if len(ok) else (lambda q: float("nan"))
    return {
        "requests": len(records),
        "ok": int(len(ok)),
        "errors": {k: v for k, v in outcomes.items() if k != "200"},
        "seconds": seconds,
        "throughput": len(ok) / seconds if seconds else float("nan"),
        "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
        "mean_ms": float(ok.mean()) if len(ok) else float("nan"),
        "max_ms": float(ok.max()) if len(ok) else float("nan"),
    }


def batch_histogram(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Batches run per size bucket between two /metrics scrapes."""
    out, prev = {}, 0.0
    keys = [k for k in after if k.startswith("colorize_batch_size_bucket")]
    for k in keys:
        le = k.split('le="')[1].rstrip('"}')
        cum = after[k] - before.get(k, 0.0)
        out[le] = cum - prev
        prev = cum
    n = after.get("colorize_batch_size_count", 0) - before.get("colorize_batch_size_count", 0)
    s = after.get("colorize_batch_size_sum", 0) - before.get("colorize_batch_size_sum", 0)
    return {"batches": n, "images": s, "mean_batch": s / n if n else float("nan"), "by_le": out}


def rss_steadiness(samples: list[tuple[float, int]], slices: int = 6) -> dict:
    """Peak RSS per time slice of the measured window. RSS rises and falls with every batch (activations are
    allocated and freed), so single samples swing; "steady" means no slice's peak is more than
    ``RSS_TOLERANCE`` away from the first slice's peak (no growth over the run)."""
    values = [v for _, v in samples]
    span = max(samples[-1][0], 1e-9)
    peaks = [0] * slices
    for t, v in samples:
        i = min(int(t / span * slices), slices - 1)
        peaks[i] = max(peaks[i], v)
    peaks = [p for p in peaks if p]
    steady = all(abs(p - peaks[0]) <= RSS_TOLERANCE * peaks[0] for p in peaks)
    return {"first": values[0], "min": min(values), "max": max(values), "end": values[-1], "n": len(values),
            "slice_peaks": peaks, "steady": steady}


def report(args, cmd, ready, source, base, load, batches, rss, exit_code, ratio) -> str:
    mib = lambda b: f"{b / 2**20:.0f} MiB"  # noqa: E731
    err = lambda s: ", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "none"  # noqa: E731
    by_le = ", ".join(f"≤{k}: {int(v)}" for k, v in batches["by_le"].items() if v)
    lines = [
        "# `colorize serve` load test (loopback)",
        "",
        f"Command: `{' '.join(['python -m colorize.benchmarks.load_test'] + sys.argv[1:])}`  ",
        f"Server: `{' '.join(['python'] + cmd[1:])}`  ",
        f"Model: {ready.get('model', args.model)} on backend **{ready.get('backend')}**, precision "
        f"**{ready.get('precision')}**; CPU: {cpu_model()}, {os.cpu_count()} logical CPUs (shared with the "
        "load generator, which runs on the same machine); "
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.  ",
        f"Requests: {source}; responses PNG (the default).  ",
        f"1-min load average: {args.load_before:.1f} before the run, {os.getloadavg()[0]:.1f} after (above the "
        "CPU count means other processes were competing for the CPU while this ran).",
        "",
        "| phase | clients | seconds | requests | OK/s | p50 ms | p90 ms | p99 ms | max ms | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, n, s in (("one at a time", 1, base), ("concurrent", args.clients, load)):
        lines.append(
            f"| {name} | {n} | {s['seconds']:.0f} | {s['requests']} | {s['throughput']:.2f} | {s['p50_ms']:.0f} | "
            f"{s['p90_ms']:.0f} | {s['p99_ms']:.0f} | {s['max_ms']:.0f} | {err(s)} |"
        )
    lines += [
        "",
        f"* Baseline throughput is completions / their summed latency (closed loop, one client); concurrent "
        f"throughput is 200s completed in the {args.duration:g} s window after a {args.warmup:g} s warm-up.",
        f"* Throughput ratio, concurrent / one at a time: **{ratio:.2f}x** (target ≥ 3x: "
        f"{'met' if ratio >= 3 else 'missed'}).",
        f"* Unexpected errors under load: **{sum(load['errors'].values())}** (any non-200 answer or transport error).",
        f"* Batches during the measured window: {int(batches['batches'])}, mean size {batches['mean_batch']:.2f} "
        f"(bucket counts {by_le or 'none'}).",
        f"* Server RSS (VmRSS, every 0.5 s): first {mib(rss['first'])}, min {mib(rss['min'])}, max "
        f"{mib(rss['max'])}, end {mib(rss['end'])} ({rss['n']} samples); peak per {len(rss['slice_peaks'])} equal "
        f"slices of the window: {', '.join(mib(p) for p in rss['slice_peaks'])}: "
        f"**{'steady' if rss['steady'] else 'NOT steady'}** (every slice peak within {RSS_TOLERANCE:.0%} of the "
        "first; single samples swing with the batch being run, so peaks are compared).",
        f"* Server exit code after SIGTERM: {exit_code}.",
        "",
    ]
    return "\n".join(lines)


def split_server_args(argv: list[str] | None) -> tuple[list[str], list[str]]:
    """(this script's arguments, the server's: those after ``--``)."""
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1 :]


def wait_ready(url: str, timeout: float, server: subprocess.Popen | None = None, log=None, status: int = 1) -> dict:
    """Poll ``url``/readyz until it answers 200 and return its JSON. Exits with ``status`` (after printing ``log``, the
    server's output file, when ``server`` has exited) if the server dies or is not ready within ``timeout`` s."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if server is not None and server.poll() is not None:
            if log is not None:
                log.seek(0)
                print(log.read(), file=sys.stderr)
            print(f"server exited with {server.returncode} before it was ready", file=sys.stderr)
            raise SystemExit(status)
        try:
            r = httpx.get(url + "/readyz", timeout=5)
            if r.status_code == 200:
                return r.json()
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            print(f"server not ready in {timeout:g} s", file=sys.stderr)
            raise SystemExit(status)
        time.sleep(0.25)


def stop_server(server: subprocess.Popen):
    """SIGTERM the server and wait up to 60 s (then SIGKILL): its exit code after SIGTERM, what happened instead,
    or None when it had already exited."""
    if server.poll() is not None:
        return None
    server.send_signal(signal.SIGTERM)
    try:
        return server.wait(60)
    except subprocess.TimeoutExpired:
        server.kill()
        return f"killed after 60 s ({server.wait()})"


def main(argv: list[str] | None = None) -> int:
    argv, server_args = split_server_args(argv)
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--duration", type=float, default=60.0, help="measured concurrent phase, s")
    p.add_argument("--baseline-duration", type=float, default=20.0, help="one-at-a-time phase, s")
    p.add_argument("--warmup", type=float, default=10.0, help="unmeasured concurrent warm-up, s")
    p.add_argument("--model", default="resnet18-unet")
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--out", type=Path, default=None, help="report path (default results/serve_load_cpu.md)")
    p.add_argument("--ready-timeout", type=float, default=600.0)
    p.add_argument("--server-timeout-s", type=float, default=600.0,
                   help="the server's per-request timeout (its default 30 s is below the queueing time of 32 "
                        "closed-loop clients on a small CPU)")
    args = p.parse_args(argv)
    args.load_before = os.getloadavg()[0]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The clients stand for many callers but share one loopback address: no per-client cap.
    cmd = [sys.executable, "-m", "colorize", "serve", "--host", "127.0.0.1", "--port", str(port), "--model", args.model,
           "--backend", args.backend, "--precision", args.precision, "--timeout-s", str(args.server_timeout_s),
           "--log-level", "warning", "--max-concurrent-per-client", "0", *server_args]
    log = tempfile.NamedTemporaryFile("w+", prefix="colorize-serve-", suffix=".log", delete=False)
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    exit_code = None
    try:
        ready = wait_ready(url, args.ready_timeout, server, log)
        ready["model"] = args.model
        bodies, source = request_images()
        print(f"ready: {ready}; {source}", file=sys.stderr)

        print(f"baseline: 1 client, {args.baseline_duration:g} s", file=sys.stderr)
        base = summarize(asyncio.run(drive(url, bodies, 1, args.baseline_duration)))
        print(json.dumps(base), file=sys.stderr)

        print(f"load: {args.clients} clients, {args.warmup:g} s warm-up + {args.duration:g} s", file=sys.stderr)
        rss: list[tuple[float, int]] = []
        scrapes: dict[str, dict] = {}
        window: list[float] = []

        async def monitor():
            import httpx as _httpx

            async with _httpx.AsyncClient(timeout=30) as mc:
                from colorize.serve.metrics import parse_text

                await asyncio.sleep(args.warmup)
                window.append(time.perf_counter())
                scrapes["before"] = parse_text((await mc.get(url + "/metrics")).text)
                while time.perf_counter() < window[0] + args.duration:
                    v = rss_bytes(server.pid)
                    if v:
                        rss.append((time.perf_counter() - window[0], v))
                    await asyncio.sleep(0.5)
                window.append(time.perf_counter())
                scrapes["after"] = parse_text((await mc.get(url + "/metrics")).text)

        records = asyncio.run(drive(url, bodies, args.clients, args.warmup + args.duration + 2, monitor))
        load = summarize(records, (window[0], window[1]))
        before, after = scrapes["before"], scrapes["after"]
        print(json.dumps(load), file=sys.stderr)
        batches = batch_histogram(before, after)
    finally:
        exit_code = stop_server(server)
        log.close()

    ratio = load["throughput"] / base["throughput"] if base["throughput"] else float("nan")
    text = report(args, cmd, ready, source, base, load, batches, rss_steadiness(rss), exit_code, ratio)
    out = args.out or REPO / "results" / "serve_load_cpu.md"
    atomic_write_text(out, text)
    print(text)
    print(f"wrote {out}; server log {log.name}", file=sys.stderr)
    return 0 if not load["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
