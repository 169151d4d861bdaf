"""The benchmark report as Markdown, and the README block it generates.

``to_markdown(report)`` renders: a header (when, what machine, the command,
the model and its GFLOP/image, the measured peaks), the results table, what
was not measured and why, and the end-to-end table. ``update_readme`` puts it
between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` in README.md
(creating a "### Performance" subsection of "## Benchmarks" when the markers
are missing), so the README table is always generated, never hand-edited.
"""

from __future__ import annotations

import os
from pathlib import Path

from colorize.benchmarks.machine import machine_summary
from colorize.benchmarks.report import write_text

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _f(x, fmt: str = ".2f", none: str = "–") -> str:
    return none if x is None else format(x, fmt)


def _order(r: dict) -> tuple:
    return (r["height"] * r["width"], r["batch"], not r["baseline"], r["backend"], r["precision"])


def results_table(report: dict) -> str:
    """One row per measured configuration (status ok)."""
    head = (
        "| backend | precision | batch | size | p50 ms | p90 ms | p99 ms | img/s | GFLOP/s | % of own-precision peak "
        "| × eager p50 | × eager img/s | first call ms | n |"
    )
    lines = [head, "|" + "---|" * 14]
    failed_guard = {(c["backend"], c["precision"]) for c in report["configs"] if "FAILED" in (c.get("guard") or "")}
    for r in sorted((r for r in report["results"] if r["status"] == "ok"), key=_order):
        lat, vs = r["latency_ms"], r["vs_baseline"] or {}
        # Only a peak of the row's own precision (results written before that rule held int8 rows against bf16).
        own = r.get("peak_share") is not None and str(r.get("peak", "")).rsplit("/", 1)[-1] == r["precision"]
        share = f"{100 * r['peak_share']:.0f}% {r['peak']}" if own else "–"
        name = f"**{r['backend']}**" if r["baseline"] else r["backend"]
        prec = r["precision"] + (" †" if (r["backend"], r["precision"]) in failed_guard else "")
        first = None if r["first_call_s"] is None else 1e3 * r["first_call_s"]
        lines.append(
            f"| {name} | {prec} | {r['batch']} | {r['height']}×{r['width']} | {_f(lat['p50'])} "
            f"| {_f(lat['p90'])} | {_f(lat['p99'])} | {_f(r['images_per_s'], '.1f')} | {_f(r['gflops'], '.1f')} "
            f"| {share} | {_f(vs.get('latency'))} | {_f(vs.get('throughput'))} | {_f(first, '.1f')} | {r['n']} |"
        )
    return "\n".join(lines)


def not_measured(report: dict) -> list[str]:
    """Skipped or failed configurations, one line per (config, reason), shapes grouped."""
    out = [f"`{c['backend']}/{c['precision']}`: {c['status']}: {c['reason']}"
           for c in report["configs"] if c["status"] != "ok"]
    grouped: dict[tuple, list[str]] = {}
    for r in report["results"]:
        if r["status"] != "ok":
            key = (r["backend"], r["precision"], r["status"], r["reason"])
            grouped.setdefault(key, []).append(f"b{r['batch']} {r['height']}×{r['width']}")
    for (b, p, status, reason), shapes in grouped.items():
        out.append(f"`{b}/{p}` at {', '.join(shapes)}: {status}: {reason}")
    return out


def e2e_table(report: dict) -> str:
    rows = report.get("end_to_end") or []
    if not rows:
        return ""
    lines = [
        "| pipeline | backend | precision | batch | size | images | wall s | img/s (wall) | startup s "
        "| img/s (steady) | model-only img/s | status |",
        "|" + "---|" * 12,
    ]
    for e in rows:
        lines.append(
            f"| `colorize images` | {e['backend']} | {e['precision']} | {e['batch']} | {e['height']}×{e['width']} "
            f"| {e['images']} | {_f(e['wall_s'])} | {_f(e['images_per_s'], '.1f')} | {_f(e['startup_s'])} "
            f"| {_f(e['steady_images_per_s'], '.1f')} | {_f(e['model_only_images_per_s'], '.1f')} "
            f"| {e['status'] if e['status'] == 'ok' else e['status'] + ': ' + (e['reason'] or '')} |"
        )
    return "\n".join(lines)


def to_markdown(report: dict, title: str | None = None) -> str:
    """The whole report as Markdown."""
    m, model = report["machine"], report["model"]
    s = report["settings"]
    parts = [f"#### {title}\n" if title else ""]
    when = report.get("created") or m.get("date_utc") or "?"
    commit = f", commit `{m['git_commit']}`" if m.get("git_commit") else ""
    parts.append(f"Measured {when}{commit} on {machine_summary(m)}.")
    pk = ", ".join(f"{k} {v['gflops']:.0f} {'GOP/s' if k.endswith('/int8') else 'GFLOP/s'} ({v['how']})"
                   for k, v in report["peaks"].items())
    parts.append(f"Matmul peak measured in the same run: {pk or 'not measured'}.")
    g = ", ".join(f"{k}: {_f(v)}" for k, v in model.get("gflop_per_image", {}).items())
    init = " (random init: speed only)" if model.get("random_init") else ""
    parts.append(f"Model `{model['name']}`{init}; GFLOP/image {g} ({model.get('flops_counted', '')}).")
    if report.get("command"):
        parts.append(f"Command: `{report['command']}`.")
    pkgs = ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items())
    parts.append(
        f"Software: Python {m.get('python')}, {pkgs}; torch threads {m.get('torch_threads')}. "
        f"Timing: {s['warmup']} warm-up call{'s' if s['warmup'] != 1 else ''}, "
        f"then ≥{s['min_iters']} timed calls per configuration "
        f"(~{s['target_seconds']:g} s) in {s['rounds']} round-robin rounds interleaved with the eager "
        "baseline; latency is per call (one batch); img/s = batch / mean latency; "
        "× eager = ratio to **torch fp32** at the same shape (> 1 = faster); "
        "% of own-precision peak = GFLOP/s over the matmul peak measured at the row's device and precision "
        "(int8 rows against the int8 peak, – where that one was not measured)."
    )
    parts = ["\n\n".join(p for p in parts if p), results_table(report)]
    loads = [f"{c['backend']}/{c['precision']} {c['load_s']:.2f} s"
             for c in report["configs"] if c["load_s"] is not None]
    if loads:
        parts.append("Load time (`Engine.load`: weights, export/compile or cached artifact, quality guard): "
                     + ", ".join(loads) + ".")
    guards = [f"`{c['backend']}/{c['precision']}`: {c['guard']}" for c in report["configs"] if c.get("guard")]
    if guards:
        parts.append("Quality guard at load (engine/guard.py; † = failed: fast but not accurate enough):\n\n"
                     + "\n".join(f"- {g}" for g in guards))
    missing = not_measured(report)
    if missing:
        parts.append("Not measured:\n\n" + "\n".join(f"- {x}" for x in missing))
    e2e = e2e_table(report)
    if e2e:
        parts.append(
            "End to end (`colorize images` on a generated folder of PNGs, in a subprocess: decode, Lab, "
            "model, merge, encode; startup = process start + model load, from a 1-image run):\n\n" + e2e
        )
    if report.get("notes"):
        parts.append("Notes:\n\n" + "\n".join(f"- {n}" for n in report["notes"]))
    return "\n\n".join(parts) + "\n"


def update_readme(readme: str | os.PathLike, block: str) -> Path:
    """Replace the text between the bench markers in ``readme`` with ``block`` (atomic write).

    Without markers, a "### Performance" subsection holding them is appended to
    the "## Benchmarks" section.

    Raises:
        ValueError: neither markers nor a "## Benchmarks" section in the file.
    """
    path = Path(readme)
    text = path.read_text()
    body = f"{START}\n{block.strip()}\n{END}"
    if START in text and END in text and text.index(START) < text.index(END):
        new = text[: text.index(START)] + body + text[text.index(END) + len(END):]
    else:
        head = "\n## Benchmarks\n"
        if head not in "\n" + text:
            raise ValueError(f"{path}: no {START} ... {END} markers and no '## Benchmarks' section to put them in")
        i = ("\n" + text).index(head) - 1 + len(head)
        nxt = text.find("\n## ", i)
        nxt = len(text) if nxt < 0 else nxt + 1
        section = text[i:nxt].rstrip("\n")
        new = text[:i] + section + f"\n\n### Performance\n\n{body}\n\n" + text[nxt:]
    return write_text(new, path)
