"""Where a model's time goes: OpenVINO's per-layer counters (``PERF_COUNT``), summed by part of the model.

    python benchmarks/layer_profile.py --model efficientnet_lite0-unet-photos --precision int8 --batch 16 \
        --size 192x256

The model is a shipped name (``models/weights/NAME.onnx``, or ``NAME.int8.onnx`` for ``--precision int8``) or an
ONNX path. It is compiled on the CPU with two threads (``int8`` leaves the non-quantized layers at the CPU's
default precision, as the engine's OpenVINO backend does; ``bf16`` / ``fp32`` set the hint), run ``--repeat``
times after three warm-up runs, and the counters of the fastest run are summed by the first part of each layer's
name: the U-Net's ``encoder`` (exported as its own layers: ``_blocks``/``_conv_stem`` of an EfficientNet-Lite,
``conv1``/``layer1``... of a ResNet), ``decoder``, ``head`` and ``refine``; layers that OpenVINO made by fusing (no name of ours) are "fused (TYPE)".
192x256 is the working shape of a 481x321 BSDS500 photo (long side 256, rounded up to the stride 32).
Pause other CPU work while it runs.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# torch's ONNX export names the encoder's layers without the "encoder" scope (the U-Net calls its forward_features).
_PARTS = (("decoder", ("/decoder/",)), ("head", ("/head/",)), ("refine", ("/refine/",)),
          ("encoder", ("/encoder/", "/_blocks", "/_conv_stem", "/_bn0", "/conv1/", "/relu/", "/maxpool/", "/layer")))


def part_of(node_name: str, node_type: str) -> str:
    for part, keys in _PARTS:
        if any(k in node_name for k in keys):
            return part
    return f"fused ({node_type})" if re.fullmatch(r"[A-Za-z]+_\d+", node_name) else f"other ({node_type})"


def onnx_path(model: str, precision: str) -> Path:
    p = Path(model)
    if p.suffix == ".onnx":
        return p
    return REPO / "models" / "weights" / (f"{model}.int8.onnx" if precision == "int8" else f"{model}.onnx")


def profile(path: Path, precision: str, batch: int, h: int, w: int, repeat: int) -> dict:
    import numpy as np
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({model.inputs[0].get_any_name(): [batch, 1, h, w]})
    from colorize.backends.openvino_backend import _HINTS

    cfg = {"PERF_COUNT": "YES", "INFERENCE_NUM_THREADS": 2}
    if _HINTS[precision]:
        cfg["INFERENCE_PRECISION_HINT"] = _HINTS[precision]
    req = core.compile_model(model, "CPU", cfg).create_infer_request()
    x = np.random.default_rng(0).standard_normal((batch, 1, h, w), dtype=np.float32)
    for _ in range(3):
        req.infer({0: x})
    best, info = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        req.infer({0: x})
        dt = time.perf_counter() - t0
        if dt < best:
            best, info = dt, [(p.node_name, p.node_type, p.exec_type, p.real_time.total_seconds())
                              for p in req.get_profiling_info()]
    parts: Counter = Counter()
    for name, typ, _, s in info:
        parts[part_of(name, typ)] += s
    total = sum(parts.values())
    top = sorted(info, key=lambda r: -r[3])[:12]
    return {"model": str(path), "precision": precision, "batch": batch, "shape": [h, w],
            "wall_ms_per_image": 1000 * best / batch, "layers_ms_per_image": 1000 * total / batch,
            "parts": {k: {"ms_per_image": 1000 * v / batch, "share": v / total} for k, v in parts.most_common()},
            "top_layers": [{"name": n, "type": t, "kernel": k, "ms_per_image": 1000 * s / batch} for n, t, k, s in top]}


def to_markdown(r: dict) -> str:
    lines = [f"`{r['model']}` {r['precision']}, batch {r['batch']} at {r['shape'][0]}x{r['shape'][1]}: "
             f"{r['wall_ms_per_image']:.2f} ms per image (wall), {r['layers_ms_per_image']:.2f} summed over layers",
             "", "| part | ms per image | share |", "|---|---|---|"]
    lines += [f"| {k} | {v['ms_per_image']:.2f} | {100 * v['share']:.0f} % |" for k, v in r["parts"].items()]
    lines += ["", "| layer | type | kernel | ms per image |", "|---|---|---|---|"]
    lines += [f"| {t['name'][:70]} | {t['type']} | {t['kernel']} | {t['ms_per_image']:.2f} |" for t in r["top_layers"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="efficientnet_lite0-unet-photos", help="shipped name or .onnx path")
    ap.add_argument("--precision", choices=("int8", "bf16", "fp32"), default="int8")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", default="192x256", help="HxW (multiples of the model's stride)")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--out", default=None, help="also write OUT.json and OUT.md")
    args = ap.parse_args(argv)
    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"error: --size must be HxW, got {args.size!r}", file=sys.stderr)
        return 2
    path = onnx_path(args.model, args.precision)
    if not path.is_file():
        print(f"error: {path} not found", file=sys.stderr)
        return 2
    try:
        import openvino  # noqa: F401
    except ImportError:
        print('error: the profile needs OpenVINO: pip install ".[cpu]"', file=sys.stderr)
        return 2
    r = profile(path, args.precision, args.batch, h, w, args.repeat)
    md = to_markdown(r)
    print(md)
    if args.out:
        import json

        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(r, indent=1) + "\n")
        out.with_suffix(".md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
