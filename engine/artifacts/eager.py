"""The eager PyTorch module of a resolved model: what the torch backends run and what export traces."""

from __future__ import annotations

import warnings

from colorize.artifacts.model_ref import ModelRef
from colorize.deps import require


def build_torch_model(ref: ModelRef):
    """The eager nn.Module for ``ref`` (checkpoint weights, or random init with a warning)."""
    require("torch", "torch")
    if ref.checkpoint is not None:
        from colorize.models.checkpoint import load_checkpoint

        model, _ = load_checkpoint(ref.checkpoint)
        return model
    if ref.random_init:
        import torch

        from colorize.models import create_model

        warnings.warn(f"model {ref.name!r} has no trained weights here: using a random init (seed 0)", stacklevel=3)
        torch.manual_seed(0)
        return create_model(ref.arch, **ref.arch_kwargs).eval()
    raise ValueError(f"the torch backend needs a checkpoint or an architecture name, got {ref.onnx}")
