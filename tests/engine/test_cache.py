"""Artifact cache: build once, detect corrupt and stale entries, survive concurrent processes."""

import json
import subprocess
import sys
import textwrap

import pytest

from colorize.artifacts.cache import ENTRY_FILE, ArtifactCache, default_cache_root


def _builder(calls, text="artifact"):
    def build(tmp):
        calls.append(tmp)
        (tmp / "a.bin").write_text(text)
        return {"note": "built"}

    return build


def test_builds_once_then_hits(tmp_path):
    cache, calls = ArtifactCache(tmp_path), []
    key = {"kind": "int8", "model": "abc", "backend": "openvino", "version": "1", "precision": "int8", "profile": "dyn"}
    e1 = cache.get_or_build(key, _builder(calls))
    e2 = cache.get_or_build(key, _builder(calls))
    assert len(calls) == 1 and e1.built and not e2.built
    assert e2.path("a.bin").read_text() == "artifact" and e2.meta == {"note": "built"}
    assert e1.dir.name.startswith("int8-")
    assert cache.lookup(key).dir == e1.dir
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


@pytest.mark.parametrize("field", ["model", "version", "precision", "profile"])
def test_any_key_field_changes_the_entry(tmp_path, field):
    cache, calls = ArtifactCache(tmp_path), []
    key = {"kind": "x", "model": "abc", "version": "1", "precision": "int8", "profile": "dyn"}
    a = cache.get_or_build(key, _builder(calls))
    b = cache.get_or_build(key | {field: "other"}, _builder(calls))
    assert len(calls) == 2 and a.dir != b.dir


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: (d / "a.bin").write_text("tampered"),  # corrupt file: sha256 mismatch
        lambda d: (d / "a.bin").unlink(),  # missing file
        lambda d: (d / ENTRY_FILE).write_text("{not json"),  # corrupt record
        lambda d: (d / ENTRY_FILE).write_text(  # stale record (key of another format/version)
            json.dumps(json.loads((d / ENTRY_FILE).read_text()) | {"format": "colorize-artifact/0"})
        ),
    ],
    ids=["tampered", "missing", "bad-json", "stale-format"],
)
def test_corrupt_or_stale_entry_is_rebuilt(tmp_path, damage):
    cache, calls = ArtifactCache(tmp_path), []
    key = {"kind": "x", "model": "abc"}
    entry = cache.get_or_build(key, _builder(calls))
    damage(entry.dir)
    assert cache.lookup(key) is None
    again = cache.get_or_build(key, _builder(calls, "rebuilt"))
    assert len(calls) == 2 and again.built and again.path("a.bin").read_text() == "rebuilt"
    assert cache.lookup(key) is not None


def test_failed_build_leaves_nothing(tmp_path):
    cache = ArtifactCache(tmp_path)

    def build(tmp):
        (tmp / "half.bin").write_text("partial")
        raise RuntimeError("quantizer crashed")

    with pytest.raises(RuntimeError, match="quantizer crashed"):
        cache.get_or_build({"kind": "x"}, build)
    assert cache.lookup({"kind": "x"}) is None
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_update_meta_keeps_entry_valid(tmp_path):
    cache = ArtifactCache(tmp_path)
    entry = cache.get_or_build({"kind": "x"}, _builder([]))
    cache.update_meta(entry, guard={"passed": True})
    hit = cache.lookup({"kind": "x"})
    assert hit.meta == {"note": "built", "guard": {"passed": True}}


def test_default_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("COLORIZE_CACHE", str(tmp_path))
    assert default_cache_root() == tmp_path / "artifacts"
    monkeypatch.delenv("COLORIZE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "colorize" / "artifacts"


def test_concurrent_processes_build_once(tmp_path):
    """Four processes race for the same key; the slow build runs once and everyone reads it whole."""
    code = textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        from colorize.artifacts.cache import ArtifactCache
        def build(tmp):
            with open({str(tmp_path / "builds.log")!r}, "a") as f:
                f.write(f"{{os.getpid()}}\\n")
            for i in range(5):
                with open(tmp / "big.bin", "ab") as f:
                    f.write(b"x" * 100000)
                time.sleep(0.05)
        e = ArtifactCache({str(tmp_path / "cache")!r}).get_or_build({{"kind": "race"}}, build)
        print(e.path("big.bin").stat().st_size)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    sizes = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sizes == ["500000"] * 4
    assert len((tmp_path / "builds.log").read_text().split()) == 1
