"""Serve colorization over HTTP (FastAPI + uvicorn; pip install ".[serve]").

    colorize serve                                   # 127.0.0.1:8000, efficientnet_lite0-unet-photos, backend auto
    colorize serve --port 9000 --max-batch-size 16 --max-delay-ms 10
    COLORIZE_PORT=9000 COLORIZE_MAX_PIXELS=50000000 colorize serve

    curl --data-binary @gray.jpg http://127.0.0.1:8000/colorize -o color.png
    curl -F image=@gray.jpg 'http://127.0.0.1:8000/colorize?format=jpeg' -o color.jpg
    curl http://127.0.0.1:8000/openapi.json          # the API: bodies, formats, every status

A raw body is read as an image whatever its Content-Type (the format is
recognised from its bytes), so curl's default for --data-binary works.

    python -c "import secrets; print(secrets.token_urlsafe(32))" > keys.txt
    colorize serve --host 0.0.0.0 --api-key-file keys.txt    # keys required on /colorize and /metrics
    KEY=$(head -n 1 keys.txt) HOST=127.0.0.1                  # from another machine: this one's address
    curl -H "Authorization: Bearer $KEY" --data-binary @gray.jpg http://$HOST:8000/colorize -o color.png

API keys (--api-key-file, one per line) are read once at start. A host other
than loopback (127.0.0.0/8, ::1, localhost) without keys is refused (exit 2)
unless --insecure-no-auth. Clients share the server fairly: one alone may use
all of it; several take turns for places in a batch; when it is full, the one
holding the most requests gets 429. A client is its API key; without keys all
requests are one client, unless --client-id address (the TCP peer) or
--client-id forwarded --trusted-proxy ADDRESS (X-Forwarded-For from that proxy).

Exit status: 0 stopped cleanly (SIGTERM), 130 Ctrl-C, 2 usage error (a bad
option, key file or model), 3 could not listen (the port is in use, say).

Every option can also be set by an environment variable COLORIZE_<OPTION>
(e.g. COLORIZE_MAX_BATCH_SIZE); flags win. The model is loaded before the
server starts listening; /readyz turns 200 after the warm-up. SIGINT/SIGTERM
stop accepting connections, finish in-flight and queued requests
(--shutdown-timeout-s), then exit.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import fields

from colorize.serve.config import CLIENT_ID_MODES, MALLOC_MODES, OUTPUT_FORMATS, ServeConfig

_HELP = {
    "host": "address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it to the network, and any "
            "address but loopback needs --api-key-file or --insecure-no-auth)",
    "port": "TCP port (default 8000; 0 picks a free one)",
    "no_ui": "serve no page at / (by default a browser page there colorizes photos through the API)",
    "api_key_file": "file of API keys, one per line ('#' comments, blank lines skipped), read at start; then "
                    "/colorize and /metrics need 'Authorization: Bearer <key>' (401 otherwise)",
    "insecure_no_auth": "allow a --host other than loopback without --api-key-file: anyone who reaches the port "
                        "can use it",
    "client_id": "what tells clients apart for their fair share (default auto: the API key; without keys, all "
                 "requests are one client; address: the TCP peer; forwarded: X-Forwarded-For from --trusted-proxy; "
                 "single: all one client, first come first served)",
    "trusted_proxy": "with --client-id forwarded: the reverse proxy (comma-separated addresses or networks, e.g. "
                     "10.0.0.1) whose X-Forwarded-For is believed; from anyone else the header is ignored",
    "max_concurrent_per_client": "hard cap on /colorize requests in flight per client, then 429 (default 0: none; "
                                 "a client alone may fill the server, and clients take turns when several wait)",
    "model": "shipped model name, checkpoint or .onnx path (default efficientnet_lite0-unet-photos)",
    "backend": "inference backend (default auto)",
    "precision": "precision (default auto)",
    "working_size": "long side the model runs at (default: the Colorizer's)",
    "small_model": "model for images whose long side is at most --small-max-side, run at their size (default auto: "
                   "resnet18-unet with the default model, none with any other; none: every image on --model)",
    "small_max_side": "long side, px, up to which --small-model takes an image (default 32)",
    "colour_strength": "the predicted chroma times this, 0..4 (default 1: the model's own; 0 gray, above 1 more "
                       "saturated); a request's ?strength= overrides it",
    "max_batch_size": "most images per engine.run (default 8)",
    "max_delay_ms": "longest wait for a batch to fill, in ms (default 5)",
    "max_queue_size": "requests waiting for the engine (default 64); the server is full at this plus "
                      "--max-batch-size in flight: then the client holding the most gets 429",
    "timeout_s": "per-request limit for queueing + inference, s (default 30; then 504)",
    "max_upload_bytes": "largest request body, bytes (default 33554432 = 32 MiB; then 413)",
    "max_pixels": "largest image, width*height (default 25000000; then 413)",
    "default_format": f"output when neither ?format= nor Accept chooses ({', '.join(OUTPUT_FORMATS)}; default png)",
    "jpeg_quality": "JPEG/WebP quality (default 90)",
    "retry_after_s": "Retry-After seconds sent with 503 and 429 (default 1)",
    "io_threads": "threads that decode and encode images (default min(4, CPUs))",
    "malloc": "allocator setup (default tuned: cap glibc malloc arenas at 2 and fix its mmap threshold, so RSS "
              "stays bounded under load; MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_ in the environment win); the "
              "mode named default leaves glibc malloc as it is",
    "warmup": "warm-up passes before ready (default 2)",
    "shutdown_timeout_s": "graceful shutdown limit, s (default 30)",
    "log_level": "uvicorn log level (default info)",
}


_CHOICES = {"default_format": OUTPUT_FORMATS, "malloc": MALLOC_MODES, "client_id": CLIENT_ID_MODES}
#: uvicorn's exit status when it cannot start listening (the port in use, an address not on this machine)
EXIT_CANNOT_LISTEN = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for f in fields(ServeConfig):
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        help = _HELP.get(f.name, "") + f" [env COLORIZE_{f.name.upper()}]"
        if kind == "bool":  # a switch: absent leaves the environment's value (or the default) in place
            parser.add_argument("--" + f.name.replace("_", "-"), action="store_true", default=None, help=help)
            continue
        type_ = int if kind.startswith("int") else float if kind.startswith("float") else str
        kwargs = {"choices": _CHOICES[f.name]} if f.name in _CHOICES else {}
        parser.add_argument(
            "--" + f.name.replace("_", "-"), type=type_, default=None, metavar=f.name.upper(), help=help, **kwargs,
        )


def main(args: argparse.Namespace) -> int:
    try:
        config = ServeConfig.from_sources(**{f.name: getattr(args, f.name, None) for f in fields(ServeConfig)})
    except ValueError as e:
        print(f"colorize serve: {e}", file=sys.stderr)
        return 2
    api_keys = None
    if config.api_key_file is not None:
        from colorize.serve.auth import load_api_keys

        try:
            api_keys = load_api_keys(config.api_key_file)
        except ValueError as e:
            print(f"colorize serve: {e}", file=sys.stderr)
            return 2
    if not config.loopback_only and api_keys is None and not config.insecure_no_auth:
        print(f"colorize serve: refusing to listen on {config.host} without API keys: anyone who can reach the port "
              "could use this machine's CPU and read /metrics. Give keys with --api-key-file PATH (or "
              "COLORIZE_API_KEY_FILE), or accept the risk with --insecure-no-auth. Loopback (127.0.0.1, ::1, "
              "localhost) needs neither.", file=sys.stderr)
        return 2

    # Before the backends start their threads: arenas created earlier are not capped (engine/serve/allocator.py).
    malloc_note = "malloc left as glibc sets it"
    if config.malloc == "tuned":
        from colorize.serve.allocator import configure

        malloc_note = configure().describe()

    from colorize.backends.base import BackendError, MissingDependency, require

    try:
        uvicorn = require("uvicorn", "serve")
        from colorize.colorizer import Colorizer
        from colorize.serve.service import create_app
    except MissingDependency as e:
        print(f"colorize serve: {e}", file=sys.stderr)
        return 2

    options = {"small_model": config.small_model, "small_max_side": config.small_max_side,
               "colour_strength": config.colour_strength}
    if config.working_size is not None:
        options["working_size"] = config.working_size
    from colorize.image import merge

    merge.choose_for(None)  # a service repays the compiled merge's load: on another thread, while the model loads
    try:
        colorizer = Colorizer.load(config.model, config.backend, config.precision, **options)
    except (ValueError, OSError, ImportError, BackendError) as e:  # e.g. no backend's extra; a failed INT8 build
        print(f"colorize serve: cannot load model {config.model!r}: {e}", file=sys.stderr)
        return 2
    engine = colorizer.engine
    small = (f" (images of long side <= {colorizer.small_max_side} px: {colorizer.describe_small()})"
             if colorizer.small_max_side else "")
    print(f"colorize serve: {config.model} on {engine.backend}/{engine.precision}{small}, "
          f"http://{config.host}:{config.port}; {malloc_note}", file=sys.stderr)
    if api_keys is not None:
        print(f"colorize serve: {len(api_keys)} API key(s) from {config.api_key_file}, required on /colorize and "
              "/metrics", file=sys.stderr)
    print(f"colorize serve: {_clients(config, api_keys is not None)}", file=sys.stderr)
    if not config.loopback_only and api_keys is None:
        print(f"colorize serve: WARNING: listening on {config.host}, reachable from other machines; "
              "there is no authentication (--insecure-no-auth)", file=sys.stderr)
    elif not config.loopback_only:
        print(f"colorize serve: listening on {config.host} over plain HTTP: keys and images cross the network "
              "unencrypted unless a TLS reverse proxy is in front (docs/serving.md)", file=sys.stderr)

    app = create_app(lambda: colorizer, config, api_keys)  # a factory: the app closes the colorizer on shutdown
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it to the handler it found; with this one in
    # place, a SIGTERM-initiated shutdown that completed exits 0 instead of dying by the signal.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: None) if in_main else None
    try:
        # proxy_headers off: X-Forwarded-For is read by the service itself, only with --client-id forwarded and
        # only from --trusted-proxy (engine/serve/clients.py), never rewritten into the peer address by uvicorn.
        uvicorn.run(
            app, host=config.host, port=config.port, log_level=config.log_level, proxy_headers=False,
            timeout_graceful_shutdown=int(config.shutdown_timeout_s) or None,
        )
    except SystemExit as e:
        if e.code != EXIT_CANNOT_LISTEN:
            raise
        print(f"colorize serve: cannot listen on {config.host}:{config.port} (the error above: is the port in use?)",
              file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    print("colorize serve: stopped", file=sys.stderr)
    return 0


def _clients(config: ServeConfig, keys: bool) -> str:
    """What tells clients apart for their fair share, in words (the startup line)."""
    if config.client_id == "address":
        return "clients take turns, told apart by address (the TCP peer)"
    if config.client_id == "forwarded":
        return f"clients take turns, told apart by address (X-Forwarded-For believed from {config.trusted_proxy})"
    if config.client_id == "auto" and keys:
        return "clients take turns, told apart by API key"
    return "every request counts as one client, first come first served (--client-id address|forwarded to tell " \
           "clients apart)"
