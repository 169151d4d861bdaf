"""PNG plots of a benchmark report (matplotlib, Agg, imported lazily).

  * ``throughput.png``: images/s against batch size, one line per
    backend/precision, one panel per input size (log-log axes);
  * ``latency.png``: the distribution of per-call latency (box: quartiles,
    whiskers: 5th-95th percentile, dots beyond), one panel per shape.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from colorize.fsutil import atomic_path


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise ImportError('plots need matplotlib: pip install ".[dev]" (or pip install matplotlib)') from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    return path


def _label(r: dict) -> str:
    return f"{r['backend']}/{r['precision']}" + (" (baseline)" if r["baseline"] else "")


def plot_throughput(report: dict, path: str | os.PathLike) -> Path:
    """images/s vs batch size per backend/precision, one panel per input size."""
    plt = _plt()
    ok = [r for r in report["results"] if r["status"] == "ok"]
    sizes = sorted({(r["height"], r["width"]) for r in ok}, key=lambda s: s[0] * s[1]) or [(0, 0)]
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4), squeeze=False)
    colors = {label: f"C{i % 10}" for i, label in enumerate(sorted({_label(r) for r in ok}))}  # same in every panel
    for ax, (h, w) in zip(axes[0], sizes):
        series: dict[str, list[tuple[int, float]]] = {}
        for r in ok:
            if (r["height"], r["width"]) == (h, w):
                series.setdefault(_label(r), []).append((r["batch"], r["images_per_s"]))
        for label, pts in sorted(series.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label, color=colors[label],
                    linestyle="--" if "baseline" in label else "-")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        batches = sorted({r["batch"] for r in ok if (r["height"], r["width"]) == (h, w)})
        if batches:
            ax.set_xticks(batches, [str(b) for b in batches])
            ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xlabel("batch size")
        ax.set_ylabel("images / s")
        ax.set_title(f"{h}×{w}" if h else "no results")
        ax.grid(True, which="both", alpha=0.3)
    if colors:  # one legend for all panels, outside them: it never hides a point
        handles = [plt.Line2D([], [], color=c, marker="o", linestyle="--" if "baseline" in lb else "-")
                   for lb, c in colors.items()]
        axes[0][-1].legend(handles, list(colors), fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"{report['model']['name']}: throughput ({report['machine'].get('cpu', '')})", fontsize=10)
    fig.tight_layout()
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def plot_latency(report: dict, path: str | os.PathLike) -> Path:
    """Per-call latency distribution per configuration, one panel per (batch, size)."""
    plt = _plt()
    ok = [r for r in report["results"] if r["status"] == "ok" and r["samples_ms"]]
    shapes = sorted({(r["height"] * r["width"], r["batch"], r["height"], r["width"]) for r in ok}) or [(0, 0, 0, 0)]
    cols = min(3, len(shapes))
    rows = math.ceil(len(shapes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 0.4 * 8 + 2.2 * rows), squeeze=False)
    for ax in axes.flat[len(shapes):]:
        ax.set_visible(False)
    for ax, (_, b, h, w) in zip(axes.flat, shapes):
        sel = sorted((r for r in ok if (r["batch"], r["height"], r["width"]) == (b, h, w)), key=_label, reverse=True)
        if sel:
            data = [r["samples_ms"] for r in sel]
            try:  # matplotlib >= 3.10
                ax.boxplot(data, orientation="horizontal", whis=(5, 95), flierprops={"markersize": 2})
            except TypeError:
                ax.boxplot(data, vert=False, whis=(5, 95), flierprops={"markersize": 2})
            ax.set_yticks(range(1, len(sel) + 1), [_label(r) for r in sel], fontsize=7)
            lo, hi = min(min(d) for d in data), max(max(d) for d in data)
            if hi >= 3 * max(lo, 1e-9):  # log axis with plain 1-2-5 labels; a narrow range stays linear
                from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

                ax.set_xscale("log")
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("latency per call, ms")
        ax.set_title(f"batch {b}, {h}×{w}" if b else "no results", fontsize=9)
        ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.suptitle(f"{report['model']['name']}: latency distribution", fontsize=10)
    fig.tight_layout()
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def write_plots(report: dict, directory: str | os.PathLike) -> list[Path]:
    """Write throughput.png and latency.png into ``directory``."""
    d = Path(directory)
    return [plot_throughput(report, d / "throughput.png"), plot_latency(report, d / "latency.png")]
