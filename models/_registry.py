"""Model registry: builders register themselves with ``@register_model``;
``create_model(name, **kw)`` builds one; unknown names list the valid ones."""

from __future__ import annotations

from typing import Callable

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
