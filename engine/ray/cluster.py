"""Start or join the Ray cluster a job runs on, and say what it has.

* ``connect(None)`` (or ``"local"``) starts an **embedded** Ray instance on this machine for the length of
  the job, bound to loopback only (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: Ray's single-machine mode, in
  which every Ray process listens on 127.0.0.1; set before Ray is first imported in the process), with
  Ray's token authentication and no dashboard. ``ray.init(address="local")``: never a cluster that
  ``ray start`` left on this machine, nor ``$RAY_ADDRESS``.
* ``connect("host:port")``, ``"ray://host:port"`` or ``"auto"`` (``$RAY_ADDRESS``, else the cluster started
  on this machine by ``ray start``) **joins** a running cluster; leaving disconnects and leaves it running.
  The address is probed first (a TCP connection, ``PROBE_TIMEOUT_S``): a dead address is a ``ClusterError``
  at once, where ``ray.init`` would retry for many minutes.
* A process that is already connected (``ray.init`` done by the caller) keeps its connection.

Ray is imported here, lazily: without it, ``require_ray`` raises ``MissingDependency`` naming the extra.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from colorize.backends.base import MissingDependency

#: Seconds to wait for a TCP connection to a cluster's address before calling it dead.
PROBE_TIMEOUT_S = 5.0


class ClusterError(RuntimeError):
    """The Ray cluster could not be started, reached or used; the message says which and why."""


@dataclass
class Cluster:
    """The cluster a job runs on: how it was reached and the resources of its alive nodes."""

    address: str  # as given; "local" for an embedded instance, "connected" for the caller's own connection
    embedded: bool
    nodes: list[dict[str, float]] = field(default_factory=list)  # resources of each alive node
    startup_s: float = 0.0  # seconds to start or join

    def describe(self) -> str:
        cpus = sum(n.get("CPU", 0) for n in self.nodes)
        gpus = sum(n.get("GPU", 0) for n in self.nodes)
        where = ("embedded Ray on this machine" if self.embedded else "the connected Ray cluster"
                 if self.address == "connected" else f"Ray cluster at {self.address}")
        return (f"{where}: {len(self.nodes)} node{'s' if len(self.nodes) != 1 else ''}, {cpus:g} CPU"
                + (f", {gpus:g} GPU" if gpus else "") + f" (started in {self.startup_s:.1f} s)")


def require_ray():
    """Import ``ray`` and ``ray.data``.

    Raises:
        MissingDependency: Ray Data is not installed (the message names the extra).
    """
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise MissingDependency(
            f'Ray Data is not installed ({e}); install it with: pip install ".[ray]"'
        ) from None
    return ray


def probe(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Check that something listens at ``host:port`` (``ray://`` stripped).

    Raises:
        ClusterError: a malformed address, or nothing answers there.
    """
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ClusterError(f"Ray address {address!r}: expected host:port, ray://host:port, auto or local")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ClusterError(f"no Ray cluster answers at {address} ({e.strerror or e}); start one with "
                           "`ray start --head` there, or check the address") from None


def _quiet_ray_data() -> None:
    """Our own progress bar and summary replace Ray Data's progress bars and INFO lines on the console."""
    from ray.data import DataContext
    from ray.util.debug import log_once

    DataContext.get_current().enable_progress_bars = False
    log_once("ray_data_progress_manager_disabled")  # spends Ray Data's one warning that its bars are off
    for handler in logging.getLogger("ray.data").handlers:
        if type(handler).__name__ not in ("SessionFileHandler",):  # the session's log file keeps everything
            handler.setLevel(logging.WARNING)


def alive_nodes() -> list[dict[str, float]]:
    """Resources of each alive node of the connected cluster."""
    import ray

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def _resolve(address: str) -> str:
    """``auto``: ``$RAY_ADDRESS``, else the cluster that ``ray start`` left on this machine; else as given."""
    if address != "auto":
        return address
    if os.environ.get("RAY_ADDRESS") not in (None, "", "auto"):
        return os.environ["RAY_ADDRESS"]
    try:
        from ray._private.services import get_ray_address_from_environment

        return get_ray_address_from_environment("auto", None)
    except ConnectionError as e:
        raise ClusterError(f"--ray auto: no RAY_ADDRESS and no running Ray cluster on this machine ({e})") from None
    except Exception:  # Ray's own lookup moved: let ray.init resolve "auto"
        return address


@contextmanager
def _without(name: str) -> Iterator[None]:
    """``ray.init`` prefers ``$RAY_ADDRESS`` to its argument: hide it while the address we chose is used."""
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


@contextmanager
def connect(address: str | None = None) -> Iterator[Cluster]:
    """Start (``None`` or ``"local"``) or join (an address, or ``"auto"``) a Ray cluster for the ``with`` block.

    Raises:
        MissingDependency: Ray Data is not installed.
        ClusterError: the cluster cannot be reached or started.
    """
    embedded = address in (None, "local")
    if embedded:  # single-machine mode, loopback only; read once, when Ray is first imported
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = require_ray()
    if embedded:  # Ray turns token authentication on for a new local instance, and says so: say it quietly
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    owned = not ray.is_initialized()
    target = "connected"
    if owned:
        target = "local" if embedded else _resolve(address)
        if target not in ("local", "auto"):
            probe(target)
        try:
            with _without("RAY_ADDRESS"):
                ray.init(address=target, logging_level=logging.WARNING, log_to_driver=False,
                         **({"include_dashboard": False} if embedded else {}))
        except (ConnectionError, RuntimeError, ValueError) as e:
            what = "start an embedded Ray instance" if embedded else f"join the Ray cluster at {target}"
            raise ClusterError(f"cannot {what}: {e}") from None
    try:
        _quiet_ray_data()
        cluster = Cluster(target, embedded and owned, alive_nodes(), time.perf_counter() - t0)
        yield cluster
    finally:
        if owned:
            ray.shutdown()
