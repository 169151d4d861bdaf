"""``colorize images --ray ADDRESS`` on a two-node Ray cluster on this machine, loopback only.

``ray.cluster_utils.Cluster``: a head and one added node, 1 CPU each, with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` so that every node is 127.0.0.1 (without it Ray rewrites 127.0.0.1
to the machine's network address). The pool is then one 0.501-CPU actor per node.
"""

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorize.cli import main

# Ray reads this once, at import: every Ray process of these tests listens on 127.0.0.1 only.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own, about its own settings
OPTIONS = dict(model="efficientnet_lite0-unet-photos", backend="onnxruntime", precision="fp32", working_size=32, batch_size=4)
FAST = ["--model", "efficientnet_lite0-unet-photos", "--backend", "onnxruntime", "--precision", "fp32", "--working-size", "32",
        "--batch-size", "4", "-q"]


def _gray(h, w, seed=0):
    y, x = np.mgrid[0:h, 0:w]
    return np.clip(128 + 90 * np.sin(x / 4.0 + seed) * np.cos(y / 6.0), 0, 255).astype(np.uint8)


def _descendants(root: int) -> set[int]:
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, todo = set(), [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in found]
        found.update(kids)
        todo += kids
    return found


def _listening_addresses(pids: set[int]) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} writes them) of the TCP sockets these processes listen on."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
                found.add(f[1].split(":")[0])
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    pytest.importorskip("ray.data")
    from ray.cluster_utils import Cluster

    saved = os.environ.get("COLORIZE_CACHE")
    os.environ["COLORIZE_CACHE"] = str(tmp_path_factory.mktemp("ray-cache"))  # what the nodes' workers inherit
    try:
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        c.add_node(num_cpus=1)
        c.wait_for_nodes()
    finally:
        if saved is None:
            os.environ.pop("COLORIZE_CACHE", None)
        else:
            os.environ["COLORIZE_CACHE"] = saved
    yield c
    c.shutdown()


def test_two_live_nodes_listening_on_loopback_only(cluster):
    import ray

    from colorize.ray.cluster import connect

    with connect(cluster.address) as c:
        nodes = [n for n in ray.nodes() if n["Alive"]]
        assert len(c.nodes) == len(nodes) == 2
        assert {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}
    if Path("/proc/net/tcp").exists():
        listening = _listening_addresses(_descendants(os.getpid()))
        loopback = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}  # v4, ::1, v4 in v6
        assert listening and listening <= loopback, listening


def test_bad_files_are_named_good_files_written_and_a_rerun_finishes(cluster, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(6):
        Image.fromarray(_gray(30 + 2 * i, 40, seed=i)).save(src / f"good{i}.png")
    (src / "notes.jpg").write_text("not an image at all")
    (src / "empty.png").write_bytes(b"")
    Image.fromarray(_gray(64, 64)).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (src / "cut.png").write_bytes(data[: len(data) // 2])
    report = tmp_path / "report.html"
    assert main(["images", str(src), "-o", str(out), "--ray", cluster.address, *FAST, "--report", str(report)]) == 1
    err = capsys.readouterr().err
    for name, reason in [("notes.jpg", "not an image"), ("empty.png", "empty file"), ("cut.png", "truncated")]:
        assert f"error: {src / name}: {reason}" in err
    assert "colorized 6 of 9 images" in err and "3 failed" in err and "2 nodes, 2 CPU" in err
    assert sorted(p.name for p in out.iterdir()) == [f"good{i}.png" for i in range(6)]  # no temporary file
    for i in range(6):
        with Image.open(out / f"good{i}.png") as im:
            assert im.size == (40, 30 + 2 * i) and im.mode == "RGB"
    page = report.read_text(encoding="utf-8")
    assert page.count("<figure>") == 6 and "Errors (3)" in page and "cut.png" in page

    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "good1.png").unlink()
    (out / "good4.png").unlink()
    assert main(["images", str(src), "-o", str(out), "--ray", cluster.address, *FAST, "--skip-existing"]) == 1
    err = capsys.readouterr().err
    assert "colorized 2 of 9 images" in err and "4 skipped (output exists)" in err and "3 failed" in err
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert set(after) == set(stamps)
    assert all(after[n] == stamps[n] for n in stamps if n not in ("good1.png", "good4.png"))


def test_work_lands_on_both_nodes_and_a_killed_actor_loses_nothing(cluster, tmp_path):
    from colorize.cli.images import collect_tasks
    from colorize.colorizer import Colorizer
    from colorize.ray.driver import run_tasks

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(0)
    n = 40
    for i in range(n):  # noise: slow enough to encode that the kill lands while blocks are in flight
        Image.fromarray(rng.integers(0, 256, (192, 256), dtype=np.uint8)).save(src / f"n{i:02d}.png")
    tasks = collect_tasks([str(src)], out, False, None)
    rows, killed = [], []

    def on_row(row):
        rows.append((int(row["index"]), str(row["node"]), int(row["pid"]), time.perf_counter()))
        if not killed:  # the first actor to answer is killed at once, with work queued on it
            killed.append((int(row["pid"]), time.perf_counter()))
            os.kill(int(row["pid"]), signal.SIGKILL)

    run = run_tasks(tasks, address=cluster.address, on_row=on_row, jobs=1, **OPTIONS)
    assert run.stopped is None and not run.failed and not run.not_run
    assert (run.pool.actors, run.pool.cpus) == (2, 0.501)  # one per node: Ray cannot fit two in 1 CPU
    assert len(run.nodes) == 2 and min(run.nodes.values()) > 0  # both nodes did work
    assert sorted(i for i, *_ in rows) == list(range(n))  # every file reported once
    pid, t_kill = killed[0]
    assert [r for r in rows if r[3] > t_kill], "the kill did not land mid-run"
    assert not Path(f"/proc/{pid}").exists() or "(Z)" in Path(f"/proc/{pid}/stat").read_text()  # it died
    assert len(run.actors) >= 3, run.actors  # the two of the pool, and the restarted one that redid its blocks
    assert sorted(p.name for p in out.iterdir()) == [f"n{i:02d}.png" for i in range(n)]  # no temporary file
    with Colorizer.load(OPTIONS["model"], OPTIONS["backend"], OPTIONS["precision"], working_size=32) as col:
        for i in range(n):  # every output complete and right
            want = np.asarray(col.colorize(str(src / f"n{i:02d}.png"))).astype(np.int16)
            with Image.open(out / f"n{i:02d}.png") as im:
                got = np.asarray(im).astype(np.int16)
            assert got.shape == want.shape == (192, 256, 3) and np.abs(got - want).max() <= 1, i
