"""`colorize serve`'s app on a real uvicorn server on 127.0.0.1 (ephemeral port) with a real httpx client:
formats, concurrency and batching, limits, errors, readiness, metrics, graceful shutdown.

A fake colorizer with the Colorizer contract keeps these tests fast and its output exact: the image it returns is
(L, L, 1-L) from the input's gray level, so every response can be checked against its own request.
"""

import io
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")
from PIL import Image  # noqa: E402

from colorize.serve.config import ServeConfig  # noqa: E402
from colorize.serve.metrics import parse_text  # noqa: E402
from colorize.serve.service import create_app  # noqa: E402

WAIT = 20.0  # bound on anything that should happen soon, so a broken test fails instead of hanging


@dataclass
class FakePrepared:
    l: np.ndarray  # [1,h,w] float32 in [0,1]
    key: tuple

    @property
    def batch_key(self) -> tuple:
        return self.key


class FakeEngine:
    backend = "fake"
    precision = "fp32"

    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None):
        self.delay = delay
        self.gate = gate
        self.batch_sizes: list[int] = []
        self.closed = False

    def run(self, l: np.ndarray) -> np.ndarray:
        assert l.ndim == 4 and l.shape[1] == 1, l.shape
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        time.sleep(self.delay)
        self.batch_sizes.append(l.shape[0])
        return np.concatenate([l, 1.0 - l], axis=1)

    def close(self) -> None:
        self.closed = True


class FakeColorizer:
    def __init__(self, **engine_kw):
        self.engine = FakeEngine(**engine_kw)
        self.prepared = 0

    def run(self, prepared) -> np.ndarray:
        return self.engine.run(np.stack([p.l for p in prepared]))

    def prepare(self, image) -> FakePrepared:
        self.prepared += 1
        l = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
        return FakePrepared(l[None], l.shape)

    def finish(self, prepared: FakePrepared, ab: np.ndarray, colour_strength: float | None = None) -> Image.Image:
        s = 1.0 if colour_strength is None else colour_strength  # a stand-in: the strength scales the "ab" planes
        rgb = np.stack([prepared.l[0], ab[0] * s, ab[1] * s], axis=-1).clip(0, 1)
        return Image.fromarray(np.round(rgb * 255).astype(np.uint8))


def expected(gray: np.ndarray) -> np.ndarray:
    return np.stack([gray, gray, 255 - gray], axis=-1)


def png(gray: np.ndarray, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(gray).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def gray_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def decode(content: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(content))
    im.load()
    return im


@dataclass
class Server:
    url: str
    port: int
    app: object
    server: object
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "server did not stop"


@contextmanager
def serving(target, wait_ready: bool = True, **config):
    """Run ``create_app(target, ServeConfig(**config))`` on 127.0.0.1, ephemeral port, in a thread."""
    cfg = ServeConfig(**{"warmup": 0, "log_level": "warning", **config})
    app = create_app(target, cfg)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", timeout_graceful_shutdown=10)
    )
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    s = Server(f"http://127.0.0.1:{port}", port, app, server, thread)
    try:
        if wait_ready:
            while httpx.get(s.url + "/readyz").status_code != 200:
                assert time.monotonic() < deadline, "server not ready"
                time.sleep(0.01)
        yield s
    finally:
        if thread.is_alive():
            s.stop()


def metrics(url: str) -> dict[str, float]:
    r = httpx.get(url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return parse_text(r.text)


# -- happy paths -------------------------------------------------------------------------------------------------


def test_health_ready_and_raw_png_roundtrip():
    col = FakeColorizer()
    gray = gray_image(12, 20)
    with serving(col) as s:
        assert httpx.get(s.url + "/healthz").json() == {"status": "ok"}
        ready = httpx.get(s.url + "/readyz").json()
        assert ready["status"] == "ready" and ready["backend"] == "fake"
        r = httpx.post(s.url + "/colorize", content=png(gray), headers={"content-type": "image/png"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png"
        out = decode(r.content)
        assert out.format == "PNG" and out.size == (20, 12)
        np.testing.assert_array_equal(np.asarray(out), expected(gray))


def test_multipart_upload_and_output_formats():
    gray = gray_image(16, 16, seed=1)
    with serving(FakeColorizer()) as s:
        r = httpx.post(s.url + "/colorize", files={"image": ("g.png", png(gray, "RGB"), "image/png")})
        assert r.status_code == 200, r.text
        np.testing.assert_array_equal(np.asarray(decode(r.content)), expected(gray))

        r = httpx.post(s.url + "/colorize", content=png(gray), headers={"accept": "text/html;q=0.9, image/jpeg"})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert decode(r.content).format == "JPEG"

        r = httpx.post(s.url + "/colorize?format=webp", content=png(gray), headers={"accept": "image/jpeg"})
        assert r.status_code == 200 and decode(r.content).format == "WEBP"  # the query wins

        r = httpx.post(s.url + "/colorize", content=png(gray), headers={"accept": "image/*"})
        assert r.status_code == 200 and decode(r.content).format == "PNG"


def jpeg(gray: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=xyz", None],
    ids=["curl-data-binary", "text-plain", "multipart-header-raw-body", "no-content-type"],
)
def test_raw_image_body_is_read_whatever_the_content_type(content_type):
    gray = gray_image(10, 14, seed=5)
    headers = {"content-type": content_type} if content_type else {}
    with serving(FakeColorizer()) as s, httpx.Client() as client:
        request = client.build_request("POST", s.url + "/colorize", content=png(gray), headers=headers)
        assert request.headers.get("content-type") == content_type  # httpx adds none to raw bytes
        r = client.send(request)
        assert r.status_code == 200, r.text
        np.testing.assert_array_equal(np.asarray(decode(r.content)), expected(gray))
        r = client.post(s.url + "/colorize", content=jpeg(gray),
                        headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200 and decode(r.content).size == (14, 10)


def test_url_encoded_body_that_is_not_an_image_is_415():
    with serving(FakeColorizer()) as s:
        r = httpx.post(s.url + "/colorize", content=b"image=gray.jpg&format=png",
                       headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 415 and r.json() == {"error": r.json()["error"], "status": 415}
        assert "not an image" in r.json()["error"]


@pytest.mark.parametrize(
    "fmt, mime", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp"),
                  ("BMP", "image/bmp"), ("TIFF", "image/tiff")],
)
def test_sniff_image_type(fmt, mime):
    from colorize.serve.http_io import sniff_image_type

    buf = io.BytesIO()
    Image.fromarray(gray_image(4, 4)).save(buf, format=fmt)
    assert sniff_image_type(buf.getvalue()) == mime
    assert sniff_image_type(buf.getvalue()[:16]) == mime  # the signature alone
    assert sniff_image_type(b"--xyz\r\nContent-Disposition: form-data") is None
    assert sniff_image_type(b"RIFF\0\0\0\0WAVEfmt ") is None and sniff_image_type(b"") is None


def test_strength_query_reaches_finish_and_is_checked():
    g = gray_image(8, 12, seed=4)
    with serving(FakeColorizer()) as s:
        plain = np.asarray(decode(httpx.post(s.url + "/colorize", content=png(g)).content))
        r = httpx.post(s.url + "/colorize?strength=0.5", content=png(g))
        assert r.status_code == 200
        half = np.asarray(decode(r.content))
        np.testing.assert_array_equal(half[..., 0], plain[..., 0])
        np.testing.assert_allclose(half[..., 1:], np.round(expected(g)[..., 1:] * 0.5), atol=1)
        for bad in ("9", "-1", "nan", "vivid"):
            r = httpx.post(s.url + f"/colorize?strength={bad}", content=png(g))
            assert r.status_code == 400 and "strength" in r.json()["error"], (bad, r.text)


def test_default_format_from_config():
    with serving(FakeColorizer(), default_format="jpeg") as s:
        r = httpx.post(s.url + "/colorize", content=png(gray_image(8, 8)))
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"


def test_concurrent_requests_are_batched_by_size_and_each_gets_its_own_image():
    col = FakeColorizer(delay=0.03)
    grays = [gray_image(*[(8, 8), (8, 16), (16, 8)][i % 3], seed=i) for i in range(24)]
    with serving(col, max_batch_size=8, max_delay_ms=20) as s, httpx.Client(timeout=WAIT) as client:

        def post(gray):
            return client.post(s.url + "/colorize", content=png(gray))

        with ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(post, grays))
        for gray, r in zip(grays, responses):
            assert r.status_code == 200, r.text
            np.testing.assert_array_equal(np.asarray(decode(r.content)), expected(gray))
        m = metrics(s.url)
    # FakeEngine.run asserts one shape per batch (np.stack would fail otherwise); fewer runs than requests = batching
    assert sum(col.engine.batch_sizes) == 24 and len(col.engine.batch_sizes) < 24
    assert max(col.engine.batch_sizes) <= 8
    assert m["colorize_batch_size_count"] == len(col.engine.batch_sizes)
    assert m["colorize_batch_size_sum"] == 24
    assert m['colorize_http_requests_total{path="/colorize",status="200"}'] == 24
    assert m["colorize_request_duration_seconds_count"] == 24
    assert m["colorize_queue_depth"] == 0 and m["colorize_inflight_requests"] == 0 and m["colorize_ready"] == 1


# -- limits and errors --------------------------------------------------------------------------------------------


def raw_http(port: int, head: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes on a loopback socket; return what the server answers before closing or going quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        data = b""
        try:
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        return data


def test_content_length_over_limit_is_refused_before_reading_the_body():
    col = FakeColorizer()
    with serving(col, max_upload_bytes=1000) as s:
        # Announce 10 MB and send none of it: a 413 can only come from the header.
        t0 = time.monotonic()
        reply = raw_http(
            s.port, b"POST /colorize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: 10000000\r\n\r\n",
        )
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert b"max_upload_bytes" in reply and time.monotonic() - t0 < 4.0
        m = metrics(s.url)
    assert col.prepared == 0
    assert m['colorize_http_requests_total{path="/colorize",status="413"}'] == 1


def test_client_that_disconnects_mid_upload_is_counted_as_499():
    col = FakeColorizer()
    with serving(col) as s:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
            sock.sendall(b"POST /colorize HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"\x89PNG" * 4)
        deadline = time.monotonic() + WAIT
        while metrics(s.url).get('colorize_http_requests_total{path="/colorize",status="499"}') != 1:
            assert time.monotonic() < deadline, metrics(s.url)
            time.sleep(0.02)
        assert httpx.post(s.url + "/colorize", content=png(gray_image(8, 8))).status_code == 200
    assert col.prepared == 1


def test_chunked_body_over_limit_is_refused_while_streaming():
    with serving(FakeColorizer(), max_upload_bytes=50_000) as s:

        def chunks():
            for _ in range(100):
                yield b"\0" * 1000

        r = httpx.post(s.url + "/colorize", content=chunks())
        assert r.status_code == 413 and "max_upload_bytes" in r.json()["error"]


def test_too_many_pixels_is_refused_from_the_header():
    col = FakeColorizer()
    bomb = png(np.zeros((2000, 3000), np.uint8))  # 6 MP of zeros: a few kB compressed
    assert len(bomb) < 100_000
    with serving(col, max_pixels=1_000_000) as s:
        r = httpx.post(s.url + "/colorize", content=bomb)
        assert r.status_code == 413, r.text
        assert "3000x2000" in r.json()["error"] and "max_pixels" in r.json()["error"]
    assert col.prepared == 0


@pytest.mark.parametrize(
    "body, status, match",
    [
        (b"", 400, "empty"),
        (b"this is not an image at all" * 10, 415, "unsupported"),
        (png(gray_image(64, 64))[:200], 400, "corrupt"),
    ],
    ids=["empty", "not-an-image", "truncated-png"],
)
def test_bad_images_get_json_errors(body, status, match):
    with serving(FakeColorizer()) as s:
        r = httpx.post(s.url + "/colorize", content=body)
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/json"
        assert match in r.json()["error"] and r.json()["status"] == status


def test_bad_format_requests():
    with serving(FakeColorizer()) as s:
        r = httpx.post(s.url + "/colorize?format=gif", content=png(gray_image(8, 8)))
        assert r.status_code == 400 and "format='gif'" in r.json()["error"]
        r = httpx.post(s.url + "/colorize", content=png(gray_image(8, 8)), headers={"accept": "text/html"})
        assert r.status_code == 406
        r = httpx.post(s.url + "/colorize", files={"note": (None, "hello")})
        assert r.status_code == 400 and "file part" in r.json()["error"]


def test_full_server_gives_429_with_retry_after_to_the_client_holding_the_most():
    """One client fills the server: beyond max_queue_size + max_batch_size in flight it holds the most, so its
    next requests get 429 + Retry-After (tests/engine/test_serve_fairness.py has several clients, and the 503)."""
    gate = threading.Event()
    col = FakeColorizer(gate=gate)
    with serving(col, max_batch_size=1, max_queue_size=1, max_delay_ms=0, retry_after_s=3) as s:
        # at most max_queue_size + max_batch_size = 2 requests are admitted while the engine is blocked
        with httpx.Client(timeout=WAIT) as client, ThreadPoolExecutor(6) as pool:
            bodies = [png(gray_image(8, 8, i)) for i in range(6)]
            futures = [pool.submit(client.post, s.url + "/colorize", content=b) for b in bodies]
            deadline = time.monotonic() + WAIT
            while sum(f.done() for f in futures) < 4:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            gate.set()
            statuses = sorted(f.result().status_code for f in futures)
        assert statuses == [200, 200, 429, 429, 429, 429]
        refused = [f.result() for f in futures if f.result().status_code == 429]
        assert all(r.headers["retry-after"] == "3" and "server full" in r.json()["error"] for r in refused)
        assert metrics(s.url)['colorize_http_requests_total{path="/colorize",status="429"}'] == 4


def test_request_timeout_gives_504():
    col = FakeColorizer(delay=2.0)
    with serving(col, timeout_s=0.2) as s:
        t0 = time.monotonic()
        r = httpx.post(s.url + "/colorize", content=png(gray_image(8, 8)), timeout=WAIT)
        assert r.status_code == 504 and "timeout_s=0.2" in r.json()["error"]
        assert time.monotonic() - t0 < 1.5  # answered long before the 2 s engine call ends


# -- readiness and shutdown ---------------------------------------------------------------------------------------


def test_not_ready_while_loading_then_ready():
    release = threading.Event()
    col = FakeColorizer()

    def factory():
        assert release.wait(WAIT)
        return col

    with serving(factory, wait_ready=False, warmup=2, max_batch_size=4) as s:
        assert httpx.get(s.url + "/healthz").status_code == 200
        r = httpx.get(s.url + "/readyz")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        r = httpx.post(s.url + "/colorize", content=png(gray_image(8, 8)))
        assert r.status_code == 503 and "loading" in r.json()["error"] and "retry-after" in r.headers
        release.set()
        deadline = time.monotonic() + WAIT
        while httpx.get(s.url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert col.engine.batch_sizes == [1, 4]  # warm-up: one image, then a full batch
        assert metrics(s.url).get("colorize_batch_size_count", 0) == 0  # warm-up is not counted
    assert col.engine.closed  # made by the factory: the app owns and closes it


def test_warm_up_also_runs_the_small_image_model():
    """A Colorizer with a small-image model: warm-up passes include an image of its size, so the model is loaded
    (it loads on the first such image) and run before /readyz says ready."""
    col = FakeColorizer()
    col.small_max_side = 16
    sizes = []
    prepare = col.prepare
    col.prepare = lambda image: sizes.append(image.size) or prepare(image)
    with serving(col, warmup=2, max_batch_size=4):
        pass
    assert sorted(col.engine.batch_sizes) == [1, 1, 1, 4]  # one image, a full batch, and a small one each time
    assert sizes.count((16, 16)) == 2


def test_failed_load_is_reported_by_readyz():
    def factory():
        raise FileNotFoundError("no such model: nope.onnx")

    with serving(factory, wait_ready=False) as s:
        deadline = time.monotonic() + WAIT
        while (r := httpx.get(s.url + "/readyz")).json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert r.status_code == 503 and r.json()["status"] == "failed" and "nope.onnx" in r.json()["error"]
        r = httpx.post(s.url + "/colorize", content=png(gray_image(8, 8)))
        assert r.status_code == 503 and "failed to load" in r.json()["error"]


def test_graceful_shutdown_finishes_in_flight_requests():
    col = FakeColorizer(delay=0.2)
    grays = [gray_image(8, 8, seed=i) for i in range(6)]
    with serving(col, max_batch_size=2, max_delay_ms=0) as s:
        service = s.app.state.service
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(httpx.post, s.url + "/colorize", content=png(g), timeout=WAIT) for g in grays]
            deadline = time.monotonic() + WAIT
            while service.inflight < 6:
                assert time.monotonic() < deadline, service.inflight
                time.sleep(0.005)
            s.stop()  # like SIGTERM: stop accepting, finish in-flight work, run the shutdown hook
            for g, f in zip(grays, futures):
                r = f.result(WAIT)
                assert r.status_code == 200, r.text
                np.testing.assert_array_equal(np.asarray(decode(r.content)), expected(g))
        assert service.state == "stopping" and service.batcher.closed
        assert not col.engine.closed  # passed in as an object: the caller owns it
        with pytest.raises(httpx.ConnectError):
            httpx.post(s.url + "/colorize", content=png(grays[0]), timeout=2)


# -- the real Colorizer (torch backend, random init, working size 32) ------------------------------------------

#: Batched and single-image inference may sum convolutions in a different order; after conversion to 8-bit RGB
#: that can move a channel by one level.
BATCH_TOL_U8 = 1


@pytest.mark.slow
def test_real_colorizer_batched_matches_unbatched():
    pytest.importorskip("torch")
    import warnings

    from colorize.colorizer import Colorizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random init warning: no trained weights in a test checkout
        col = Colorizer.load("resnet18-unet", backend="torch", working_size=32)
    rng = np.random.default_rng(3)
    photos = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(4)]
    try:
        with serving(col, max_batch_size=4, max_delay_ms=50, warmup=1) as s, ThreadPoolExecutor(4) as pool:
            bodies = [png(a, "RGB") for a in photos]
            responses = list(pool.map(lambda b: httpx.post(s.url + "/colorize", content=b, timeout=60), bodies))
            ready = httpx.get(s.url + "/readyz").json()
        assert ready["backend"] == "torch" and ready["precision"] == "fp32"
        for a, r in zip(photos, responses):
            assert r.status_code == 200, r.text
            got = np.asarray(decode(r.content), dtype=np.int16)
            want = np.asarray(col.colorize(Image.fromarray(a)), dtype=np.int16)
            assert got.shape == (40, 56, 3)
            assert np.abs(got - want).max() <= BATCH_TOL_U8
    finally:
        col.close()


def test_requests_leave_no_image_in_reference_cycles():
    """Every prepared image is freed by reference counting when its response is sent, with the cycle collector off
    (cycles through the batcher's futures once kept them, and their arrays, until a full collection)."""
    import gc
    import weakref

    refs = []

    class Tracked(FakeColorizer):
        def prepare(self, image):
            prepared = super().prepare(image)
            refs.append(weakref.ref(prepared))
            return prepared

    with serving(Tracked(), io_threads=2) as s, httpx.Client(timeout=WAIT) as client:
        gc.collect()
        gc.disable()
        try:
            for i in range(8):
                assert client.post(s.url + "/colorize", content=png(gray_image(16, 16, i))).status_code == 200
            deadline = time.monotonic() + WAIT
            while any(r() is not None for r in refs):  # a handler may still be returning when the client has the body
                assert time.monotonic() < deadline, [r() is not None for r in refs]
                time.sleep(0.01)
        finally:
            gc.enable()
    assert len(refs) == 8
