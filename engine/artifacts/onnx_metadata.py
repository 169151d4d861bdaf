"""The colorize metadata stored in an exported ONNX file (``metadata_props``), torch-free.

Keys are prefixed ``colorize.``; values are strings (JSON for the dicts):

    colorize.format          "colorize-onnx/1"
    colorize.name            model name ("resnet18-unet")
    colorize.arch            registry architecture
    colorize.arch_kwargs     JSON dict
    colorize.normalization   JSON colorize.image.color.Normalization
    colorize.weights_sha256  identity of the weights the graph was exported from
    colorize.total_stride    H and W must be multiples of this
    colorize.weights_dtype   "fp32" or "fp16" (fp16 initializers + Cast)
    colorize.random_init     "true" / "false"
    colorize.min_working_size  the Colorizer enlarges smaller images to this long side (optional, default 0)
    colorize.io              JSON colorize.model_io.ModelIO: the model's I/O convention (optional; none: ours)

Read with onnxruntime's ``get_modelmeta()`` when installed (cheap), else ``onnx``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT = "colorize-onnx/1"
PREFIX = "colorize."


@dataclass
class OnnxMetadata:
    name: str
    arch: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    normalization: dict[str, float] = field(default_factory=dict)
    weights_sha256: str = ""
    total_stride: int = 8
    weights_dtype: str = "fp32"
    random_init: bool = False
    min_working_size: int = 0
    io: dict[str, Any] = field(default_factory=dict)

    def to_props(self) -> dict[str, str]:
        props = {PREFIX + "format": FORMAT}
        for k, v in asdict(self).items():
            if k == "io" and not v:
                continue
            if isinstance(v, dict):
                v = json.dumps(v, sort_keys=True)
            elif isinstance(v, bool):
                v = "true" if v else "false"
            props[PREFIX + k] = str(v)
        return props

    def write_to(self, proto) -> None:
        """Set the keys on an ``onnx.ModelProto`` (replacing those keys, keeping any others)."""
        props = self.to_props()
        keep = [p for p in proto.metadata_props if p.key not in props]
        del proto.metadata_props[:]
        proto.metadata_props.extend(keep)
        for k, v in props.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "ONNX file") -> "OnnxMetadata":
        """Parse the keys; raises ValueError naming ``source`` and the bad field."""
        if props.get(PREFIX + "format") != FORMAT:
            raise ValueError(
                f"{source}: not exported by 'colorize export' (metadata 'colorize.format' is "
                f"{props.get(PREFIX + 'format')!r}, expected {FORMAT!r})"
            )
        kw: dict[str, Any] = {}
        try:
            for key in ("name", "arch", "weights_sha256", "weights_dtype"):
                kw[key] = props[PREFIX + key]
            kw["arch_kwargs"] = json.loads(props.get(PREFIX + "arch_kwargs", "{}"))
            kw["normalization"] = json.loads(props[PREFIX + "normalization"])
            kw["total_stride"] = int(props[PREFIX + "total_stride"])
            kw["random_init"] = props.get(PREFIX + "random_init", "false") == "true"
            kw["min_working_size"] = int(props.get(PREFIX + "min_working_size", "0"))
            kw["io"] = json.loads(props.get(PREFIX + "io", "{}"))
        except KeyError as e:
            raise ValueError(f"{source}: metadata field {e.args[0]!r} is missing") from None
        except (ValueError, TypeError) as e:
            raise ValueError(f"{source}: malformed colorize metadata ({e})") from None
        if kw["total_stride"] < 1:
            raise ValueError(f"{source}: metadata 'colorize.total_stride' must be >= 1, got {kw['total_stride']}")
        return cls(**kw)


def read_props(path: str | os.PathLike) -> dict[str, str]:
    """The ONNX file's metadata_props as a dict.

    Raises:
        ValueError: not a loadable ONNX model (missing, empty, truncated, not ONNX); the message names the file.
    """
    from colorize.artifacts.onnx_props import read_metadata_props

    try:
        return read_metadata_props(path)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a loadable ONNX model ({e})") from None


def read_onnx_metadata(path: str | os.PathLike) -> OnnxMetadata:
    return OnnxMetadata.from_props(read_props(path), source=os.fspath(path))
