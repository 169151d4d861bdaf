"""Configuration of ``colorize serve``: a dataclass with commented defaults,
filled from environment variables, then command-line flags (flags win).

Every field ``name`` can be set by the variable ``COLORIZE_<NAME>`` (upper
case), e.g. ``COLORIZE_PORT=9000``, ``COLORIZE_MAX_BATCH_SIZE=16``, and by the
flag ``--name-with-dashes``. A boolean field is a switch (``--insecure-no-auth``)
and a variable of 1/true/yes/on or 0/false/no/off.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from colorize.artifacts.model_ref import DEFAULT_PHOTO_MODEL, MAX_COLOUR_STRENGTH, SMALL_IMAGE_MAX_SIDE
from colorize.serve import clients

ENV_PREFIX = "COLORIZE_"
OUTPUT_FORMATS = ("png", "jpeg", "webp")
MALLOC_MODES = ("tuned", "default")
CLIENT_ID_MODES = clients.MODES
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass
class ServeConfig:
    # -- network
    host: str = "127.0.0.1"  # loopback only by default; 0.0.0.0 exposes the service to the network
    port: int = 8000
    no_ui: bool = False  # True: no page at GET / (engine/serve/ui.py), only the API
    # -- access (engine/serve/auth.py)
    api_key_file: str | None = None  # keys, one per line, required on /colorize and /metrics; None: no keys
    insecure_no_auth: bool = False  # True: a host other than loopback may be bound without keys
    # whose fair share a request counts for (engine/serve/clients.py): auto (the API key; without keys, all one
    # client), address (the TCP peer), forwarded (X-Forwarded-For from trusted_proxy), single (all one client)
    client_id: str = "auto"
    trusted_proxy: str | None = None  # comma-separated proxy addresses/networks whose X-Forwarded-For is believed
    max_concurrent_per_client: int = 0  # hard cap on a client's /colorize requests in flight; 0: none (fair share)
    # -- model (as Colorizer.load)
    model: str = DEFAULT_PHOTO_MODEL  # shipped model name, checkpoint or .onnx path
    backend: str = "auto"
    precision: str = "auto"
    working_size: int | None = None  # None: the Colorizer's default
    small_model: str = "auto"  # model for images of long side <= small_max_side; "auto": the Colorizer's; "none"
    small_max_side: int = SMALL_IMAGE_MAX_SIDE
    colour_strength: float = 1.0  # the predicted chroma times this; a request's ?strength= overrides it
    # -- dynamic batching (colorize.serve.batcher.DynamicBatcher)
    max_batch_size: int = 8  # images per engine.run
    max_delay_ms: float = 5.0  # longest wait for a batch to fill after its first request
    max_queue_size: int = 64  # requests waiting; full at this + max_batch_size in flight (engine/serve/fairness.py)
    timeout_s: float = 30.0  # per-request limit for queueing + inference (504 after it)
    # -- limits
    max_upload_bytes: int = 32 * 1024 * 1024  # larger bodies get 413, checked before reading them
    max_pixels: int = 25_000_000  # width*height above this gets 413 (decompression bombs), checked on the header
    # -- responses
    default_format: str = "png"  # output when neither ?format= nor Accept picks one
    jpeg_quality: int = 90
    retry_after_s: int = 1  # Retry-After on 503 and 429
    # -- process
    io_threads: int | None = None  # threads that decode, prepare, merge and encode; None: min(4, CPUs)
    # tuned: glibc malloc capped at 2 arenas, fixed mmap threshold (engine/serve/allocator.py); default: glibc's own
    malloc: str = "tuned"
    warmup: int = 2  # warm-up passes (one single image, one full batch) before /readyz says ready
    shutdown_timeout_s: float = 30.0  # graceful shutdown: time to finish in-flight and queued requests
    log_level: str = "info"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the field and the bad value."""

        def check(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ValueError(f"serve config {name}={getattr(self, name)!r}: expected {expected}")

        check(0 <= self.port <= 65535, "port", "0..65535")
        check(self.working_size is None or self.working_size >= 1, "working_size", ">= 1 or None")
        check(self.small_max_side >= 0, "small_max_side", ">= 0")
        check(0 <= self.colour_strength <= MAX_COLOUR_STRENGTH, "colour_strength",
              f"0..{MAX_COLOUR_STRENGTH:g} (1: the model's own colour)")
        check(bool(self.small_model), "small_model", "a model name or path, auto or none")
        check(self.max_batch_size >= 1, "max_batch_size", ">= 1")
        check(self.max_delay_ms >= 0, "max_delay_ms", ">= 0")
        check(self.max_queue_size >= 1, "max_queue_size", ">= 1")
        check(self.timeout_s > 0, "timeout_s", "> 0")
        check(self.max_upload_bytes >= 1, "max_upload_bytes", ">= 1")
        check(self.max_pixels >= 1, "max_pixels", ">= 1")
        check(self.default_format in OUTPUT_FORMATS, "default_format", f"one of {', '.join(OUTPUT_FORMATS)}")
        check(1 <= self.jpeg_quality <= 100, "jpeg_quality", "1..100")
        check(self.retry_after_s >= 0, "retry_after_s", ">= 0")
        check(self.io_threads is None or self.io_threads >= 1, "io_threads", ">= 1 or None")
        check(self.malloc in MALLOC_MODES, "malloc", f"one of {', '.join(MALLOC_MODES)}")
        check(self.warmup >= 0, "warmup", ">= 0")
        check(self.shutdown_timeout_s >= 0, "shutdown_timeout_s", ">= 0")
        check(bool(self.host), "host", "a host name or address")
        check(self.api_key_file is None or bool(self.api_key_file), "api_key_file", "a file path or None")
        check(self.max_concurrent_per_client >= 0, "max_concurrent_per_client", ">= 0 (0: no cap)")
        check(self.client_id in clients.MODES, "client_id", f"one of {', '.join(clients.MODES)}")
        check(self.client_id != "forwarded" or bool(self.trusted_proxy), "client_id",
              "trusted_proxy set with forwarded: X-Forwarded-For is believed only from the proxy it names "
              "(e.g. --trusted-proxy 10.0.0.1)")
        check(self.trusted_proxy is None or self.client_id == "forwarded", "trusted_proxy",
              "None unless client_id is forwarded (the only mode that reads X-Forwarded-For)")
        if self.trusted_proxy is not None:
            try:
                clients.parse_proxies(self.trusted_proxy)
            except ValueError as e:
                raise ValueError(f"serve config trusted_proxy={self.trusted_proxy!r}: {e}") from None

    @property
    def io_workers(self) -> int:
        """Threads of the decode/encode pool."""
        return self.io_threads or min(4, os.cpu_count() or 1)

    @property
    def loopback_only(self) -> bool:
        """Whether ``host`` is loopback (127.0.0.0/8, ::1, localhost): the only hosts bound without API keys
        unless ``insecure_no_auth``."""
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @classmethod
    def from_sources(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "ServeConfig":
        """Defaults, then ``COLORIZE_*`` variables from ``environ`` (default
        ``os.environ``), then ``overrides`` whose value is not None (flags).

        Raises:
            ValueError: a variable that does not parse as its field's type, or a bad value.
        """
        environ = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            var = ENV_PREFIX + f.name.upper()
            if var in environ:
                kwargs[f.name] = _parse(f, environ[var], var)
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown serve config field(s): {', '.join(sorted(unknown))}")
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kwargs)


def _parse(f: dataclasses.Field, text: str, source: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    text = text.strip()
    try:
        if kind.endswith("| None") and text.lower() in ("", "none"):
            return None
        if kind.startswith("bool"):
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise ValueError
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float"):
            return float(text)
        return text
    except ValueError:
        expected = "1, true, yes, on, 0, false, no or off" if kind.startswith("bool") else kind.split(" |")[0]
        raise ValueError(f"{source}={text!r}: expected {expected}") from None
