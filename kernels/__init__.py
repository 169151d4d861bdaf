"""Triton kernels for the ResNet residual path, each with its torch reference.

* ``colorize.kernels.residual_epilogue``: folded-BN bias + residual add + ReLU in one pass.
* ``colorize.kernels.conv3x3``: implicit-GEMM 3x3 conv with that epilogue fused.
* ``colorize.kernels.fused_blocks``: swap a BN-folded model's residual blocks for fused ones.

Importing a kernel module imports triton (``pip install ".[triton]"``).
On a machine without a GPU the kernels run only with ``TRITON_INTERPRET=1`` set
before the first import (the tests do this in ``tests/kernels/conftest.py``).
"""
