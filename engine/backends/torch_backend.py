"""Eager PyTorch backend: the FP32 reference every other backend is compared with."""

from __future__ import annotations

import threading

import numpy as np

from colorize import cpu
from colorize.artifacts.model_ref import ModelRef
from colorize.artifacts.eager import build_torch_model
from colorize.backends.base import Backend, BackendError, require


class TorchBackend(Backend):
    name = "torch"
    precisions = ("fp32", "bf16")
    thread_safe = True  # inference-mode forward of an eval() module holds no mutable state

    @classmethod
    def available(cls) -> str | None:
        import importlib.util

        return None if importlib.util.find_spec("torch") else 'torch is not installed (pip install ".[torch]")'

    @classmethod
    def precision_unavailable(cls, precision: str) -> str | None:
        return cpu.precision_missing(precision)  # autocast bf16 without native bf16 is emulated, slower than fp32

    def __init__(self, ref: ModelRef, precision: str = "fp32", num_threads: int | None = None):
        super().__init__(precision)
        missing = self.precision_unavailable(precision)
        if missing:
            raise BackendError(missing)
        torch = require("torch", "torch")
        if num_threads:
            torch.set_num_threads(num_threads)
        self.torch = torch
        self.model = build_torch_model(ref)
        self._lock = threading.Lock()

    def _run(self, l: np.ndarray) -> np.ndarray:
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(l, dtype=np.float32))
        with torch.inference_mode():
            if self.precision == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    y = self.model(x)
            else:
                y = self.model(x)
        return y.float().numpy()
