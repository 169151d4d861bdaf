"""Where training runs (``colorize train colorize --device cpu|cuda|auto``) and what that changes.

* ``cpu`` (the default) is the path every earlier run took; ``cuda`` needs a CUDA build of torch and a GPU;
  ``auto`` is ``cuda`` when one is available, else ``cpu``.
* Autocast is bf16 on either device (AMX on the CPU; tensor cores on the GPU); weights and optimizer stay fp32.
* Everything written to disk is CPU tensors (``to_cpu``), and states are read with ``map_location="cpu"``; the
  model is moved to the device before the optimizer is made, and ``Optimizer.load_state_dict`` moves each state
  tensor to its parameter's device, so a state written on one device resumes on the other.
* Random draws (batch order, flips, gray methods) come from CPU generators on every device, so a run sees the
  same data whichever device it trains on.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(name: str) -> torch.device:
    """The torch device for ``--device`` (``cpu``, ``cuda``, ``cuda:N`` or ``auto``).

    Raises:
        ValueError: an unknown name, or ``cuda`` where torch sees no CUDA device (the message says why).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = torch.version.cuda
            why = "this torch is a CPU build" if not build else f"torch (CUDA {build}) sees no CUDA device"
            raise ValueError(f"--device {name}: {why}; use --device cpu or auto")
        return torch.device(name)
    raise ValueError(f"--device must be one of {', '.join(DEVICES)} (or cuda:N), got {name!r}")


def prepare(device: torch.device) -> None:
    """Per-device settings: on CUDA, cuDNN picks its fastest kernels for the (fixed) training shapes, and fp32
    matmuls outside autocast may use TF32."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def autocast(device: torch.device | str, enabled: bool):
    """bf16 autocast on ``device``'s type (a no-op context when not ``enabled``)."""
    kind = torch.device(device).type
    return torch.autocast(kind, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def to_cpu(obj: Any) -> Any:
    """``obj`` (a state: nested dicts, lists, tuples) with every tensor copied to the CPU, for ``torch.save``."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device``: on CUDA copied from pinned memory without blocking (the copy overlaps what the
    GPU is doing); unchanged on the CPU."""
    if device.type != "cuda":
        return images
    return images.pin_memory().to(device, non_blocking=True)


def device_name(device: torch.device) -> str:
    """"cpu" or the GPU's name, e.g. "NVIDIA H200"."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
