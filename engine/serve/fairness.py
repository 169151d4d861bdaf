"""Fair shares of ``colorize serve`` between clients: admission when the server is full, and a thread pool
that takes turns.

    admission = Admission(limit=72)
    admission.admit("key:3f2a", displace=lambda c: batcher.evict_newest(c, Displaced("...")))   # or Refused
    ...
    admission.release("key:3f2a")

    pool = FairPool(4)
    future = pool.submit_for("key:3f2a", decode, data)      # clients take turns for the threads

One client alone may hold every slot (``limit`` requests in flight). When the
server is full, the request that gives way is one of the client holding the
most: a newcomer whose client holds at least as many as any other is refused
(``Refused``, 429). Otherwise the newest request of the client holding the most
that is still waiting for the engine (never one being decoded, run or encoded)
is taken back out of the queue (its caller gets ``Displaced``, 429) and the
newcomer takes its slot. When no client holding more has a request waiting,
the newcomer is refused with 503. Work that has started is never cancelled.

An optional hard cap (``per_client_cap``) refuses a client's request beyond
that many in flight (429) even when the server has room.

The batches themselves take turns in ``colorize.serve.batcher.DynamicBatcher``
(round-robin across clients); ``FairPool`` does the same for the threads that
decode and encode, so a client's image is not decoded behind another client's
32.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Any


class Refused(Exception):
    """A request not admitted: ``status`` 429 (its client holds the most, or is over the hard cap) or 503
    (full, and nobody holding more has a request waiting to give way)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Displaced(RuntimeError):
    """A queued request that gave way to another client's when the server was full (429 in the service)."""


class Admission:
    """Requests in flight per client, within ``limit`` for the server; who gives way when it is full.

    Args:
        limit: most requests in flight on the server.
        per_client_cap: most requests in flight per client (0: no cap, a client may hold all of ``limit``).
    """

    def __init__(self, limit: int, per_client_cap: int = 0):
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if per_client_cap < 0:
            raise ValueError(f"per_client_cap must be >= 0, got {per_client_cap}")
        self.limit = limit
        self.per_client_cap = per_client_cap
        self._lock = threading.Lock()
        self._held: dict[Hashable, int] = {}  # client -> requests in flight
        self._owed: dict[Hashable, int] = {}  # client -> displaced requests whose release is already counted
        self._total = 0

    @property
    def total(self) -> int:
        """Requests in flight."""
        return self._total

    def held(self) -> dict[Hashable, int]:
        """Requests in flight by client (a copy)."""
        with self._lock:
            return dict(self._held)

    def admit(self, client: Hashable, displace: Callable[[Hashable], bool] | None = None) -> None:
        """Count one more request of ``client`` in flight, or refuse it.

        Args:
            displace: ``displace(other)`` takes the newest waiting request of client ``other`` out of the
                queue and returns True, or returns False when ``other`` has none waiting.

        Raises:
            Refused: 429 when ``client`` is at ``per_client_cap``, or the server is full and ``client`` holds at
                least as many as any other client; 503 when full and no client holding more gave way.
        """
        with self._lock:
            mine = self._held.get(client, 0)
            if self.per_client_cap and mine >= self.per_client_cap:
                raise Refused(429, f"too many requests: this client has {mine} in flight "
                                   f"(max_concurrent_per_client={self.per_client_cap})")
            if self._total >= self.limit:
                more = sorted(((n, c) for c, n in self._held.items() if n > mine), key=lambda nc: -nc[0])
                if not more:
                    raise Refused(429, f"server full ({self._total} requests in flight, the limit) and this client "
                                       f"holds the most of them ({mine}): retry when some have finished")
                for _, other in more:
                    if displace is not None and displace(other):
                        self._held_minus(other)
                        self._owed[other] = self._owed.get(other, 0) + 1
                        break
                else:
                    raise Refused(503, f"overloaded: {self._total} requests in flight (limit {self.limit}), none "
                                       "of them waiting to give way")
            self._held[client] = mine + 1
            self._total += 1

    def release(self, client: Hashable) -> None:
        """One request of ``client`` is done (answered, failed, or displaced)."""
        with self._lock:
            owed = self._owed.get(client, 0)
            if owed:
                if owed == 1:
                    del self._owed[client]
                else:
                    self._owed[client] = owed - 1
                return
            self._held_minus(client)

    def _held_minus(self, client: Hashable) -> None:
        left = self._held[client] - 1
        if left:
            self._held[client] = left
        else:
            del self._held[client]
        self._total -= 1


class FairPool(concurrent.futures.Executor):
    """A fixed pool of long-lived threads whose queued calls are taken round-robin across clients (each client's
    in the order submitted); a client that had nothing queued goes before those with calls waiting, as in the
    batcher. ``submit`` queues for client None, so it also serves as a plain executor (``loop.run_in_executor``).

    Args:
        workers: threads, started at once and kept until ``shutdown``.
        name: thread name prefix.
    """

    def __init__(self, workers: int, name: str = "colorize-io"):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._cond = threading.Condition()
        # client -> calls; the turn order is the sparse lanes (nothing was queued when they were made), then the rest
        self._sparse: OrderedDict[Hashable, deque] = OrderedDict()
        self._lanes: OrderedDict[Hashable, deque] = OrderedDict()
        self._shutdown = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        return self.submit_for(None, fn, *args, **kwargs)

    def submit_for(self, client: Hashable, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
                   ) -> concurrent.futures.Future:
        """Queue ``fn(*args, **kwargs)`` for ``client``; the future gets its result. Cancelling the future before
        it starts drops the call.

        Raises:
            RuntimeError: the pool is shut down.
        """
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            lane = self._sparse.get(client, self._lanes.get(client))
            if lane is None:
                lane = self._sparse[client] = deque()
            lane.append((future, fn, args, kwargs))
            self._cond.notify()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new calls; run those queued (or cancel them: ``cancel_futures``); join the threads (``wait``)."""
        with self._cond:
            self._shutdown = True
            if cancel_futures:
                for lane in (*self._sparse.values(), *self._lanes.values()):
                    for future, *_ in lane:
                        future.cancel()
                self._sparse.clear()
                self._lanes.clear()
            self._cond.notify_all()
        if wait:
            for t in self._threads:
                t.join()

    def _next(self):
        with self._cond:
            while True:
                while not (self._sparse or self._lanes):
                    if self._shutdown:
                        return None
                    self._cond.wait()
                lanes = self._sparse or self._lanes
                client, lane = next(iter(lanes.items()))
                call = lane.popleft()
                if call[0].cancelled():  # dropped by its caller: it does not use up the client's turn
                    if not lane:
                        del lanes[client]
                    continue
                del lanes[client]
                if lane:
                    self._lanes[client] = lane  # its next call after the other clients' next ones
                return call

    def _work(self) -> None:
        while (call := self._next()) is not None:
            future, fn, args, kwargs = call
            call = None  # not held while the next call waits
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as e:
                    future.set_exception(e)
                else:
                    future.set_result(result)
                    result = None
            future = fn = args = kwargs = None
