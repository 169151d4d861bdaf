"""`colorize serve` configuration (defaults < env < flags), Prometheus text, and the command end to end."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from colorize.cli import main as cli_main
from colorize.serve.config import ServeConfig
from colorize.serve.metrics import Registry, parse_text


def test_config_env_then_flags():
    env = {"COLORIZE_PORT": "9001", "COLORIZE_MAX_BATCH_SIZE": "16", "COLORIZE_MAX_DELAY_MS": "2.5",
           "COLORIZE_WORKING_SIZE": "none", "COLORIZE_HOST": "::1", "UNRELATED": "x"}
    cfg = ServeConfig.from_sources(env, max_batch_size=4, port=None)
    assert (cfg.port, cfg.max_batch_size, cfg.max_delay_ms, cfg.working_size, cfg.host) == (9001, 4, 2.5, None, "::1")
    assert cfg.loopback_only
    assert ServeConfig().host == "127.0.0.1" and ServeConfig().max_upload_bytes == 32 * 1024 * 1024
    assert not ServeConfig(host="0.0.0.0").loopback_only
    assert ServeConfig(io_threads=3).io_workers == 3 and 1 <= ServeConfig().io_workers <= 4
    assert ServeConfig().malloc == "tuned" and ServeConfig.from_sources({"COLORIZE_MALLOC": "default"}).malloc == "default"
    assert (ServeConfig().small_model, ServeConfig().small_max_side) == ("auto", 32)
    small = ServeConfig.from_sources({"COLORIZE_SMALL_MODEL": "none", "COLORIZE_SMALL_MAX_SIDE": "48"})
    assert (small.small_model, small.small_max_side) == ("none", 48)


@pytest.mark.parametrize(
    "env, match",
    [({"COLORIZE_PORT": "http"}, "COLORIZE_PORT='http': expected int"),
     ({"COLORIZE_MAX_QUEUE_SIZE": "0"}, "max_queue_size=0"),
     ({"COLORIZE_DEFAULT_FORMAT": "gif"}, "default_format='gif'"),
     ({"COLORIZE_MALLOC": "jemalloc"}, "malloc='jemalloc': expected one of tuned, default"),
     ({"COLORIZE_IO_THREADS": "0"}, "io_threads=0"),
     ({"COLORIZE_SMALL_MAX_SIDE": "-1"}, "small_max_side=-1")],
)
def test_config_errors_name_the_setting(env, match):
    with pytest.raises(ValueError, match=match):
        ServeConfig.from_sources(env)


def test_cli_bad_environment_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setenv("COLORIZE_TIMEOUT_S", "soon")
    assert cli_main(["serve"]) == 2
    assert "COLORIZE_TIMEOUT_S" in capsys.readouterr().err


def test_cli_backend_that_cannot_load_is_a_usage_error(capsys):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    assert cli_main(["serve", "--backend", "tensorrt", "--malloc", "default"]) == 2
    err = capsys.readouterr().err
    assert "colorize serve: cannot load model" in err and "tensorrt is not installed" in err


def test_prometheus_text():
    r = Registry()
    c = r.counter("x_requests_total", "requests", ["status"])
    c.inc(status="200")
    c.inc(2, status="503")
    h = r.histogram("x_batch_size", "sizes", [1, 2, 4])
    for v in (1, 3, 3, 9):
        h.observe(v)
    r.gauge("x_depth", "depth", fn=lambda: 7)
    text = r.render()
    assert "# TYPE x_requests_total counter" in text and "# TYPE x_batch_size histogram" in text
    s = parse_text(text)
    assert s['x_requests_total{status="503"}'] == 2 and s["x_depth"] == 7
    assert [s[f'x_batch_size_bucket{{le="{b}"}}'] for b in ("1", "2", "4", "+Inf")] == [1, 1, 3, 4]
    assert s["x_batch_size_sum"] == 16 and s["x_batch_size_count"] == 4
    with pytest.raises(ValueError, match="takes labels"):
        c.inc(path="/")
    with pytest.raises(ValueError, match="already registered"):
        r.gauge("x_depth", "again")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_command_end_to_end_and_sigterm():
    """The real command: loads the model, serves on loopback, colorizes, stops cleanly on SIGTERM (exit 0)."""
    pytest.importorskip("torch")
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    import io

    import numpy as np
    from PIL import Image

    port = _free_port()
    env = {**os.environ, "COLORIZE_PORT": str(port), "COLORIZE_WORKING_SIZE": "32", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "colorize", "serve", "--backend", "torch", "--warmup", "1", "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "server not ready within 60 s"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 40), dtype=np.uint8)).save(buf, "PNG")
        r = httpx.post(f"http://127.0.0.1:{port}/colorize?format=jpeg", content=buf.getvalue(), timeout=30)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(r.content)).size == (40, 24)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert f"http://127.0.0.1:{port}" in out and "stopped" in out
        import platform

        if platform.libc_ver()[0] == "glibc":  # the allocator is set up by the command itself (or left as the env says)
            assert "M_ARENA_MAX" in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    "query, accept, want",
    [(None, None, "png"), ("jpg", "image/png", "jpeg"), (None, "image/webp;q=0.5, image/jpeg;q=0.8", "jpeg"),
     (None, "text/html, image/*;q=0.1", "png"), (None, "image/png;q=0, image/webp", "webp"), (None, "  ", "png")],
)
def test_choose_format(query, accept, want):
    from colorize.serve.http_io import choose_format

    assert choose_format(query, accept, "png") == want


def test_choose_format_refusals():
    from colorize.serve.http_io import HTTPProblem, choose_format

    for query in ("bmp", "JPG", " png", ""):  # exactly the documented enum
        with pytest.raises(HTTPProblem) as e:
            choose_format(query, None, "png")
        assert e.value.status == 400 and "png, jpeg, jpg, webp" in e.value.message
    with pytest.raises(HTTPProblem) as e:
        choose_format(None, "image/png;q=0, text/plain", "png")
    assert e.value.status == 406


def test_service_modules_do_not_import_torch():
    code = (
        "import sys, colorize.serve.batcher, colorize.serve.service, colorize.serve.http_io, colorize.serve.metrics, "
        "colorize.serve.config, colorize.cli.serve\n"
        "class C:\n    def prepare(self, im): pass\n"
        "colorize.serve.service.create_app(C())\n"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_serve_help_names_the_defaults_it_has():
    from colorize.cli.main import build_parser

    parser = build_parser()
    serve = next(a for a in parser._subparsers._actions if a.dest == "command").choices["serve"]
    text = " ".join(serve.format_help().split())
    assert "(default tuned: cap glibc malloc arenas" in text  # the mode named "default" is not the default
    assert "--client-id CLIENT_ID what tells clients apart" in text and "(default auto: the API key;" in text
    assert "--max-concurrent-per-client MAX_CONCURRENT_PER_CLIENT hard cap" in text and "(default 0: none;" in text
