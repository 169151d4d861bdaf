"""Fairness of ``colorize serve`` between two API keys: a greedy client and a polite one, on loopback.

    python -m colorize.benchmarks.fairness                                    # 2 rounds of 15 s per phase
    python -m colorize.benchmarks.fairness --rounds 3 --duration 20 --name cap4 -- --max-concurrent-per-client 4

It starts ``colorize serve`` as a child process on 127.0.0.1 (a free port, a
key file with two keys; arguments after ``--`` go to the server), waits for
/readyz, warms up, then runs each round's three phases:

1. **polite alone**: the polite client, 1 request in flight (closed loop);
2. **greedy alone**: the greedy client, ``--greedy`` requests in flight;
3. **together**: both at once.

Each phase settles for ``--settle`` s, then is measured for ``--duration`` s:
the polite client's latency (p50/p90/p99 of its 200s), the greedy client's
throughput (200s completed in the window per second), and every other answer.
A client honours ``Retry-After`` on 429 and 503 (it waits, then tries again),
as a well-behaved client does. Targets: the polite client's median latency
together within ``POLITE_TARGET`` times its median alone, and the greedy
client's throughput together at least ``GREEDY_TARGET`` of its throughput alone.

Requests are the four photos of ``examples/`` as 256x192 grayscale PNGs (one
batch shape). The run records the CPU, and the CPU time other processes on the
machine used while it ran (``/proc``), since the clients, the server and anything
else share the cores. Writes ``results/serve_fairness/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from colorize.benchmarks.load_test import batch_histogram, free_port, split_server_args, stop_server, wait_ready
from colorize.benchmarks.machine import cpu_model
from colorize.fsutil import atomic_write_text

REPO = Path(__file__).resolve().parent.parent
POLITE_TARGET = 6.0  # polite p50 together / polite p50 alone, at most
GREEDY_TARGET = 0.60  # greedy throughput together / greedy throughput alone, at least
SIZE = (256, 192)  # request images, width x height
KEYS = {"greedy": "greedy-3c9e5b1a7d2f4e6c8a0b", "polite": "polite-7a1d3f5e9c2b4a6e8d0c"}
PHASES = ("polite alone", "greedy alone", "together")


def commit() -> str:
    """The checkout's commit, with ``+changes`` when files differ from it ("unknown" outside git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + (" +changes" if dirty else "")


def request_images() -> list[bytes]:
    """The photos of ``examples/`` as ``SIZE`` grayscale PNGs."""
    from PIL import Image

    out = []
    for path in sorted((REPO / "examples").glob("*")):
        if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            continue
        buf = io.BytesIO()
        Image.open(path).convert("L").resize(SIZE, Image.BILINEAR).save(buf, format="PNG")
        out.append(buf.getvalue())
    if not out:
        raise SystemExit(f"no example photos in {REPO / 'examples'}")
    return out


# -- what else uses the CPU ------------------------------------------------------------------------------------------


def cpu_ticks() -> dict[int, tuple[str, int]]:
    """pid -> (command name, user + system clock ticks) of every process readable in /proc."""
    out = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry.name)] = (name, int(fields[11]) + int(fields[12]))
    return out


def busy_ticks() -> int:
    """Clock ticks the whole machine has spent busy (``/proc/stat``: all but idle and iowait)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0
    values = [int(v) for v in fields[:8]]
    return sum(values) - values[3] - values[4]


def cpu_elsewhere(before: dict, after: dict, busy: tuple[int, int], mine: set[int], seconds: float) -> dict:
    """CPU seconds used between two snapshots (``cpu_ticks``, ``busy_ticks``) by everything but the processes
    ``mine``: in all (the machine's busy time less ours, so processes that came and went count too), as cores busy
    on average, and the five busiest commands that were there at the end."""
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    used: dict[str, float] = {}
    ours = 0.0
    for pid, (name, ticks) in after.items():
        delta = (ticks - before.get(pid, (name, 0))[1]) / hz
        if pid in mine:
            ours += delta
        elif delta > 0:
            used[name] = used.get(name, 0.0) + delta
    total = max(0.0, (busy[1] - busy[0]) / hz - ours)
    top = sorted(used.items(), key=lambda kv: -kv[1])[:5]
    return {"cpu_s": round(total, 1), "cores_avg": round(total / seconds, 2) if seconds else None,
            "top": [{"command": k, "cpu_s": round(v, 1)} for k, v in top]}


# -- clients -----------------------------------------------------------------------------------------------------------


async def run_phase(url: str, bodies: list[bytes], clients: dict[str, int], settle: float, seconds: float) -> dict:
    """``clients``: name -> requests kept in flight. Each keeps that many closed loops posting with its key for
    ``settle + seconds``; returns, per client, the records (latency s, outcome) of requests that ended inside
    the measured window, and the window's length."""
    import httpx

    records: dict[str, list[tuple[float, str]]] = {name: [] for name in clients}
    window = [0.0, 0.0]

    async def loop(client: httpx.AsyncClient, name: str, i: int) -> None:
        k = i
        while True:
            body = bodies[k % len(bodies)]
            k += 1
            t0 = time.perf_counter()
            wait = 0.0
            try:
                r = await client.post(url + "/colorize", content=body, headers={"content-type": "image/png"})
                outcome = str(r.status_code)
                if r.status_code in (429, 503):
                    wait = float(r.headers.get("retry-after", "1"))
            except httpx.HTTPError as e:
                outcome = type(e).__name__
                wait = 1.0
            t1 = time.perf_counter()
            if window[0] <= t1 < window[1]:
                records[name].append((t1 - t0, outcome))
            if wait:
                await asyncio.sleep(wait)

    sessions = {
        name: httpx.AsyncClient(
            timeout=600, headers={"authorization": f"Bearer {KEYS[name]}"},
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
        )
        for name, n in clients.items()
    }
    start = time.perf_counter()
    window[:] = [start + settle, start + settle + seconds]
    tasks = [asyncio.ensure_future(loop(sessions[name], name, i)) for name, n in clients.items() for i in range(n)]
    await asyncio.sleep(settle + seconds)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for s in sessions.values():
        await s.aclose()
    return {"records": records, "seconds": seconds}


def scrape(url: str) -> dict[str, float]:
    """The server's /metrics samples (with a key)."""
    import httpx

    from colorize.serve.metrics import parse_text

    r = httpx.get(url + "/metrics", headers={"authorization": f"Bearer {KEYS['polite']}"}, timeout=30)
    return parse_text(r.text)


def stats(records: list[tuple[float, str]], seconds: float) -> dict:
    ok = np.array([lat for lat, o in records if o == "200"]) * 1000
    outcomes: dict[str, int] = {}
    for _, o in records:
        outcomes[o] = outcomes.get(o, 0) + 1
    pct = (lambda q: round(float(np.percentile(ok, q)), 1)) if len(ok) else (lambda q: None)
    return {"ok": len(ok), "other": {k: v for k, v in outcomes.items() if k != "200"},
            "per_s": round(len(ok) / seconds, 2), "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99)}


# -- report ------------------------------------------------------------------------------------------------------------


def summarize(rounds: list[dict]) -> dict:
    """Pooled over rounds: the polite client's latencies, the greedy client's completions per second."""

    def pooled(phase: str, name: str) -> dict:
        recs = [r for rnd in rounds for r in rnd[phase]["records"].get(name, [])]
        return stats(recs, sum(rnd[phase]["seconds"] for rnd in rounds))

    s = {"polite alone": pooled("polite alone", "polite"), "greedy alone": pooled("greedy alone", "greedy"),
         "polite together": pooled("together", "polite"), "greedy together": pooled("together", "greedy")}
    alone, together = s["polite alone"]["p50_ms"], s["polite together"]["p50_ms"]
    latency_ratio = together / alone if alone and together else None
    tput_ratio = (s["greedy together"]["per_s"] / s["greedy alone"]["per_s"]) if s["greedy alone"]["per_s"] else None
    s["polite_latency_ratio"] = round(latency_ratio, 2) if latency_ratio else None
    s["greedy_throughput_ratio"] = round(tput_ratio, 3) if tput_ratio is not None else None
    s["targets"] = {
        "polite_latency_ratio_max": POLITE_TARGET, "greedy_throughput_ratio_min": GREEDY_TARGET,
        "polite_met": latency_ratio is not None and latency_ratio <= POLITE_TARGET,
        "greedy_met": tput_ratio is not None and tput_ratio >= GREEDY_TARGET,
    }
    s["per_round"] = [
        {phase: {name: stats(recs, rnd[phase]["seconds"]) for name, recs in rnd[phase]["records"].items()}
         for phase in PHASES}
        for rnd in rounds
    ]
    s["batches"] = {}  # engine.run calls per phase, settling included, all rounds: how many, mean size, by size
    for phase in PHASES:
        hists = [rnd[phase]["batches"] for rnd in rounds]
        n, images = sum(h["batches"] for h in hists), sum(h["images"] for h in hists)
        by_le = {le: sum(h["by_le"].get(le, 0) for h in hists) for le in hists[0]["by_le"]}
        s["batches"][phase] = {"batches": int(n), "mean_size": round(images / n, 2) if n else None,
                               "by_size_le": {le: int(v) for le, v in by_le.items() if v}}
    return s


def markdown(result: dict) -> str:
    s = result["summary"]
    other = lambda st: ", ".join(f"{k}: {v}" for k, v in st["other"].items()) or "none"
    ms = lambda v: "n/a" if v is None else f"{v:.0f}"
    e = result["elsewhere"]
    busiest = ", ".join(f"{t['command']} {t['cpu_s']} s" for t in e["top"]) or "nothing"
    lines = [
        "# `colorize serve` fairness: a greedy and a polite API key (loopback)",
        "",
        f"Command: `{result['command']}`  ",
        f"Server: `{result['server']}` (commit {result['commit']})  ",
        f"Model: {result['ready'].get('model')} on backend **{result['ready'].get('backend')}**, precision "
        f"**{result['ready'].get('precision')}**; CPU: {result['cpu']}, {result['cpus']} logical CPUs, shared by "
        f"the server and both clients; {result['date']}.  ",
        f"Requests: {result['images']}; greedy keeps {result['greedy']} in flight, polite 1; "
        f"{result['rounds']} rounds of {result['duration']:g} s per phase after {result['settle']:g} s to settle; "
        "clients honour Retry-After.  ",
        f"Other processes on the machine used {e['cpu_s']} CPU-s during the run ({e['cores_avg']} cores on average; "
        f"busiest of those there at the end: {busiest}); 1-min load average {result['load_before']:.1f} before, "
        f"{result['load_after']:.1f} after.",
        "",
        "| phase | client | 200s | other answers | 200s/s | p50 ms | p90 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, key in (("alone", "polite alone"), ("alone", "greedy alone"), ("together", "polite together"),
                       ("together", "greedy together")):
        st = s[key]
        lines.append(f"| {label} | {key.split()[0]} | {st['ok']} | {other(st)} | {st['per_s']:.1f} | "
                     f"{ms(st['p50_ms'])} | {ms(st['p90_ms'])} | {ms(st['p99_ms'])} |")
    t = s["targets"]
    lr, tr = s["polite_latency_ratio"], s["greedy_throughput_ratio"]
    lines += [
        "",
        f"* Polite p50 together / alone: **{'n/a' if lr is None else f'{lr:.1f}x'}** (target ≤ "
        f"{t['polite_latency_ratio_max']:g}x: {'met' if t['polite_met'] else 'missed'}).",
        f"* Greedy 200s/s together / alone: **{'n/a' if tr is None else f'{tr:.0%}'}** (target ≥ "
        f"{t['greedy_throughput_ratio_min']:.0%}: {'met' if t['greedy_met'] else 'missed'}).",
        "* Per round (p50 ms of the polite client, 200s/s of the greedy one): " + "; ".join(
            f"{ms(r['polite alone']['polite']['p50_ms'])} alone / {ms(r['together']['polite']['p50_ms'])} together, "
            f"{r['greedy alone']['greedy']['per_s']:.1f} alone / {r['together']['greedy']['per_s']:.1f} together"
            for r in s["per_round"]) + ".",
        "* Batches (engine.run calls, settling included): " + "; ".join(
            f"{phase}: {b['batches']}, mean size {b['mean_size']} (by size up to: "
            + ", ".join(f"≤{le}: {n}" for le, n in b["by_size_le"].items()) + ")"
            for phase, b in s["batches"].items()) + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv, server_args = split_server_args(argv)
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--greedy", type=int, default=32, help="requests the greedy client keeps in flight")
    p.add_argument("--duration", type=float, default=15.0, help="measured seconds per phase and round")
    p.add_argument("--settle", type=float, default=3.0, help="unmeasured seconds at the start of each phase")
    p.add_argument("--rounds", type=int, default=2, help="rounds of the three phases, interleaved")
    p.add_argument("--warmup", type=float, default=10.0, help="unmeasured seconds of both clients first")
    p.add_argument("--model", default="efficientnet_lite0-unet-photos")
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--name", default="fairness", help="results/serve_fairness/<name>.json and .md")
    p.add_argument("--ready-timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    load_before = os.getloadavg()[0]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    keys = tempfile.NamedTemporaryFile("w", prefix="colorize-keys-", suffix=".txt", delete=False)
    keys.write("\n".join(KEYS.values()) + "\n")
    keys.close()
    cmd = [sys.executable, "-m", "colorize", "serve", "--host", "127.0.0.1", "--port", str(port), "--model",
           args.model, "--backend", args.backend, "--precision", args.precision, "--api-key-file", keys.name,
           "--timeout-s", "600", "--log-level", "warning", *server_args]
    log = tempfile.NamedTemporaryFile("w+", prefix="colorize-serve-", suffix=".log", delete=False)
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        ready = wait_ready(url, args.ready_timeout, server, log)
        ready["model"] = args.model
        bodies = request_images()
        ticks_before, busy_before, t_start = cpu_ticks(), busy_ticks(), time.monotonic()
        print(f"ready: {ready}; warm-up {args.warmup:g} s", file=sys.stderr)
        asyncio.run(run_phase(url, bodies, {"greedy": args.greedy, "polite": 1}, args.warmup, 0.0))
        rounds = []
        for r in range(args.rounds):
            rnd = {}
            for phase, clients in zip(PHASES, ({"polite": 1}, {"greedy": args.greedy},
                                               {"greedy": args.greedy, "polite": 1})):
                before = scrape(url)
                rnd[phase] = asyncio.run(run_phase(url, bodies, clients, args.settle, args.duration))
                rnd[phase]["batches"] = batch_histogram(before, scrape(url))
                print(f"round {r + 1}, {phase}: " + json.dumps(
                    {n: stats(recs, rnd[phase]["seconds"]) for n, recs in rnd[phase]["records"].items()}),
                    file=sys.stderr)
            rounds.append(rnd)
        elsewhere = cpu_elsewhere(ticks_before, cpu_ticks(), (busy_before, busy_ticks()), {os.getpid(), server.pid},
                                  time.monotonic() - t_start)
    finally:
        exit_code = stop_server(server)
        log.close()
        os.unlink(keys.name)

    result = {
        "command": " ".join(["python -m colorize.benchmarks.fairness", *(argv + (["--", *server_args]
                                                                              if server_args else []))]),
        "server": " ".join(["colorize serve", *cmd[4:]]).replace(keys.name, "KEYS.txt"),
        "ready": ready, "commit": commit(), "cpu": cpu_model(), "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "images": f"{len(bodies)} photos of examples/ as {SIZE[0]}x{SIZE[1]} grayscale PNGs",
        "greedy": args.greedy, "rounds": args.rounds, "duration": args.duration, "settle": args.settle,
        "load_before": load_before, "load_after": os.getloadavg()[0], "elsewhere": elsewhere,
        "server_exit": exit_code, "summary": summarize(rounds),
    }
    out = REPO / "results" / "serve_fairness" / args.name
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    atomic_write_text(out.with_suffix(".md"), text)
    print(text)
    print(f"wrote {out}.json and .md; server log {log.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
