"""In-process dynamic batching (the idea of Triton Inference Server's dynamic
batcher and Ray Serve's ``@serve.batch``).

Many threads or asyncio tasks submit single items; one worker thread collects
them into batches of up to ``max_batch_size`` items, waiting at most
``max_delay_ms`` after the oldest queued item arrived, calls the batch
function once per batch, and hands each caller its own result.

    batcher = DynamicBatcher(fn, key=lambda x: x.shape, max_batch_size=8, max_delay_ms=5)
    y = batcher.run(x, timeout=10)            # from any thread
    y = batcher.run(x, client="key:3f2a")     # take turns with other clients
    y = await batcher.arun(x, timeout=10)     # from any event loop
    batcher.close()                           # finish queued work, then stop

* **Grouping**: items are batched only with items of the same ``key(item)``
  (e.g. the same image size); a group is due when it holds a full batch or its
  oldest item has waited ``max_delay_ms``.
* **Fairness**: each item may name its ``client``; clients take turns
  (``colorize.serve.turns``). Of the due groups, the one holding the oldest
  item of the client whose turn it is runs; its batch is filled round-robin
  across clients, none getting more places than the client whose turn it is;
  a client that had nothing queued goes before those with items waiting; and
  while other clients are active a turn is bounded in time, by batch durations
  measured per key (``colorize.serve.batch_costs``). So a client sending one
  item at a time waits for at most one other turn, however many items another
  client keeps queued. Without clients (all ``None``) this is first come,
  first served.
* **Backpressure**: at most ``max_queue_size`` items wait; one more raises
  ``Overloaded`` at once instead of queueing without bound.
  ``evict_newest(client, exc)`` takes a client's newest queued item back out
  (its caller gets ``exc``): the service's rule for a full server.
* **Timeouts**: a caller's ``timeout`` covers queueing and running; a request
  still queued at its deadline is dropped (never run) and fails with
  ``RequestTimeout``; one already running finishes but its result is dropped.
* **Shutdown**: ``close(drain=True)`` runs everything already queued, then
  stops; ``close(drain=False)`` fails queued requests with ``BatcherClosed``.
  Either way, later submissions raise ``BatcherClosed``.

``ColorizerBatcher`` applies this to a ``Colorizer``: ``prepare`` and
``finish`` (decode-side work) run on the caller's thread, only ``engine.run``
runs on the batching worker, so preprocessing overlaps inference.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from colorize.serve.batch_costs import BatchCosts
from colorize.serve.turns import Turns

X = TypeVar("X")
Y = TypeVar("Y")

__all__ = [
    "BatcherClosed",
    "BatcherError",
    "ColorizerBatcher",
    "DynamicBatcher",
    "Overloaded",
    "engine_batch_fn",
    "RequestTimeout",
]


class BatcherError(RuntimeError):
    """Base class of the batcher's own errors."""


class Overloaded(BatcherError):
    """The queue is full: retry later (HTTP 503 + Retry-After in the service)."""


class BatcherClosed(BatcherError):
    """The batcher is closed, or closed without running this queued request."""


class RequestTimeout(BatcherError, TimeoutError):
    """The request did not complete within its timeout."""


@dataclass(eq=False)
class _Request:
    item: Any
    key: Hashable
    future: concurrent.futures.Future
    enqueued: float  # time.monotonic()
    deadline: float | None  # time.monotonic() deadline, None = no timeout
    client: Hashable = None  # whose request: clients take turns
    seq: int = field(default=0)


BatchFn = Callable[[list[X]], Sequence[Y]]


class DynamicBatcher(Generic[X, Y]):
    """Queue single items from many callers and run them through ``fn`` in batches.

    Args:
        fn: batch function, ``list[item] -> sequence of results`` of the same
            length, in the same order. Called on the batcher's worker thread,
            one batch at a time; all items of one call share one ``key``.
        key: items with equal ``key(item)`` may share a batch (default: all).
        max_batch_size: most items per call of ``fn``.
        max_delay_ms: longest wait, after the oldest queued item of a group
            arrived, for the group to fill up before it runs anyway.
        max_queue_size: most items waiting (not yet running); beyond, ``Overloaded``.
        timeout_s: default per-request timeout in seconds (None: wait forever).
        on_batch: called after each batch as ``on_batch(size, seconds)`` (metrics).
        cost: ``cost(key, n)``, the seconds a batch of ``n`` items of ``key``
            takes, or None when unknown (default: measured as batches run).
        name: worker thread name.
    """

    def __init__(
        self,
        fn: BatchFn,
        *,
        key: Callable[[X], Hashable] | None = None,
        max_batch_size: int = 8,
        max_delay_ms: float = 5.0,
        max_queue_size: int = 64,
        timeout_s: float | None = None,
        on_batch: Callable[[int, float], None] | None = None,
        cost: Callable[[Hashable, int], float | None] | None = None,
        name: str = "colorize-batcher",
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be >= 0, got {max_delay_ms}")
        if max_queue_size < 1:
            raise ValueError(f"max_queue_size must be >= 1, got {max_queue_size}")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0 or None, got {timeout_s}")
        self.fn = fn
        self.key = key or (lambda item: None)
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay_ms / 1000.0
        self.max_queue_size = max_queue_size
        self.timeout_s = timeout_s
        self.on_batch = on_batch
        self._cond = threading.Condition(threading.RLock())
        self._groups: OrderedDict[Hashable, deque[_Request]] = OrderedDict()
        self.costs: BatchCosts | None = BatchCosts() if cost is None else None  # measured (no ``cost`` given)
        self._turns = Turns(max_batch_size, cost or self.costs.estimate)
        self._queued = 0
        self._running = 0
        self._closing = False
        self._seq = itertools.count()
        self._worker = threading.Thread(target=self._loop, name=name, daemon=True)
        self._worker.start()

    # -- public API ---------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Items waiting to run (not counting the batch in progress)."""
        return self._queued

    @property
    def running(self) -> int:
        """Items in the batch now running."""
        return self._running

    @property
    def closed(self) -> bool:
        return self._closing

    def submit(
        self, item: X, timeout: float | None = ..., client: Hashable = None  # type: ignore[assignment]
    ) -> concurrent.futures.Future:
        """Queue ``item``; the returned future gets its result or exception.

        Args:
            timeout: seconds until the request is dropped if not yet run
                (default: the batcher's ``timeout_s``; None: no timeout).
            client: who asks (any hashable); clients take turns (None: one anonymous client).

        Raises:
            Overloaded: the queue holds ``max_queue_size`` items already.
            BatcherClosed: ``close`` was called.
        """
        timeout = self.timeout_s if timeout is ... else timeout
        key = self.key(item)
        now = time.monotonic()
        fut: concurrent.futures.Future = concurrent.futures.Future()
        req = _Request(item, key, fut, now, None if timeout is None else now + timeout, client)
        with self._cond:
            if self._closing:
                raise BatcherClosed("the batcher is closed; no new requests are accepted")
            if self._queued >= self.max_queue_size:
                raise Overloaded(f"queue full ({self._queued} of max_queue_size={self.max_queue_size} waiting)")
            req.seq = next(self._seq)
            self._groups.setdefault(key, deque()).append(req)
            self._turns.joined(client)
            self._queued += 1
            self._cond.notify_all()
        # A caller that cancels (asyncio task cancelled, timeout) frees its queue slot at once. The callback holds
        # the request weakly: a future keeps its callbacks after it is done, and a strong reference would make a
        # cycle (request -> future -> callback -> request) that keeps the item and its result, image-sized arrays,
        # alive until the cyclic garbage collector happens to run.
        ref = weakref.ref(req)
        fut.add_done_callback(lambda f: self._discard_ref(ref) if f.cancelled() else None)
        return fut

    def run(self, item: X, timeout: float | None = ..., client: Hashable = None) -> Y:  # type: ignore[assignment]
        """Submit ``item`` (for ``client``) and wait for its result (blocking; any thread).

        Raises:
            Overloaded, BatcherClosed: see ``submit``.
            RequestTimeout: no result within ``timeout`` seconds.
            Exception: whatever ``fn`` raised for this item's batch.
        """
        timeout = self.timeout_s if timeout is ... else timeout
        fut = self.submit(item, timeout, client)
        try:
            return fut.result(timeout)
        except TimeoutError:  # the wait timed out, or fn / the queue deadline raised a TimeoutError
            if fut.done() and not fut.cancelled():
                return fut.result()
            fut.cancel()  # dropped if still queued; a running batch finishes, its result unused
            raise RequestTimeout(f"no result within {timeout:g} s") from None

    async def arun(
        self, item: X, timeout: float | None = ..., client: Hashable = None  # type: ignore[assignment]
    ) -> Y:
        """Submit ``item`` (for ``client``) and await its result (asyncio; any event loop).

        Cancelling the awaiting task drops the request if it has not started.
        Raises as ``run``.
        """
        timeout = self.timeout_s if timeout is ... else timeout
        fut = self.submit(item, timeout, client)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except TimeoutError:  # as in ``run``
            if fut.done() and not fut.cancelled():
                return fut.result()
            fut.cancel()
            raise RequestTimeout(f"no result within {timeout:g} s") from None

    def queued_by(self, client: Hashable) -> int:
        """Items of ``client`` waiting to run."""
        with self._cond:
            return self._turns.waiting(client)

    def evict_newest(self, client: Hashable, exc: BaseException) -> bool:
        """Take the newest queued item of ``client`` out of the queue; its caller gets ``exc``. False when
        ``client`` has nothing queued (items already running are never touched)."""
        with self._cond:
            mine = [req for group in self._groups.values() for req in group if req.client == client]
            if not mine:
                return False
            newest = max(mine, key=lambda req: req.seq)
            self._remove(newest)
        if newest.future.set_running_or_notify_cancel():
            newest.item = None
            newest.future.set_exception(exc)
        return True

    def close(self, drain: bool = True, timeout: float | None = None) -> None:
        """Stop accepting requests; run (``drain``) or fail the queued ones; stop the worker.

        Args:
            drain: True runs everything already queued (without waiting for
                batches to fill); False fails queued requests with ``BatcherClosed``.
            timeout: seconds to wait for the worker; requests still queued after
                it are failed with ``BatcherClosed``.
        """
        with self._cond:
            self._closing = True
            if not drain:
                self._fail_queued(BatcherClosed("the batcher was closed before this request ran"))
            self._cond.notify_all()
        self._worker.join(timeout)
        if self._worker.is_alive():
            with self._cond:
                self._fail_queued(BatcherClosed(f"the batcher was closed; not run within the {timeout:g} s drain"))
                self._cond.notify_all()

    def __enter__(self) -> "DynamicBatcher[X, Y]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- worker -------------------------------------------------------------

    def _discard_ref(self, ref: "weakref.ref[_Request]") -> None:
        req = ref()
        if req is not None:
            self._discard(req)

    def _discard(self, req: _Request) -> None:
        with self._cond:
            group = self._groups.get(req.key)
            if group is not None and req in group:
                self._remove(req)

    def _remove(self, req: _Request) -> None:
        """Take one queued request out of its group and its client's count (holding the lock)."""
        group = self._groups[req.key]
        group.remove(req)
        if not group:
            del self._groups[req.key]
        self._queued -= 1
        self._turns.left(req.client)

    def _fail_queued(self, exc: BaseException) -> None:
        for group in self._groups.values():
            for req in group:
                if req.future.set_running_or_notify_cancel():
                    req.future.set_exception(exc)
        self._groups.clear()
        self._turns.clear()
        self._queued = 0

    def _next_batch(self) -> list[_Request] | None:
        """Block until a batch is due; None when closed and nothing is left."""
        with self._cond:
            while True:
                if not self._groups:
                    if self._closing:
                        return None
                    self._cond.wait()
                    continue
                now = time.monotonic()
                due = [key for key, g in self._groups.items()
                       if self._closing or len(g) >= self.max_batch_size or now >= g[0].enqueued + self.max_delay]
                if due:
                    client, key = self._turns.leader({k: self._groups[k] for k in due})
                    batch = self._turns.take(client, key, self._groups[key])
                    taken = set(map(id, batch))
                    left = deque(req for req in self._groups[key] if id(req) not in taken)
                    if left:
                        self._groups[key] = left
                    else:
                        del self._groups[key]
                    self._queued -= len(batch)
                    return batch
                self._cond.wait(min(g[0].enqueued for g in self._groups.values()) + self.max_delay - now)

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            now = time.monotonic()
            live = []
            for req in batch:
                if not req.future.set_running_or_notify_cancel():
                    continue  # cancelled by its caller
                if req.deadline is not None and now >= req.deadline:
                    req.future.set_exception(RequestTimeout("timed out while queued"))
                    continue
                live.append(req)
            if live:
                self._run_batch(live)
            batch = live = req = None  # not held (items, results) while the next _next_batch() waits

    def _run_batch(self, batch: list[_Request]) -> None:
        self._running = len(batch)
        t0 = time.perf_counter()
        try:
            results = self.fn([req.item for req in batch])
            if len(results) != len(batch):
                raise BatcherError(f"batch function returned {len(results)} results for {len(batch)} items")
            if self.costs is not None:
                self.costs.observe(batch[0].key, len(batch), time.perf_counter() - t0)
        except BaseException as e:  # every caller of this batch gets the error
            for req in batch:
                req.item = None  # let go of it before its caller wakes
                req.future.set_exception(e)
        else:
            for req, result in zip(batch, results):
                req.item = None
                req.future.set_result(result)
        finally:
            self._running = 0
        if self.on_batch is not None:
            try:
                self.on_batch(len(batch), time.perf_counter() - t0)
            except Exception:
                pass  # metrics never break serving


def _key(prepared: Any) -> Hashable:
    return prepared.batch_key


def engine_batch_fn(colorizer: Any) -> Callable[[list[Any]], list[np.ndarray]]:
    """The batch function for ``Colorizer.prepare`` results (all of one ``batch_key``: one model, one shape):
    one ``colorizer.run``, one ab [2,h,w] per item."""

    def run(prepared: list[Any]) -> list[np.ndarray]:
        return list(colorizer.run(prepared))

    return run


def colorizer_batcher(colorizer: Any, **options) -> DynamicBatcher:
    """The ``DynamicBatcher`` of a ``Colorizer``'s prepared inputs: grouped by ``batch_key`` (one model, one
    working shape), one ``colorizer.run`` per batch. ``ColorizerBatcher`` and the service both batch with it."""
    return DynamicBatcher(engine_batch_fn(colorizer), key=_key, **options)


class ColorizerBatcher:
    """Dynamic batching for a ``Colorizer``: many callers, one ``engine.run`` per batch.

    ``colorize`` / ``acolorize`` run ``colorizer.prepare`` on the caller's side,
    queue the prepared L (grouped by ``Prepared.batch_key``, so only inputs
    of one model and size share a batch), and run ``colorizer.finish`` on the caller's side
    again: decode and encode overlap inference on the worker.

    Args:
        colorizer: an object with ``prepare(image)``, ``finish(prepared, ab)``
            and ``run(prepared of one batch_key) -> ab [N,2,h,w]`` (``colorize.Colorizer``).
        executor: where ``acolorize`` runs ``prepare``/``finish`` (default:
            the event loop's default executor).
        **batcher_options: ``DynamicBatcher`` options (``max_batch_size``,
            ``max_delay_ms``, ``max_queue_size``, ``timeout_s``, ``on_batch``).
    """

    def __init__(self, colorizer: Any, *, executor: concurrent.futures.Executor | None = None, **batcher_options):
        self.colorizer = colorizer
        self.executor = executor
        self.batcher: DynamicBatcher = colorizer_batcher(colorizer, **batcher_options)

    def colorize(
        self, image: Any, timeout: float | None = ..., client: Hashable = None  # type: ignore[assignment]
    ) -> Any:
        """Colorize one image (blocking; any thread); ``client`` takes turns with other clients. Raises as
        ``DynamicBatcher.run``."""
        prepared = self.colorizer.prepare(image)
        ab = self.batcher.run(prepared, timeout, client)
        return self.colorizer.finish(prepared, ab)

    async def acolorize(
        self, image: Any, timeout: float | None = ..., client: Hashable = None  # type: ignore[assignment]
    ) -> Any:
        """Colorize one image (asyncio). Raises as ``DynamicBatcher.arun``."""
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(self.executor, self.colorizer.prepare, image)
        ab = await self.batcher.arun(prepared, timeout, client)
        return await loop.run_in_executor(self.executor, self.colorizer.finish, prepared, ab)

    @property
    def queue_depth(self) -> int:
        return self.batcher.queue_depth

    def close(self, drain: bool = True, timeout: float | None = None) -> None:
        """Close the batcher (see ``DynamicBatcher.close``); the colorizer stays open."""
        self.batcher.close(drain, timeout)

    def __enter__(self) -> "ColorizerBatcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
