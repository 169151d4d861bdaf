"""Model registry: builders register themselves with ``@register_model``;
``create_model(name, **kw)`` builds one; unknown names list the valid ones.

A colorizer's total stride (what H and W must be multiples of) is recorded, torch-free, in
``colorize.model_io.ARCH_STRIDES``, where the engine reads it without building the network; registering a
colorizer that is not there fails, so the table cannot fall behind the registry. ``model_stride(name, **kw)``
reads it. This module imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from colorize.model_io import ARCH_STRIDES, arch_stride

if TYPE_CHECKING:
    from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_KINDS: dict[str, str] = {}


def register_model(name: str | None = None, *, kind: str = "classifier"):
    """Register a builder under ``name`` (default: the function's name).

    ``kind`` is "classifier" or "colorizer" (colorizers map L[N,1,H,W] -> ab[N,2,H,W]).
    """

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} is already registered")
        if kind == "colorizer" and key not in ARCH_STRIDES:
            raise ValueError(f"colorizer {key!r} has no total stride in colorize.model_io.ARCH_STRIDES; add it there")
        _MODELS[key] = fn
        _KINDS[key] = kind
        return fn

    return decorator


def list_models(kind: str | None = None) -> list[str]:
    """Sorted names of registered models, optionally only one ``kind``."""
    return sorted(n for n in _MODELS if kind is None or _KINDS[n] == kind)


def model_kind(name: str) -> str:
    _check_name(name)
    return _KINDS[name]


def model_stride(name: str, **kwargs) -> int:
    """Total stride of the registered colorizer ``name`` built with ``kwargs`` (``colorize.model_io.arch_stride``).

    Raises:
        ValueError: ``name`` is not registered, or is not a colorizer.
    """
    if model_kind(name) != "colorizer":
        raise ValueError(f"model {name!r} is a {model_kind(name)}, not a colorizer")
    return arch_stride(name, kwargs)


def _check_name(name: str) -> None:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name.

    Raises:
        ValueError: ``name`` is not registered (the message lists the valid names).
    """
    _check_name(name)
    return _MODELS[name](**kwargs)
