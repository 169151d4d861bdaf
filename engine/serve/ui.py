"""The browser page of ``colorize serve``: ``GET /`` and its files, served from the package (no CDN, no build step).

    add_ui_routes(app, config, auth=api_keys is not None)     # create_app does this unless config.no_ui

The page (``engine/serve/static/``: HTML, CSS, JavaScript modules, an SVG icon) uploads photos to ``POST /colorize``
with the browser's ``fetch``, so everything the API enforces (keys, limits, per-client cap) applies to it as to any
client. Its own files need no key. What it needs to know about the server (whether keys are required, the strength
bounds, how many requests one client may have in flight) is written into ``<body data-*>`` when the app is built;
the Content-Security-Policy forbids inline scripts, so the page reads it from there.

Every response of the page carries ``SECURITY_HEADERS``: the page may load only its own origin's files and talk only
to its own origin (images it shows are that origin's answers, held as ``blob:`` URLs). The routes are left out of the
OpenAPI document, which stays about the API.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import Any

from colorize.artifacts.model_ref import MAX_COLOUR_STRENGTH
from colorize.serve.config import ServeConfig

#: Content-Security-Policy of the page: its own origin only; ``blob:`` images are the answers it already fetched
CSP = (
    "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
#: URL path -> (file in engine/serve/static/, media type); "/" is rendered from index.html
ASSETS = {
    "/ui/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/ui/zip.js": ("zip.js", "text/javascript; charset=utf-8"),
    "/ui/style.css": ("style.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
#: requests the page keeps in flight at most, below the server's per-client cap when there is one
PAGE_CONCURRENCY = 4


def static_file(name: str) -> bytes:
    """The bytes of ``engine/serve/static/<name>`` as installed (package data of ``colorize.serve``)."""
    return resources.files("colorize.serve").joinpath("static", name).read_bytes()


def render_page(config: ServeConfig, auth: bool) -> bytes:
    """``index.html`` with what the page's script needs to know about this server in ``<body data-*>``."""
    cap = config.max_concurrent_per_client
    settings = {
        "auth": "1" if auth else "0",
        "strength": f"{config.colour_strength:g}",
        "max-strength": f"{MAX_COLOUR_STRENGTH:g}",
        "concurrency": str(min(cap, PAGE_CONCURRENCY) if cap else PAGE_CONCURRENCY),
    }
    data = " ".join(f'data-{name}="{html.escape(value)}"' for name, value in settings.items())
    page = static_file("index.html").decode("utf-8")
    if "<body>" not in page:
        raise ValueError("engine/serve/static/index.html has no <body> tag to carry the page's settings")
    return page.replace("<body>", f"<body {data}>", 1).encode("utf-8")


def add_ui_routes(app: Any, config: ServeConfig, auth: bool) -> None:
    """Serve the page at ``GET /`` and its files on ``app`` (FastAPI), outside the OpenAPI document.

    The files are read once, here: a missing one fails now, not on a visitor's request.
    """
    from fastapi.responses import Response

    pages = {"/": (render_page(config, auth), "text/html; charset=utf-8")}
    pages.update({path: (static_file(name), media) for path, (name, media) in ASSETS.items()})

    def route(body: bytes, media_type: str):
        async def serve_file():
            return Response(body, media_type=media_type, headers=SECURITY_HEADERS)

        return serve_file

    for path, (body, media_type) in pages.items():
        app.add_api_route(path, route(body, media_type), methods=["GET"], include_in_schema=False)
