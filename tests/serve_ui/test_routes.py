"""The page's routes without a browser: what ``GET /`` and its files answer, their headers, the settings written into
the page, ``--no-ui`` / ``COLORIZE_NO_UI``, and that the files the page loads are the files served and shipped.

The app is called in process (httpx's ASGI transport, no lifespan): nothing here loads a model.
"""

import argparse
import asyncio
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install '.[serve]'")
httpx = pytest.importorskip("httpx", reason="needs httpx (the dev extra)")

from colorize.cli.serve import add_arguments  # noqa: E402
from colorize.serve.auth import ApiKeys  # noqa: E402
from colorize.serve.config import ServeConfig  # noqa: E402
from colorize.serve.service import create_app  # noqa: E402
from colorize.serve.ui import ASSETS, CSP, SECURITY_HEADERS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "engine" / "serve" / "static"
PAGE_PATHS = ["/", *ASSETS]


def get(app, *paths: str, headers: dict | None = None) -> list[httpx.Response]:
    async def fetch():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return [await client.get(p, headers=headers) for p in paths]

    return asyncio.run(fetch())


def app_with(api_keys: ApiKeys | None = None, **config):
    return create_app(lambda: None, ServeConfig(warmup=0, **config), api_keys)  # the factory is never called


def test_the_page_and_its_files_are_served_with_security_headers():
    for path, response in zip(PAGE_PATHS, get(app_with(), *PAGE_PATHS)):
        assert response.status_code == 200, path
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (path, name)
        assert response.content, path
    page, script, zip_js, css, icon = get(app_with(), "/", "/ui/app.js", "/ui/zip.js", "/ui/style.css",
                                          "/favicon.svg")
    assert page.headers["content-type"] == "text/html; charset=utf-8" and "<title>colorize</title>" in page.text
    assert script.headers["content-type"].startswith("text/javascript") and "fetch(" in script.text
    assert zip_js.headers["content-type"].startswith("text/javascript") and "export async function zip" in zip_js.text
    assert css.headers["content-type"].startswith("text/css")
    assert icon.headers["content-type"] == "image/svg+xml" and icon.text.startswith("<svg")
    assert "default-src 'self'" in CSP and "'unsafe-inline'" not in CSP and "http" not in CSP


def test_with_keys_the_page_needs_none_and_the_api_still_does():
    app = app_with(ApiKeys(["k3y"]))
    for path, response in zip(PAGE_PATHS, get(app, *PAGE_PATHS)):
        assert response.status_code == 200, path
    assert 'data-auth="1"' in get(app, "/")[0].text

    async def post():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.post("/colorize", content=b"\x89PNG\r\n\x1a\n")

    assert asyncio.run(post()).status_code == 401


def test_the_page_carries_the_servers_settings():
    body = re.search(r"<body ([^>]*)>", get(app_with(colour_strength=1.5, max_concurrent_per_client=2), "/")[0].text)
    settings = dict(re.findall(r'data-([\w-]+)="([^"]*)"', body.group(1)))
    assert settings == {"auth": "0", "strength": "1.5", "max-strength": "4", "concurrency": "2"}
    uncapped = get(app_with(max_concurrent_per_client=0), "/")[0].text
    assert 'data-concurrency="4"' in uncapped  # no cap: the page's own bound


def test_the_page_is_not_in_the_openapi_document():
    [doc] = get(app_with(), "/openapi.json")
    assert set(doc.json()["paths"]) == {"/colorize", "/healthz", "/readyz", "/metrics"}


def test_no_ui_turns_the_page_off(monkeypatch):
    responses = get(app_with(no_ui=True), *PAGE_PATHS)
    assert [r.status_code for r in responses] == [404] * len(PAGE_PATHS)
    [healthz] = get(app_with(no_ui=True), "/healthz")
    assert healthz.status_code == 200

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert ServeConfig.from_sources(environ={}, **vars(parser.parse_args(["--no-ui"]))).no_ui is True
    assert ServeConfig.from_sources(environ={}, **vars(parser.parse_args([]))).no_ui is False
    assert ServeConfig.from_sources(environ={"COLORIZE_NO_UI": "1"}, **vars(parser.parse_args([]))).no_ui is True
    with pytest.raises(ValueError, match="COLORIZE_NO_UI"):
        ServeConfig.from_sources(environ={"COLORIZE_NO_UI": "maybe"})


def test_what_the_page_loads_is_served_and_shipped():
    html = (STATIC / "index.html").read_text()
    loaded = set(re.findall(r'(?:src|href)="(/[^"]*)"', html))
    loaded |= {"/ui/" + name for name in re.findall(r'from "\./([\w.]+)"', (STATIC / "app.js").read_text())}
    assert loaded == set(ASSETS), "every file the page asks for is a route, and every route is asked for"
    assert {name for name, _ in ASSETS.values()} | {"index.html"} == {p.name for p in STATIC.iterdir()}
    tomllib = pytest.importorskip("tomllib", reason="reads pyproject.toml with Python 3.11's tomllib")
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data["colorize.serve"]
    for f in STATIC.iterdir():
        assert any(fnmatch(f"static/{f.name}", p) for p in patterns), f"{f.name} would not be in the wheel"
