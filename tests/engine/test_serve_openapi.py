"""`colorize serve`'s OpenAPI document against the live server: what it declares, and schemathesis finding nothing.

The server is the real command (``python -m colorize serve``) on 127.0.0.1 with a fast model: the CIFAR
``resnet18-unet`` on onnxruntime fp32 at working size 32, and an API key (so the security scheme is tested too:
schemathesis sends the key, and checks that requests without it are refused).
"""

import importlib.util
import io
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
SERVER = ["--model", "resnet18-unet", "--backend", "onnxruntime", "--precision", "fp32", "--working-size", "32",
          "--warmup", "1", "--log-level", "warning"]
API_KEY = "k-5e2b9d7c1a3f4e6b8d0c2a4e6f8b1d3c"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_command(*args: str, env: dict | None = None, ready_s: float = 60):
    """``python -m colorize serve ARGS`` on 127.0.0.1 and a free port; yields (url, process) once /readyz is 200."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "colorize", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while True:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, f"server not ready within {ready_s} s"
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text(API_KEY + "\n")
    with serve_command(*SERVER, "--api-key-file", str(keys)) as (url, _):
        yield url


def test_document_declares_bodies_responses_and_parameters(server):
    doc = httpx.get(server + "/openapi.json").json()
    op = doc["paths"]["/colorize"]["post"]
    body = op["requestBody"]
    assert body["required"] is True
    assert {"image/png", "image/jpeg", "image/webp", "application/octet-stream", "multipart/form-data"} <= set(
        body["content"]
    )
    form = body["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["image"] and form["properties"]["image"]["format"] == "binary"
    assert [(p["name"], p["in"], p["schema"].get("enum")) for p in op["parameters"]] == [
        ("format", "query", ["png", "jpeg", "jpg", "webp"]), ("strength", "query", None)
    ]
    assert op["parameters"][1]["schema"] == {"type": "number", "minimum": 0, "maximum": 4}
    responses = op["responses"]
    assert set(responses) == {"200", "400", "401", "406", "413", "415", "429", "499", "500", "503", "504"}
    assert set(responses["200"]["content"]) == {"image/png", "image/jpeg", "image/webp"}
    problem = {"$ref": "#/components/schemas/Problem"}
    for status in ("400", "401", "406", "413", "415", "429", "500", "503", "504"):
        assert responses[status]["content"] == {"application/json": {"schema": problem}}, status
    assert "Retry-After" in responses["503"]["headers"] and "Retry-After" in responses["429"]["headers"]
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert doc["components"]["securitySchemes"] == {"apiKey": {"type": "http", "scheme": "bearer", "description": (
        "an API key from the server's --api-key-file, sent as `Authorization: Bearer <key>`")}}
    assert op["security"] == doc["paths"]["/metrics"]["get"]["security"] == [{"apiKey": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"] and "security" not in doc["paths"]["/readyz"]["get"]
    assert doc["components"]["schemas"]["Problem"]["required"] == ["error", "status"]
    assert set(doc["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}
    assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def _load_hooks():
    spec = importlib.util.spec_from_file_location("schemathesis_hooks", HOOKS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hooks_give_every_declared_request_type_decodable_images():
    """What the fuzzer is taught: for each media type the document declares for a request body (and so for the
    multipart ``image`` part), bytes that Pillow decodes as an image of that format."""
    pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from PIL import Image

    from colorize.serve.openapi import RAW_REQUEST_TYPES

    hooks = _load_hooks()
    assert set(RAW_REQUEST_TYPES) <= set(hooks.FORMATS)

    @settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def check(data):
        mime = data.draw(st.sampled_from(RAW_REQUEST_TYPES))
        raw = data.draw(hooks.image_bytes(hooks.FORMATS[mime]))
        with Image.open(io.BytesIO(raw)) as im:
            assert im.format == hooks.FORMATS[mime]
            im.load()

    check()


@pytest.mark.parametrize("seed", [1, 2])
def test_schemathesis_finds_nothing(server, tmp_path, seed):
    """Every phase (examples, coverage, fuzzing), every default check, a bounded number of examples, for a few
    fixed seeds (reproducible: ``--seed``; each draws other requests).

    ``max_response_time`` is the one check schemathesis leaves off by default; it is a timing, and timings are
    measured by the benchmarks, not asserted in tests.
    """
    pytest.importorskip("schemathesis")
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", server + "/openapi.json", "--seed", str(seed),
           "--max-examples", "40", "--workers", "1", "--request-timeout", "30", "--no-color",
           "--header", f"Authorization: Bearer {API_KEY}"]
    r = subprocess.run(cmd, cwd=tmp_path, env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
                       capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "No issues found" in out, out[-6000:]
    metrics = httpx.get(server + "/metrics", headers={"authorization": f"Bearer {API_KEY}"}).text
    assert 'colorize_http_requests_total{path="/colorize",status="200"}' in metrics  # images were colorized
    assert 'colorize_http_requests_total{path="/colorize",status="401"}' in metrics  # and tried without the key
