"""Who may call `colorize serve`: API keys, the optional per-client cap, the refusal to bind beyond loopback without
keys.

The app runs on a real uvicorn server on 127.0.0.1 (ephemeral port) with a fake colorizer whose engine can be held
on a gate, so requests stay in flight for as long as a test needs; every wait is bounded by ``WAIT``. The command
itself (``python -m colorize serve``) runs once, to check that no key reaches its logs.
"""

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")
from PIL import Image  # noqa: E402

from colorize.cli import main as cli_main  # noqa: E402
from colorize.serve.auth import ApiKeys, bearer_token, load_api_keys  # noqa: E402
from colorize.serve.config import ServeConfig  # noqa: E402
from colorize.serve.metrics import parse_text  # noqa: E402
from colorize.serve.service import create_app  # noqa: E402

WAIT = 20.0  # bound on anything that should happen soon, so a broken test fails instead of hanging
KEY_A = "a-4f9c1e0b7d2a6c3e8f5b1d0a9e7c2b4f"
KEY_B = "b-0e3a7c9d1f5b2e8a4c6d0f1b3e9a7c5d"
KEY_FILE = f"# colorize API keys\n\n  {KEY_A}  \n# retired: c-0000\n{KEY_B}\n"


class Engine:
    backend, precision = "fake", "fp32"

    def __init__(self, gate: threading.Event | None = None):
        self.gate = gate
        self.images = 0

    def run(self, l: np.ndarray) -> np.ndarray:
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        self.images += l.shape[0]
        return np.concatenate([l, 1.0 - l], axis=1)


class Prepared:
    def __init__(self, l: np.ndarray):
        self.l = l
        self.batch_key = l.shape


class Colorizer:
    """The Colorizer contract; colour (L, L, 1-L) from the gray level L."""

    def __init__(self, gate: threading.Event | None = None):
        self.engine = Engine(gate)

    def run(self, prepared: list[Prepared]) -> np.ndarray:
        return self.engine.run(np.stack([p.l for p in prepared]))

    def prepare(self, image) -> Prepared:
        return Prepared(np.asarray(image.convert("L"), dtype=np.float32)[None] / 255.0)

    def finish(self, prepared: Prepared, ab: np.ndarray) -> Image.Image:
        rgb = np.stack([prepared.l[0], ab[0], ab[1]], axis=-1)
        return Image.fromarray(np.round(rgb * 255).astype(np.uint8))


def png(seed: int = 0, side: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@contextmanager
def serving(colorizer, **config):
    """``create_app(colorizer, ServeConfig(**config))`` on 127.0.0.1, ephemeral port, in a thread; yields (url, app).
    uvicorn leaves X-Forwarded-For alone, as ``colorize serve`` runs it."""
    app = create_app(colorizer, ServeConfig(**{"warmup": 0, "log_level": "warning", **config}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on",
                                           proxy_headers=False))
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        while httpx.get(url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline, "server not ready"
            time.sleep(0.01)
        yield url, app
    finally:
        server.should_exit = True
        thread.join(WAIT)
        assert not thread.is_alive(), "server did not stop"


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text(KEY_FILE)
    return path


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


# -- API keys ---------------------------------------------------------------------------------------------------


def test_key_file_format(tmp_path, key_file):
    keys = load_api_keys(key_file)
    assert len(keys) == 2  # comments and blank lines skipped, surrounding spaces stripped
    assert keys.identify(KEY_A) and keys.identify(KEY_B) and keys.identify(KEY_A) != keys.identify(KEY_B)
    assert keys.identify(KEY_A) == keys.identify(KEY_A)  # stable: fair shares count by it
    for wrong in ("c-0000", "# colorize API keys", KEY_A[:-1], KEY_A + "0", KEY_A.upper(), "", None):
        assert keys.identify(wrong) is None, wrong
    for shown in (keys.identify(KEY_A), repr(keys), str(keys)):
        assert KEY_A not in shown and KEY_A[2:10] not in shown

    (tmp_path / "dup.txt").write_text(f"{KEY_A}\n{KEY_A}\n")
    assert len(load_api_keys(tmp_path / "dup.txt")) == 1


@pytest.mark.parametrize(
    "text, match",
    [("", "no keys in it"), ("\n  \n# only a comment\n", "no keys in it"),
     ("good-key\nkey with-a-space-in-it\n", r"line 2: not a key"), (b"\xff\xfe\x00", "not UTF-8")],
    ids=["empty", "comments-only", "space-in-key", "binary"],
)
def test_bad_key_files_name_the_file(tmp_path, text, match):
    path = tmp_path / "keys.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=match) as e:
        load_api_keys(path)
    assert str(path) in str(e.value) and "with-a-space" not in str(e.value)  # the line's number, not its text


def test_unreadable_key_file_names_the_file(tmp_path):
    for path in (tmp_path / "missing.txt", tmp_path):  # no such file; a directory
        with pytest.raises(ValueError, match="cannot read it") as e:
            load_api_keys(path)
        assert str(path) in str(e.value)


def test_bearer_token():
    assert bearer_token(f"Bearer {KEY_A}") == KEY_A
    assert bearer_token(f"bearer   {KEY_A} ") == KEY_A  # the scheme is case-insensitive (RFC 7235)
    for header in (None, "", "Bearer", "Bearer ", f"Basic {KEY_A}", KEY_A, f"Token {KEY_A}"):
        assert bearer_token(header) is None, header


def test_keys_are_required_on_colorize_and_metrics_only(key_file):
    col = Colorizer()
    with serving(col, api_key_file=str(key_file)) as (url, _), httpx.Client(timeout=WAIT) as client:
        for path, call in (("/colorize", lambda h: client.post(url + "/colorize", content=png(), headers=h)),
                           ("/metrics", lambda h: client.get(url + "/metrics", headers=h))):
            for headers, challenge in (({}, 'Bearer realm="colorize"'),
                                       ({"authorization": f"Basic {KEY_A}"}, 'Bearer realm="colorize"'),
                                       (bearer("not-a-key"), 'Bearer realm="colorize", error="invalid_token"'),
                                       (bearer(KEY_A[:-1]), 'Bearer realm="colorize", error="invalid_token"'),
                                       (bearer("c-0000"), 'Bearer realm="colorize", error="invalid_token"')):
                r = call(headers)
                assert r.status_code == 401, (path, headers, r.text)
                assert r.headers["www-authenticate"] == challenge
                assert r.headers["content-type"] == "application/json"
                assert r.json() == {"error": r.json()["error"], "status": 401} and "API key" in r.json()["error"]
                assert KEY_A not in r.text
        assert col.engine.images == 0  # refused before the body was read

        for key in (KEY_A, KEY_B):
            r = client.post(url + "/colorize", content=png(seed=1), headers=bearer(key))
            assert r.status_code == 200, r.text
            gray = np.asarray(Image.open(io.BytesIO(png(seed=1))))
            np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r.content)))[..., 0], gray)
        r = client.post(url + "/colorize", content=png(), headers={"authorization": f"bearer {KEY_B}"})
        assert r.status_code == 200
        # open without a key: liveness, readiness, the API description
        assert client.get(url + "/healthz").status_code == 200
        assert client.get(url + "/readyz").json()["status"] == "ready"
        assert client.get(url + "/openapi.json").status_code == 200

        m = parse_text(client.get(url + "/metrics", headers=bearer(KEY_A)).text)
    assert m['colorize_http_requests_total{path="/colorize",status="401"}'] == 5
    assert m['colorize_http_requests_total{path="/metrics",status="401"}'] == 5
    assert m['colorize_http_requests_total{path="/colorize",status="200"}'] == 3


def test_no_keys_means_open():
    with serving(Colorizer()) as (url, _):
        assert httpx.post(url + "/colorize", content=png()).status_code == 200
        assert httpx.get(url + "/metrics").status_code == 200


# -- the optional per-client cap ----------------------------------------------------------------------------------


def test_per_client_cap_by_key(key_file):
    """Client A holds its 2 slots; its next requests get 429 at once, while client B (another key) is served."""
    gate = threading.Event()
    col = Colorizer(gate)
    with serving(col, api_key_file=str(key_file), max_concurrent_per_client=2, max_delay_ms=0,
                 retry_after_s=2) as (url, app), httpx.Client(timeout=WAIT) as client, ThreadPoolExecutor(6) as pool:
        service = app.state.service

        def post(key: str, seed: int):
            return client.post(url + "/colorize", content=png(seed), headers=bearer(key))

        a = [pool.submit(post, KEY_A, i) for i in range(4)]
        wait_until(lambda: sum(f.done() for f in a) == 2, "two of A's four requests were not refused")
        refused = [f.result() for f in a if f.done()]
        assert [r.status_code for r in refused] == [429, 429]
        for r in refused:
            assert r.headers["retry-after"] == "2" and r.json()["status"] == 429
            assert "max_concurrent_per_client=2" in r.json()["error"]
        assert service.inflight == 2
        b = [pool.submit(post, KEY_B, 10 + i) for i in range(2)]  # B's own two slots, while A's are taken
        wait_until(lambda: service.inflight == 4, "client B was not admitted beside client A")
        assert post(KEY_A, 99).status_code == 429 and not any(f.done() for f in b)
        gate.set()
        assert sorted(f.result().status_code for f in a) == [200, 200, 429, 429]
        assert [f.result().status_code for f in b] == [200, 200]
        assert post(KEY_A, 5).status_code == 200  # slots are given back
        m = parse_text(client.get(url + "/metrics", headers=bearer(KEY_B)).text)
    assert service.admission.held() == {} and service.inflight == 0
    assert m['colorize_http_requests_total{path="/colorize",status="429"}'] == 3


def test_per_client_cap_by_forwarded_address_without_keys():
    """Without keys, ``client_id="forwarded"`` tells clients apart by the address a trusted proxy passes on in
    X-Forwarded-For; the proxy here is this machine (every test client connects from 127.0.0.1)."""
    gate = threading.Event()
    col = Colorizer(gate)
    with serving(col, max_concurrent_per_client=1, max_delay_ms=0, client_id="forwarded",
                 trusted_proxy="127.0.0.1") as (url, app), \
            httpx.Client(timeout=WAIT) as client, ThreadPoolExecutor(4) as pool:
        service = app.state.service

        def post(address: str, seed: int):
            return client.post(url + "/colorize", content=png(seed), headers={"x-forwarded-for": address})

        first = pool.submit(post, "192.0.2.1", 0)
        wait_until(lambda: service.inflight == 1, "first request not in flight")
        r = post("192.0.2.1", 1)
        assert r.status_code == 429 and "retry-after" in r.headers
        other = pool.submit(post, "192.0.2.2", 2)  # another address: its own slot
        wait_until(lambda: service.inflight == 2, "second address not admitted")
        gate.set()
        assert first.result().status_code == 200 and other.result().status_code == 200
    assert service.admission.held() == {}


def test_no_cap_by_default():
    assert ServeConfig().max_concurrent_per_client == 0
    gate = threading.Event()
    with serving(Colorizer(gate), max_delay_ms=0) as (url, app), \
            httpx.Client(timeout=WAIT) as client, ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(client.post, url + "/colorize", content=png(i)) for i in range(6)]
        wait_until(lambda: app.state.service.inflight == 6, "six requests from one client not all admitted")
        gate.set()
        assert [f.result().status_code for f in futures] == [200] * 6


# -- the OpenAPI document -----------------------------------------------------------------------------------------


def test_document_describes_keys_and_cap_as_configured(key_file):
    """Keys: the security scheme and 401s. 429 is always there (a full server refuses the client holding the most);
    its description names a per-client cap only when one is set."""
    doc = create_app(Colorizer(), ServeConfig(api_key_file=str(key_file))).openapi()
    scheme = doc["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, method in (("/colorize", "post"), ("/metrics", "get")):
        op = doc["paths"][path][method]
        assert op["security"] == [{"apiKey": []}]
        assert op["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
    too_many = doc["paths"]["/colorize"]["post"]["responses"]["429"]
    assert too_many["headers"]["Retry-After"]["required"] is True
    assert "holds the most" in too_many["description"] and "max_concurrent_per_client" not in too_many["description"]
    for path in ("/healthz", "/readyz"):
        assert "security" not in doc["paths"][path]["get"] and "401" not in doc["paths"][path]["get"]["responses"]

    doc = create_app(Colorizer(), ServeConfig(max_concurrent_per_client=3)).openapi()
    assert "securitySchemes" not in doc["components"]
    op = doc["paths"]["/colorize"]["post"]
    assert "security" not in op and "401" not in op["responses"]
    assert "3 requests in flight (max_concurrent_per_client)" in op["responses"]["429"]["description"]


# -- the command ----------------------------------------------------------------------------------------------------


def test_loopback_hosts():
    for host in ("127.0.0.1", "127.1.2.3", "::1", "localhost", "LocalHost"):
        assert ServeConfig(host=host).loopback_only, host
    for host in ("0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "fe80::1", "example.com"):
        assert not ServeConfig(host=host).loopback_only, host


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_refuses_to_bind_beyond_loopback_without_keys(host, capsys):
    assert cli_main(["serve", "--host", host, "--malloc", "default"]) == 2
    err = capsys.readouterr().err
    assert f"refusing to listen on {host} without API keys" in err
    assert "--api-key-file" in err and "--insecure-no-auth" in err


def test_refusal_from_the_environment_too(monkeypatch, capsys):
    monkeypatch.setenv("COLORIZE_HOST", "0.0.0.0")
    assert cli_main(["serve", "--malloc", "default"]) == 2
    assert "--insecure-no-auth" in capsys.readouterr().err


def test_keys_or_insecure_no_auth_pass_the_check(tmp_path, key_file, monkeypatch, capsys):
    """Past the check the command loads the model; a model that does not exist stops it there (exit 2), before it
    binds anything."""
    missing = str(tmp_path / "no-model.onnx")
    runs = [(["--insecure-no-auth"], {}), ([], {"COLORIZE_INSECURE_NO_AUTH": "1"}),
            (["--api-key-file", str(key_file)], {}), ([], {"COLORIZE_API_KEY_FILE": str(key_file)})]
    for flags, env in runs:
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            assert cli_main(["serve", "--host", "0.0.0.0", "--model", missing, "--malloc", "default", *flags]) == 2
        err = capsys.readouterr().err
        assert "refusing" not in err and "cannot load model" in err, (flags, env, err)


def test_bad_key_file_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("# nothing yet\n")
    for path in (tmp_path / "empty.txt", tmp_path / "missing.txt"):
        assert cli_main(["serve", "--api-key-file", str(path), "--malloc", "default"]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and "API key file" in err
    with pytest.raises(ValueError, match="COLORIZE_INSECURE_NO_AUTH='maybe'"):
        ServeConfig.from_sources({"COLORIZE_INSECURE_NO_AUTH": "maybe"})
    with pytest.raises(ValueError, match="max_concurrent_per_client=-1"):
        ServeConfig(max_concurrent_per_client=-1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_command_never_logs_a_key(key_file):
    """``python -m colorize serve`` with keys at uvicorn's most verbose level (trace: every connection, every ASGI
    message): requests with a right key, a wrong one and none; nothing the process writes holds either key."""
    pytest.importorskip("onnxruntime")
    wrong = "w-7d1c9e3b5a0f2e4c6b8a1d3f5e7c9b0a"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "colorize", "serve", "--host", "127.0.0.1", "--port", str(port), "--model",
         "resnet18-unet", "--backend", "onnxruntime", "--precision", "fp32", "--working-size", "32", "--warmup", "1",
         "--api-key-file", str(key_file), "--log-level", "trace"],
        env={**os.environ, "PYTHONWARNINGS": "ignore"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "server not ready within 60 s"
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        with httpx.Client(timeout=30) as client:
            assert client.post(url + "/colorize", content=png(side=24), headers=bearer(KEY_A)).status_code == 200
            assert client.post(url + "/colorize?format=bogus", content=png(), headers=bearer(KEY_A)).status_code == 400
            assert client.post(url + "/colorize", content=png(), headers=bearer(wrong)).status_code == 401
            assert client.get(url + "/metrics", headers=bearer(KEY_B)).status_code == 200
            assert client.get(url + "/metrics", headers=bearer(wrong)).status_code == 401
            assert client.get(url + "/metrics").status_code == 401
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert '"POST /colorize HTTP/1.1" 401' in out and '"GET /metrics HTTP/1.1" 200' in out  # requests were logged
    assert "ASGI" in out and "2 API key(s)" in out
    for secret in (KEY_A, KEY_B, wrong):
        assert secret not in out and secret[2:18] not in out
