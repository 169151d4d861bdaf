"""The HTTP service behind ``colorize serve`` (FastAPI; the ``serve`` extra).

    app = create_app(lambda: Colorizer.load("efficientnet_lite0-unet-photos"), ServeConfig())
    uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints (described by ``GET /openapi.json``, from ``engine/serve/openapi.py``):
  * ``POST /colorize``: image bytes as the raw body (recognised by their
    signature, whatever the Content-Type) or as a multipart file part
    (``image`` or ``file``, else the first file); returns the colorized
    image as PNG, JPEG or WebP, chosen by ``?format=`` or the ``Accept``
    header (default ``ServeConfig.default_format``).
  * ``GET /healthz``: 200 while the process serves HTTP.
  * ``GET /readyz``: 200 once the model is loaded and warmed up, else 503.
  * ``GET /metrics``: Prometheus text (requests by path and status, latency,
    batch sizes, queue depth, in-flight requests).
  * ``GET /``: a page that colorizes photos in the browser through
    ``/colorize`` (``engine/serve/ui.py``; not in the OpenAPI document;
    ``ServeConfig.no_ui`` turns it off).

Access (``engine/serve/auth.py``): with API keys (``ServeConfig.api_key_file``,
or ``api_keys``), ``/colorize`` and ``/metrics`` need ``Authorization: Bearer
<key>`` (401 + ``WWW-Authenticate`` otherwise); ``/healthz``, ``/readyz`` and
the OpenAPI document stay open.

Fairness (``engine/serve/fairness.py``): a client (``engine/serve/clients.py``:
its key; without keys, all requests are one client unless ``client_id`` says
otherwise) may use the whole server alone; clients take turns for the decode and
encode threads and for places in a batch. When the server is full, the client
holding the most gives way (429 + Retry-After).

Errors are JSON ``{"error": ..., "status": ...}``: 400 corrupt image or bad
request, 401 no or wrong API key, 406 no acceptable output format, 413 body
over ``max_upload_bytes`` (from Content-Length before reading, or while
streaming a chunked body) or image over ``max_pixels`` (from the header, before
decoding), 415 not an image Pillow can read, 429 + Retry-After when the
server is full and this client holds the most (or is at the optional per-client
cap), 503 + Retry-After when overloaded, not ready or shutting down,
504 request timeout, 500 anything else.

Inference goes through ``colorize.serve.batcher.DynamicBatcher``: decode and
``Colorizer.prepare`` run in the service's own pool of ``io_threads``
threads, requests of the same working shape are batched into one
``engine.run``, ``finish`` and encoding run in the pool again.

Memory: ``colorize serve`` sets glibc malloc up first (``engine/serve/allocator.py``:
two arenas, a fixed mmap threshold), which keeps RSS bounded under sustained
load (``benchmarks/soak.py``); an application serving ``create_app`` itself
can call ``colorize.serve.allocator.configure()`` before anything starts threads.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations (``Request``), which are
# imported inside ``create_app`` so that importing this module does not need fastapi.
import asyncio
import logging
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np

from colorize.backends.base import require
from colorize.serve import openapi as api_doc
from colorize.serve.auth import CHALLENGE, CHALLENGE_INVALID, ApiKeys, bearer_token, load_api_keys
from colorize.serve.batcher import BatcherClosed, DynamicBatcher, Overloaded, RequestTimeout, colorizer_batcher
from colorize.serve.clients import ClientId
from colorize.serve.config import ServeConfig
from colorize.serve.fairness import Admission, Displaced, FairPool, Refused
from colorize.serve.http_io import MIME, HTTPProblem, choose_format, decode_image, encode_image, image_bytes
from colorize.serve.metrics import CONTENT_TYPE, Registry
from colorize.serve.ui import add_ui_routes

log = logging.getLogger("colorize.serve")

_PATHS = ("/colorize", "/healthz", "/readyz", "/metrics")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


# -- application state ---------------------------------------------------------


class _Service:
    """The colorizer, its batcher, readiness and metrics of one app."""

    def __init__(self, colorizer_or_factory: Any, config: ServeConfig, api_keys: ApiKeys | None = None):
        self.config = config
        self.api_keys = api_keys
        if hasattr(colorizer_or_factory, "prepare"):
            self._factory, self.colorizer, self.owned = None, colorizer_or_factory, False
        elif callable(colorizer_or_factory):
            self._factory, self.colorizer, self.owned = colorizer_or_factory, None, True
        else:
            raise TypeError("create_app needs a Colorizer or a callable returning one")
        self.batcher: DynamicBatcher | None = None
        # Decode/prepare and merge/encode run on these few long-lived threads, not on one thread per request
        # (Starlette's pool allows 40, started and stopped as load comes and goes): at most io_workers images are
        # being decoded or encoded at once, and malloc sees the same few threads for the life of the process.
        self.io_pool: FairPool | None = None  # clients take turns for it
        self.state = "loading"  # loading -> ready -> stopping; or failed
        self.error: str | None = None
        self.client_id = ClientId(config.client_id, config.trusted_proxy)
        self.admission = Admission(config.max_queue_size + config.max_batch_size, config.max_concurrent_per_client)
        self._lock = threading.Lock()

        m = self.metrics = Registry()
        self.requests = m.counter(
            "colorize_http_requests_total", "HTTP requests by path and status", ["path", "status"]
        )
        self.latency = m.histogram(
            "colorize_request_duration_seconds", "POST /colorize latency (all statuses)", LATENCY_BUCKETS
        )
        self.batch_size = m.histogram("colorize_batch_size", "images per engine.run", [2**i for i in range(0, 9)])
        self.batch_seconds = m.histogram(
            "colorize_batch_duration_seconds", "engine.run time per batch", LATENCY_BUCKETS
        )
        m.gauge(
            "colorize_queue_depth", "requests queued for the engine",
            fn=lambda: self.batcher.queue_depth if self.batcher else 0,
        )
        m.gauge("colorize_inflight_requests", "POST /colorize requests being handled", fn=lambda: self.inflight)
        m.gauge("colorize_clients_in_flight", "clients with POST /colorize requests being handled",
                fn=lambda: len(self.admission.held()))
        m.gauge("colorize_ready", "1 when the model is loaded and warmed up", fn=lambda: float(self.state == "ready"))

    # runs in a worker thread
    def start(self) -> None:
        try:
            self.io_pool = FairPool(self.config.io_workers, "colorize-io")
            if self.colorizer is None:
                self.colorizer = self._factory()
            self.batcher = colorizer_batcher(
                self.colorizer,
                max_batch_size=self.config.max_batch_size,
                max_delay_ms=self.config.max_delay_ms,
                # admit() bounds requests in flight to max_queue_size + max_batch_size before their body is
                # read; the batcher's own bound is that too, so a request admitted is never refused later
                # because the worker had not yet taken the previous batch off the queue.
                max_queue_size=self.config.max_queue_size + self.config.max_batch_size,
                timeout_s=self.config.timeout_s,
                on_batch=self._on_batch,
            )
            self._warm_up()
        except Exception as e:
            log.exception("model load / warm-up failed")
            self.error = f"{type(e).__name__}: {e}"
            self.state = "failed"
            return
        with self._lock:
            if self.state == "loading":
                self.state = "ready"
        log.info("ready: %r", getattr(self.colorizer, "engine", self.colorizer))

    def _on_batch(self, size: int, seconds: float) -> None:
        if self.state == "ready":
            self.batch_size.observe(size)
            self.batch_seconds.observe(seconds)

    def _warm_up(self) -> None:
        """One image, then full batches, through the whole path (first-call allocations, kernel selection),
        at the colorizer's working size (square; other shapes still pay their first call when they come)."""
        from PIL import Image

        if self.config.warmup <= 0:
            return
        side = int(getattr(self.colorizer, "working_size", 64))
        ramp = np.linspace(0, 255, side * side, dtype=np.float32).reshape(side, side).astype(np.uint8)
        image = Image.fromarray(ramp).convert("RGB")
        tiny = int(getattr(self.colorizer, "small_max_side", 0))  # the small-image model: loaded and warmed too
        for i in range(self.config.warmup):
            n = 1 if i == 0 else self.config.max_batch_size
            prepared = [self.colorizer.prepare(image) for _ in range(n)]
            if tiny:
                prepared.append(self.colorizer.prepare(image.resize((tiny, tiny))))
            futures = [self.batcher.submit(p, None) for p in prepared]
            for p, f in zip(prepared, futures):
                encode_image(self.colorizer.finish(p, f.result()), "png")

    # runs in a worker thread
    def stop(self) -> None:
        with self._lock:
            self.state = "stopping" if self.state != "failed" else self.state
        if self.batcher is not None:
            self.batcher.close(drain=True, timeout=self.config.shutdown_timeout_s)
        if self.io_pool is not None:
            self.io_pool.shutdown(wait=True)
        if self.owned and self.colorizer is not None:
            close = getattr(self.colorizer, "close", None)
            close = close or getattr(getattr(self.colorizer, "engine", None), "close", None)
            if close is not None:
                close()
        log.info("stopped")

    def authorize(self, request: Any) -> str:
        """The client ``request`` counts for (``ServeConfig.client_id``, ``engine/serve/clients.py``): by default
        its API key's identity (``ApiKeys.identify``), or one client for all without keys.

        Raises:
            HTTPProblem: 401 with ``WWW-Authenticate`` when keys are required and no key, or a wrong one, was sent.
        """
        key = None
        if self.api_keys is not None:
            token = bearer_token(request.headers.get("authorization"))
            if token is None:
                raise HTTPProblem(401, "API key required: send it as 'Authorization: Bearer <key>'",
                                  {"WWW-Authenticate": CHALLENGE})
            key = self.api_keys.identify(token)
            if key is None:
                raise HTTPProblem(401, "invalid API key", {"WWW-Authenticate": CHALLENGE_INVALID})
        peer = request.client.host if request.client else None
        return self.client_id(key, peer, request.headers.getlist("x-forwarded-for"))

    @property
    def inflight(self) -> int:
        """``POST /colorize`` requests admitted and not yet answered."""
        return self.admission.total

    def admit(self, client: str = "") -> None:
        """Refuse a request before reading its body when not ready (503), or when the server is full and
        ``client`` holds the most (429; ``fairness.Admission``, which may displace another client's queued
        request instead)."""
        retry = {"Retry-After": str(self.config.retry_after_s)}
        if self.state != "ready":
            what = {"loading": "the model is loading", "stopping": "the server is shutting down"}.get(
                self.state, f"the model failed to load ({self.error})"
            )
            raise HTTPProblem(503, f"not ready: {what}", retry)

        def displace(other: str) -> bool:
            return self.batcher.evict_newest(other, Displaced(
                "the server was full and this client held the most requests in flight: this one, not yet "
                "started, gave way to another client's"))

        try:
            self.admission.admit(client, displace)
        except Refused as e:
            raise HTTPProblem(e.status, e.message, retry) from None

    def release(self, client: str = "") -> None:
        self.admission.release(client)


class _MetricsMiddleware:
    """Pure ASGI middleware: counts responses by path and status, times POST /colorize."""

    def __init__(self, app: Any, service: _Service):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        path = path if path in _PATHS else "other"
        status = {"code": 500}
        t0 = time.perf_counter()

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.service.requests.inc(path=path, status=str(status["code"]))
            if path == "/colorize":
                self.service.latency.observe(time.perf_counter() - t0)


# -- the app -----------------------------------------------------------------


def create_app(
    colorizer_or_factory: Any | Callable[[], Any], config: ServeConfig | None = None, api_keys: ApiKeys | None = None
):
    """The FastAPI app serving ``colorizer_or_factory``.

    Args:
        colorizer_or_factory: an ``colorize.Colorizer`` (or an object with its
            ``prepare`` / ``finish`` / ``engine.run`` contract), left open on
            shutdown; or a callable returning one, called in a thread at
            startup, whose result is closed on shutdown.
        config: limits, batching and access (default ``ServeConfig()``).
        api_keys: the keys ``/colorize`` and ``/metrics`` require; None: those of ``config.api_key_file``, read
            now, or none when it is None.

    Raises:
        MissingDependency: fastapi is not installed (``pip install ".[serve]"``).
        ValueError: ``config.api_key_file`` cannot be read or holds no key.
    """
    require("fastapi", "serve")
    from fastapi import FastAPI

    config = config or ServeConfig()
    if api_keys is None and config.api_key_file is not None:
        api_keys = load_api_keys(config.api_key_file)
    service = _Service(colorizer_or_factory, config, api_keys)
    auth = api_keys is not None

    @asynccontextmanager
    async def lifespan(app):
        loader = asyncio.ensure_future(asyncio.to_thread(service.start))
        try:
            yield
        finally:
            await asyncio.wait([loader])
            await asyncio.to_thread(service.stop)

    app = FastAPI(
        title="colorize", version="0.1.0", lifespan=lifespan,
        description="Colorize grayscale images over HTTP: POST an image to /colorize, get it back in colour.",
    )
    app.state.service = service
    _document_components(app, auth)
    _add_health_routes(app, service, auth)
    _add_colorize_route(app, service, config, auth)
    if not config.no_ui:  # the browser page at / (engine/serve/ui.py); its files need no key
        add_ui_routes(app, config, auth)
    app.add_middleware(_MetricsMiddleware, service=service)
    return app


def _problem(e: HTTPProblem):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": e.message, "status": e.status}, status_code=e.status, headers=e.headers)


def _document_components(app, auth: bool) -> None:
    """The OpenAPI document with the shared schemas (and the bearer scheme when keys are on) added once."""
    generated_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generated_openapi()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(api_doc.COMPONENTS)
            if auth:
                schema["components"]["securitySchemes"] = api_doc.SECURITY_SCHEMES
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def _add_health_routes(app, service: _Service, auth: bool) -> None:
    """``/healthz`` (the process answers), ``/readyz`` (the model is loaded) and ``/metrics`` (Prometheus)."""
    from fastapi import Request
    from fastapi.responses import JSONResponse, PlainTextResponse

    @app.get("/healthz", openapi_extra=api_doc.healthz_operation())
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", response_class=JSONResponse, openapi_extra=api_doc.readyz_operation())
    async def readyz():
        body = {"status": service.state}
        if service.error:
            body["error"] = service.error
        if service.state == "ready":
            engine = getattr(service.colorizer, "engine", None)
            body.update(backend=getattr(engine, "backend", None), precision=getattr(engine, "precision", None))
        return JSONResponse(body, status_code=200 if service.state == "ready" else 503)

    @app.get("/metrics", response_class=PlainTextResponse, openapi_extra=api_doc.metrics_operation(auth))
    async def metrics(request: Request):
        try:
            service.authorize(request)
        except HTTPProblem as e:
            return _problem(e)
        return PlainTextResponse(service.metrics.render(), media_type=CONTENT_TYPE)


def _add_colorize_route(app, service: _Service, config: ServeConfig, auth: bool) -> None:
    """``POST /colorize``: admitted per client, decoded on the pool, batched, finished and encoded on the pool;
    every refusal is a problem document with its status."""
    from fastapi import Request
    from fastapi.responses import Response
    from starlette.requests import ClientDisconnect

    colorize_doc = api_doc.colorize_operation(auth, config.max_concurrent_per_client)

    # ``format`` is read from the query here, not declared as a FastAPI parameter: the document describes exactly
    # what the server does (an enum, 400 otherwise), with no FastAPI 422 validation response.
    @app.post("/colorize", response_class=Response, openapi_extra=colorize_doc)
    async def colorize(request: Request):
        try:
            client = service.authorize(request)  # first: a caller without a key learns nothing else
            query = request.query_params.get("format")
            fmt = choose_format(query, request.headers.get("accept"), config.default_format)
            strength = _strength(request.query_params.get("strength"))
            service.admit(client)
        except HTTPProblem as e:
            return _problem(e)
        try:
            body = await _colorize_upload(service, config, request, client, fmt, strength)
            return Response(body, media_type=MIME[fmt])
        except HTTPProblem as e:
            return _problem(e)
        except Overloaded as e:
            return _problem(HTTPProblem(503, f"overloaded: {e}", {"Retry-After": str(config.retry_after_s)}))
        except BatcherClosed as e:
            return _problem(HTTPProblem(503, f"shutting down: {e}", {"Retry-After": str(config.retry_after_s)}))
        except Displaced as e:
            return _problem(HTTPProblem(429, f"displaced: {e}", {"Retry-After": str(config.retry_after_s)}))
        except RequestTimeout:
            return _problem(HTTPProblem(504, f"not colorized within timeout_s={config.timeout_s:g} s"))
        except ClientDisconnect:  # the client went away while sending; nobody reads this (499 in the metrics)
            return Response(status_code=499)
        except Exception as e:
            log.exception("POST /colorize failed")
            return _problem(HTTPProblem(500, f"internal error: {type(e).__name__}"))
        finally:
            service.release(client)


async def _colorize_upload(service: _Service, config: ServeConfig, request, client: str, fmt: str,
                           strength: float | None) -> bytes:
    """One upload, colorized: read, decode and prepare (pool), batched inference, finish and encode (pool)."""
    data = await image_bytes(request, config.max_upload_bytes)

    def decode_and_prepare(data: bytes):
        image = decode_image(data, config.max_pixels)
        try:
            return service.colorizer.prepare(image)
        except (TypeError, ValueError) as e:  # e.g. a Pillow mode the colorizer does not handle
            raise HTTPProblem(415, f"unsupported image ({image.format} {image.mode}): {e}") from None

    prepared = await asyncio.wrap_future(service.io_pool.submit_for(client, decode_and_prepare, data))
    data = b""  # the upload is not needed any more while this request waits for the engine
    ab = await service.batcher.arun(prepared, client=client)

    def finish_and_encode():
        image = (service.colorizer.finish(prepared, ab) if strength is None
                 else service.colorizer.finish(prepared, ab, strength))
        return encode_image(image, fmt, config.jpeg_quality)

    return await asyncio.wrap_future(service.io_pool.submit_for(client, finish_and_encode))


def _strength(value: str | None) -> float | None:
    """``?strength=``: a colour strength for this request (None: the server's ``colour_strength``)."""
    if value is None:
        return None
    from colorize.artifacts.model_ref import MAX_COLOUR_STRENGTH
    from colorize.colorizer import check_strength

    try:
        return check_strength(value)
    except ValueError:
        raise HTTPProblem(400, f"strength={value!r}: expected a number in 0..{MAX_COLOUR_STRENGTH:g} (1: the model's "
                               "own colour)") from None
