"""Ship a trained checkpoint into ``models/weights/`` (fp16, <= 32 MB) with its metrics.

    python -m colorize.training.ship runs/colorize-resnet18-unet/model.json models/weights/resnet18-unet \\
        [--metrics eval.json] [--name resnet18-unet]
    python -m colorize.training.ship - models/weights/efficientnet_lite0-unet-photos --update \\
        --metrics photos=photos.json --metrics cifar_model_on_photos=photos-cifar.json

Weights are stored as fp16 safetensors (cast back to fp32 at load); the JSON
keeps the source checkpoint's architecture, normalization, data and training
record, plus the ``colorize evaluate`` results when given (``--metrics FILE``, or several
``--metrics KEY=FILE`` gathered under their keys). ``--metrics`` only
(with ``--update``) rewrites the metrics of an already shipped model without
touching its weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from colorize.fsutil import atomic_write_text

MAX_BYTES = 32 * 1024 * 1024


def ship(src: str, dest: str, metrics: dict | None = None, name: str | None = None,
         min_working_size: int | None = None) -> Path:
    """Copy checkpoint ``src`` to ``dest`` in fp16. Raises ValueError when the weights exceed 32 MB.

    ``min_working_size``: recorded as ``inference.min_working_size``, the size ``colorize.Colorizer`` enlarges
    smaller images to (for a model trained on small images enlarged)."""
    import torch

    from colorize.models.checkpoint import checkpoint_paths, load_checkpoint, normalization_of, save_checkpoint

    model, meta = load_checkpoint(src)
    extra = {k: v for k, v in meta.items() if k in ("training", "inference")}
    if min_working_size is not None:
        if min_working_size < 0:
            raise ValueError(f"min_working_size must be >= 0, got {min_working_size}")
        extra["inference"] = {**extra.get("inference", {}), "min_working_size": int(min_working_size)}
    extra["name"] = name or Path(dest).name
    extra["source_metrics"] = meta.get("metrics", {})
    json_path = save_checkpoint(
        model, dest, arch=meta["arch"], arch_kwargs=meta.get("arch_kwargs"),
        normalization=normalization_of(meta) if meta.get("kind") == "colorizer" else None,
        data=meta.get("data"), metrics=metrics or {}, dtype=torch.float16, extra=extra,
    )
    for f in checkpoint_paths(json_path):
        os.chmod(f, 0o644)  # repository files, not private temp files
    size = checkpoint_paths(json_path)[1].stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"{dest}: weights are {size / 2**20:.1f} MiB, over the 32 MiB limit")
    return json_path


def update_metrics(dest: str, metrics: dict) -> Path:
    """Replace the ``metrics`` field of a shipped checkpoint's JSON (weights untouched)."""
    from colorize.models.checkpoint import checkpoint_paths, read_metadata

    meta = read_metadata(dest)
    meta["metrics"] = metrics
    json_path = checkpoint_paths(dest)[0]
    atomic_write_text(json_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return json_path


def read_metrics(specs: list[str]) -> dict | None:
    """``["eval.json"]`` -> its content; ``["a=x.json", "b=y.json"]`` -> ``{"a": ..., "b": ...}``."""
    if not specs:
        return None
    keyed = [s.partition("=") for s in specs]
    if len(specs) == 1 and not keyed[0][1]:
        return json.loads(Path(specs[0]).read_text())
    if not all(sep and key for key, sep, _ in keyed):
        raise SystemExit("--metrics: give one FILE, or KEY=FILE for each of several")
    return {key: json.loads(Path(f).read_text()) for key, _, f in keyed}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", help="checkpoint .json to ship (ignored with --update)")
    p.add_argument("dest", help="destination stem, e.g. models/weights/resnet18-unet")
    p.add_argument("--metrics", action="append", default=[],
                   help="JSON results of colorize evaluate to record: FILE, or KEY=FILE (repeatable)")
    p.add_argument("--name", default=None)
    p.add_argument("--min-working-size", type=int, default=None,
                   help="record inference.min_working_size: the Colorizer enlarges smaller images to this long side")
    p.add_argument("--update", action="store_true", help="only rewrite the metrics of dest")
    a = p.parse_args(argv)
    metrics = read_metrics(a.metrics)
    out = update_metrics(a.dest, metrics or {}) if a.update else ship(a.src, a.dest, metrics, a.name, a.min_working_size)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
