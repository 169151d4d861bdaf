"""colorize.serve.allocator: glibc malloc capped to two arenas before threads start, unless the environment says
otherwise; its statistics. Each case runs in a fresh interpreter (mallopt changes the whole process)."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's")

# Eight threads allocating at once would get eight arenas from glibc's default (8 per core); malloc_stats() prints
# one "Arena N:" block per arena to stderr.
THREADS = """
import ctypes, threading
import numpy as np
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    for _ in range(200):
        a = [np.ones(4096) for _ in range(20)]
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
ctypes.CDLL("libc.so.6").malloc_stats()
"""


def _run(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**environ, **(env or {})})


def test_configure_caps_arenas_for_threads_started_after_it():
    r = _run("from colorize.serve.allocator import configure\nprint(configure().describe())\n" + THREADS)
    assert r.returncode == 0, r.stderr
    assert "malloc: M_ARENA_MAX=2, M_MMAP_THRESHOLD=262144" in r.stdout
    arenas = r.stderr.count("Arena ")
    assert 1 <= arenas <= 2, r.stderr


def test_environment_settings_are_left_alone():
    code = "from colorize.serve.allocator import configure\nprint(configure().describe())"
    r = _run(code, {"MALLOC_ARENA_MAX": "4"})
    assert r.returncode == 0, r.stderr
    assert "malloc: M_MMAP_THRESHOLD=262144" in r.stdout
    assert "left as is: M_ARENA_MAX (MALLOC_ARENA_MAX=4 in the environment)" in r.stdout


def test_mallinfo_counts_a_large_allocation():
    code = ("import numpy as np\nfrom colorize.serve.allocator import mallinfo\n"
            "before = mallinfo()\na = np.ones(64 * 2**20 // 8)\nafter = mallinfo()\n"
            "print(after['mmapped'] + after['in_use'] - before['mmapped'] - before['in_use'])")
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) >= 64 * 2**20
