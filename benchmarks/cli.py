"""Benchmark latency and throughput of every backend x precision against eager PyTorch FP32.

    colorize bench                         # full run: batches 1,8,64; sizes 32, 256
    colorize bench --quick                 # smoke run, under a minute
    colorize bench --backends torch,onnxruntime --precisions fp32,int8 --batch-sizes 1,16 --sizes 64,128x96
    colorize bench --out results/bench --readme docs/performance.md   # JSON + Markdown + PNGs + the docs table
    colorize bench --from-json results/bench/bench.json --readme docs/performance.md   # re-render only

Prints the Markdown report on stdout, progress on stderr. Exit codes: 0 every
selected configuration ran or was skipped as unavailable, 1 some failed, 2
usage error.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from colorize.artifacts.model_ref import DEFAULT_MODEL


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    out = []
    for item in (x.strip().lower() for x in text.split(",") if x.strip()):
        h, _, w = item.partition("x")
        try:
            hw = (int(h), int(w or h))
        except ValueError:
            raise argparse.ArgumentTypeError(f"size {item!r}: expected N or HxW (e.g. 256 or 480x640)") from None
        if min(hw) < 1:
            raise argparse.ArgumentTypeError(f"size {item!r}: must be >= 1")
        out.append(hw)
    if not out:
        raise argparse.ArgumentTypeError("no sizes given")
    return tuple(out)


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help="shipped model, checkpoint/.onnx path, or architecture")
    p.add_argument("--backends", type=_names, help="comma-separated (default: every registered backend)")
    p.add_argument("--precisions", type=_names, help="comma-separated (default: every precision of each backend)")
    p.add_argument("--batch-sizes", type=_ints, help="comma-separated (default 1,8,64; --quick 1,8)")
    p.add_argument("--sizes", type=_sizes, help="comma-separated N or HxW (default 32,256; --quick 32)")
    p.add_argument("--quick", action="store_true", help="smoke run: size 32, batches 1,8, short timings (< 1 min)")
    p.add_argument("--warmup", type=int, help="warm-up calls per configuration after the first (default 3)")
    p.add_argument("--min-iters", type=int, help="timed calls per configuration, at least (default 10)")
    p.add_argument("--max-iters", type=int, help="timed calls per configuration, at most (default 200)")
    p.add_argument("--target-seconds", type=float, help="timed seconds per configuration (default 2)")
    p.add_argument("--rounds", type=int, help="round-robin rounds interleaving the backends (default 5)")
    p.add_argument(
        "--max-call-seconds", type=float,
        help="skip shapes whose estimated call time at the measured fp32 peak exceeds this (default 3; 0 = never)",
    )
    p.add_argument("--no-baseline", action="store_true", help="do not time eager torch fp32 (no ratios)")
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end folder pipeline timing")
    p.add_argument("--e2e-images", type=int, help="images in the end-to-end folder (default 32; --quick 8)")
    p.add_argument("--e2e-batch", type=int, help="end-to-end batch size (default 8, or the largest batch below it)")
    p.add_argument("--json", metavar="FILE", help="write the JSON report here")
    p.add_argument("--markdown", metavar="FILE", help="write the Markdown report here")
    p.add_argument("--plots", metavar="DIR", help="write throughput.png and latency.png here")
    p.add_argument("--out", metavar="DIR", help="shortcut: DIR/bench.json, DIR/bench.md and the plots in DIR")
    p.add_argument("--readme", metavar="FILE", help="replace the table between the bench markers in this Markdown file (docs/performance.md)")
    p.add_argument("--from-json", metavar="FILE", help="do not run: render an earlier JSON report")


def _settings(args: argparse.Namespace):
    from colorize.benchmarks.harness import BenchSettings

    over = {
        "model": args.model,
        "backends": args.backends,
        "precisions": args.precisions,
        "batch_sizes": args.batch_sizes,
        "sizes": args.sizes,
        "warmup": args.warmup,
        "min_iters": args.min_iters,
        "max_iters": args.max_iters,
        "target_seconds": args.target_seconds,
        "rounds": args.rounds,
        "max_call_seconds": args.max_call_seconds,
    }
    over = {k: v for k, v in over.items() if v is not None}
    if args.no_baseline:
        over["baseline"] = False
    s = BenchSettings.quick_run(**over) if args.quick else BenchSettings(**over)
    s.validate()
    return s


def _e2e(args, settings, report, log) -> None:
    from colorize.benchmarks.e2e import attach_model_only, run_end_to_end

    batch = args.e2e_batch or max([b for b in settings.batch_sizes if b <= 8] or [min(settings.batch_sizes)])
    images = args.e2e_images or (8 if settings.quick else 32)
    backend, precision = "auto", "auto"
    try:  # which backend "auto" is, so the end-to-end row sits next to its model-only numbers
        from colorize.engine import Engine

        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the random-init warning is already in the notes
            eng = Engine.load(settings.model)
        with eng:
            backend, precision = eng.backend, eng.precision
    except Exception as e:
        report["notes"].append(f"end-to-end: could not resolve backend 'auto' ({type(e).__name__}: {e})")
    sizes = [(h, w) for h, w in settings.sizes
             if any(r["status"] == "ok" and (r["height"], r["width"]) == (h, w) for r in report["results"])]
    log(f"end-to-end: {images} images, batch {batch}, {backend}/{precision}, sizes {sizes}")
    rows = run_end_to_end(sizes, batch, images, settings.model, backend, precision, log=log)
    attach_model_only(rows, report["results"])
    report["end_to_end"] = rows


def main(args: argparse.Namespace) -> int:
    from colorize.benchmarks.markdown import to_markdown, update_readme
    from colorize.benchmarks.report import load_json, write_json, write_text

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    json_path, md_path, plot_dir = args.json, args.markdown, args.plots
    if args.out:
        from pathlib import Path

        json_path = json_path or str(Path(args.out, "bench.json"))
        md_path = md_path or str(Path(args.out, "bench.md"))
        plot_dir = plot_dir or args.out
    if args.from_json:
        try:
            report = load_json(args.from_json)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    else:
        from colorize.benchmarks.harness import run_benchmark

        try:
            settings = _settings(args)
        except (ValueError, TypeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        try:
            report = run_benchmark(settings, log=log)
        except ValueError as e:  # an unknown backend name
            print(f"error: {e}", file=sys.stderr)
            return 2
        report["command"] = "colorize bench " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else [])
        if not args.no_e2e:
            _e2e(args, settings, report, log)
    md = to_markdown(report)
    if json_path:
        write_json(report, json_path)
        log(f"wrote {json_path}")
    if md_path:
        write_text(md, md_path)
        log(f"wrote {md_path}")
    if plot_dir:
        from colorize.benchmarks.plots import write_plots

        for p in write_plots(report, plot_dir):
            log(f"wrote {p}")
    if args.readme:
        block = md
        if plot_dir:  # link the plots, relative to the README
            import os

            rel = os.path.relpath(os.path.abspath(plot_dir), os.path.dirname(os.path.abspath(args.readme)))
            block += "\n" + " ".join(f"![{n}]({rel}/{n}.png)".replace("\\", "/") for n in ("throughput", "latency"))
            block += "\n"
        try:
            update_readme(args.readme, block)
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        log(f"updated {args.readme}")
    print(md)
    failed = [c for c in report["configs"] if c["status"] == "error"]
    failed += [r for r in report["results"] if r["status"] == "error"]
    failed += [e for e in report["end_to_end"] if e["status"] == "error"]
    return 1 if failed else 0
