"""Triton kernels run on the CPU here through the interpreter.

``TRITON_INTERPRET`` is read when ``@triton.jit`` decorates a kernel, i.e. when
a ``kernels.*`` module is first imported, so it is set here (only when there is
no CUDA device), before the test modules of this folder import them. If a
kernel module was already imported without it, it is reloaded. With a GPU the
same tests run the compiled kernels on CUDA tensors.
"""

import importlib
import os
import sys

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    for name in ("colorize.kernels.residual_epilogue", "colorize.kernels.conv3x3", "colorize.kernels.fused_blocks"):
        if name in sys.modules:
            importlib.reload(sys.modules[name])
pytest.importorskip("triton")


@pytest.fixture
def device(monkeypatch) -> str:
    """Where the kernels run: the GPU when there is one (TF32 off, so FP32 references are
    IEEE FP32), else the CPU (interpreter)."""
    if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
        return "cuda"
    return "cpu"
