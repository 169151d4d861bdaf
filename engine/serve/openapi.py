"""The service's OpenAPI description: what ``POST /colorize`` takes (raw image
bytes or a multipart file part, ``?format=``) and every status it answers
with, each error as the JSON ``Problem`` schema; the health, readiness and
metrics endpoints. With API keys, the bearer security scheme on ``/colorize``
and ``/metrics`` and their 401; the 429 of ``/colorize`` (the server is full and
this client holds the most), with the per-client cap when one is set.

Plain dictionaries, merged into FastAPI's generated document by
``colorize.serve.service.create_app`` (``openapi_extra`` per route, the
``Problem`` schema under ``components``); nothing here imports fastapi.
"""

from __future__ import annotations

from typing import Any

from colorize.artifacts.model_ref import MAX_COLOUR_STRENGTH
from colorize.serve.http_io import FORMAT_NAMES, MIME, SNIFFED_TYPES

PROBLEM_REF = "#/components/schemas/Problem"

COMPONENTS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "An error: what went wrong, and the HTTP status again.",
        "properties": {
            "error": {"type": "string", "description": "what was wrong and what is expected instead"},
            "status": {"type": "integer", "description": "the HTTP status of the response"},
        },
        "required": ["error", "status"],
    },
    "Readiness": {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["loading", "ready", "stopping", "failed"]},
            "error": {"type": "string", "description": "why the model failed to load (status failed)"},
            "backend": {"type": ["string", "null"], "description": "inference backend (status ready)"},
            "precision": {"type": ["string", "null"], "description": "inference precision (status ready)"},
        },
        "required": ["status"],
    },
}

#: ``components.securitySchemes`` of a server with API keys
SECURITY_SCHEMES: dict[str, Any] = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key from the server's --api-key-file, sent as `Authorization: Bearer <key>`",
    }
}
_SECURITY = [{"apiKey": []}]

_BINARY = {"type": "string", "format": "binary"}
_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}}
}
_CHALLENGE = {
    "WWW-Authenticate": {
        "description": 'the scheme to use: `Bearer realm="colorize"`, with `error="invalid_token"` for a wrong key',
        "required": True,
        "schema": {"type": "string"},
    }
}
#: Raw request bodies documented by type; any other Content-Type is accepted as well (the format is sniffed).
RAW_REQUEST_TYPES = (*SNIFFED_TYPES, "application/octet-stream")


def _problem(description: str, headers: dict | None = None) -> dict[str, Any]:
    json_problem = {"application/json": {"schema": {"$ref": PROBLEM_REF}}}
    out: dict[str, Any] = {"description": description, "content": json_problem}
    if headers:
        out["headers"] = headers
    return out


COLORIZE_DESCRIPTION = """Colorize one image.

Send the image bytes as the raw request body, or as the file part `image` of a
`multipart/form-data` body. A raw body is read as an image whatever its `Content-Type` says
(`curl --data-binary` sends `application/x-www-form-urlencoded`): the format is recognised from the
bytes themselves (PNG, JPEG, GIF, WebP, BMP, TIFF, and any other format Pillow reads).

The response is the colorized image at the input's size: PNG, JPEG or WebP, chosen by `?format=`
(wins) or the `Accept` header, else the server's default (PNG unless configured otherwise).
"""


TOO_MANY = (
    "the server is full (max_queue_size + max_batch_size requests in flight) and this client (its API key; "
    "without keys, as the server's client_id says) holds the most of them: this request is refused, or, if it was "
    "queued and not yet started, it gave way to another client's"
)


def _unauthorized() -> dict[str, Any]:
    return _problem("no API key (`Authorization: Bearer <key>`), or not one of the server's keys", _CHALLENGE)


def colorize_operation(auth: bool = False, per_client_cap: int = 0) -> dict[str, Any]:
    """The ``POST /colorize`` operation: parameters, request body and responses; ``auth``: the server has API keys;
    ``per_client_cap``: its hard cap on requests in flight per client (0: none)."""
    part_types = ", ".join(RAW_REQUEST_TYPES)
    multipart = {
        "schema": {
            "type": "object",
            "properties": {"image": {**_BINARY, "description": "the image file"}},
            "required": ["image"],
            "description": "a form without an `image` file part is read from its `file` part, else its first file",
        },
        "encoding": {"image": {"contentType": part_types}},
    }
    op: dict[str, Any] = {
        "description": COLORIZE_DESCRIPTION,
        "parameters": [
            {
                "name": "format",
                "in": "query",
                "required": False,
                "description": "output format (jpg is jpeg); without it, the Accept header chooses",
                "schema": {"type": "string", "enum": list(FORMAT_NAMES)},
            },
            {
                "name": "strength",
                "in": "query",
                "required": False,
                "description": "colour strength: the predicted chroma times this (1: the model's own, 0: gray, "
                               "above 1: more saturated); without it, the server's --colour-strength",
                "schema": {"type": "number", "minimum": 0, "maximum": MAX_COLOUR_STRENGTH},
            },
        ],
        "requestBody": {
            "required": True,
            "description": "the image, as raw bytes or as a multipart file part",
            "content": {**{t: {"schema": _BINARY} for t in RAW_REQUEST_TYPES}, "multipart/form-data": multipart},
        },
        "responses": {
            "200": {
                "description": "the colorized image",
                "content": {MIME[f]: {"schema": _BINARY} for f in MIME},
            },
            "400": _problem("empty body, corrupt image, bad multipart body, or a bad `format`, `strength` or Content-Length"),
            "406": _problem("the Accept header names no format the server writes (image/png, image/jpeg, "
                            "image/webp, image/*, */*)"),
            "413": _problem("body over max_upload_bytes, or image over max_pixels (checked on its header)"),
            "415": _problem("the body is not an image this server can read"),
            "499": {"description": "the client went away while sending (counted in /metrics; nobody reads it)"},
            "500": _problem("unexpected server error"),
            "429": _problem(TOO_MANY, {"Retry-After": {**_RETRY_AFTER["Retry-After"], "required": True}}),
            "503": _problem("not ready (loading, failed to load, shutting down), or full with no request of a "
                            "client holding more waiting to give way", _RETRY_AFTER),
            "504": _problem("not colorized within the server's timeout_s"),
        },
    }
    if auth:
        op["responses"]["401"] = _unauthorized()
        op["security"] = _SECURITY
    if per_client_cap:
        op["responses"]["429"]["description"] += (f"; or this client already has {per_client_cap} requests in "
                                                  "flight (max_concurrent_per_client)")
    return op


def healthz_operation() -> dict[str, Any]:
    schema = {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}
    return {
        "description": "200 while the process serves HTTP (liveness).",
        "responses": {"200": {"description": "alive", "content": {"application/json": {"schema": schema}}}},
    }


def readyz_operation() -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}
    return {
        "description": "200 once the model is loaded and warmed up, else 503 (readiness).",
        "responses": {
            "200": {"description": "ready: the backend and precision in use", "content": content},
            "503": {"description": "loading, stopping, or failed (with the error)", "content": content},
        },
    }


def metrics_operation(auth: bool = False) -> dict[str, Any]:
    """``GET /metrics``; ``auth``: the server has API keys (then they are required here too)."""
    op: dict[str, Any] = {
        "description": "Prometheus text exposition (format 0.0.4): requests by path and status, latency, "
        "batch sizes, queue depth, requests in flight, readiness.",
        "responses": {"200": {"description": "the metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}},
    }
    if auth:
        op["responses"]["401"] = _unauthorized()
        op["security"] = _SECURITY
    return op
