"""Triton kernels run on the CPU here through the interpreter.

``TRITON_INTERPRET`` is read when ``@triton.jit`` decorates a kernel, i.e. when
a ``kernels.*`` module is first imported, so it is set here, before the test
modules of this folder import them. If a kernel module was already imported
without it (and there is no GPU), it is reloaded.
"""

import importlib
import os
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

if not torch.cuda.is_available():
    for name in ("kernels.residual_epilogue", "kernels.conv3x3", "kernels.fused_blocks"):
        if name in sys.modules:
            importlib.reload(sys.modules[name])


@pytest.fixture
def device() -> str:
    """Where the kernels run: the GPU when there is one, else the CPU (interpreter)."""
    return "cuda" if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1" else "cpu"
