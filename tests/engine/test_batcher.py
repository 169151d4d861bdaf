"""DynamicBatcher: batching, grouping, backpressure, timeouts, shutdown, sync and async; ColorizerBatcher."""

import asyncio
import concurrent.futures
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest

from colorize.serve.batcher import (
    BatcherClosed,
    BatcherError,
    ColorizerBatcher,
    DynamicBatcher,
    Overloaded,
    RequestTimeout,
)

WAIT = 10.0  # generous bound for anything that should happen "soon"; keeps a broken test from hanging


class Recorder:
    """A batch function that doubles numbers, records its batches, optionally sleeps or waits on a gate."""

    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None):
        self.delay = delay
        self.gate = gate
        self.batches: list[list] = []
        self.threads: set[str] = set()

    def __call__(self, items):
        self.threads.add(threading.current_thread().name)
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        time.sleep(self.delay)
        self.batches.append(list(items))
        return [2 * x for x in items]


def wait_until(cond, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


def test_each_thread_gets_its_own_result_in_batches():
    fn = Recorder(delay=0.02)
    with DynamicBatcher(fn, max_batch_size=4, max_delay_ms=5) as b, ThreadPoolExecutor(16) as pool:
        results = list(pool.map(b.run, range(32)))
    assert results == [2 * i for i in range(32)]
    sizes = [len(batch) for batch in fn.batches]
    assert sum(sizes) == 32 and max(sizes) <= 4
    assert max(sizes) > 1, f"nothing was batched: {sizes}"
    assert fn.threads == {"colorize-batcher"}  # fn runs only on the worker


def test_items_with_different_keys_never_share_a_batch():
    fn = Recorder(delay=0.01)
    with DynamicBatcher(fn, key=lambda x: x % 3, max_batch_size=8, max_delay_ms=5) as b, ThreadPoolExecutor(12) as pool:
        results = list(pool.map(b.run, range(48)))
    assert results == [2 * i for i in range(48)]
    for batch in fn.batches:
        assert len({x % 3 for x in batch}) == 1, batch
    assert max(len(batch) for batch in fn.batches) > 1


def test_full_batch_runs_without_waiting_for_the_delay():
    fn = Recorder()
    with DynamicBatcher(fn, max_batch_size=4, max_delay_ms=60_000) as b:
        t0 = time.monotonic()
        futures = [b.submit(i) for i in range(4)]
        assert [f.result(WAIT) for f in futures] == [0, 2, 4, 6]
        assert time.monotonic() - t0 < 5.0
    assert fn.batches == [[0, 1, 2, 3]]


def test_partial_batch_waits_max_delay_then_runs():
    fn = Recorder()
    with DynamicBatcher(fn, max_batch_size=8, max_delay_ms=150) as b:
        t0 = time.monotonic()
        futures = [b.submit(i) for i in range(3)]
        assert [f.result(WAIT) for f in futures] == [0, 2, 4]
        elapsed = time.monotonic() - t0
    assert 0.14 <= elapsed < 5.0, elapsed
    assert fn.batches == [[0, 1, 2]]


def test_queue_full_raises_overloaded_then_recovers():
    gate = threading.Event()
    fn = Recorder(gate=gate)
    b = DynamicBatcher(fn, max_batch_size=1, max_delay_ms=0, max_queue_size=2)
    try:
        running = b.submit(0)
        wait_until(lambda: b.running == 1)
        queued = [b.submit(1), b.submit(2)]
        assert b.queue_depth == 2
        with pytest.raises(Overloaded, match="max_queue_size=2"):
            b.submit(3)
        gate.set()
        assert running.result(WAIT) == 0 and [f.result(WAIT) for f in queued] == [2, 4]
        assert b.run(5, timeout=WAIT) == 10  # room again
    finally:
        gate.set()
        b.close()


def test_timeout_while_queued_drops_the_request():
    gate = threading.Event()
    fn = Recorder(gate=gate)
    b = DynamicBatcher(fn, max_batch_size=1, max_delay_ms=0)
    try:
        first = b.submit("a")
        wait_until(lambda: b.running == 1)
        t0 = time.monotonic()
        with pytest.raises(RequestTimeout):
            b.run("b", timeout=0.1)
        assert 0.09 <= time.monotonic() - t0 < 5.0
        assert b.queue_depth == 0  # the slot was freed at once
        late = b.submit("c", timeout=0.05)  # expires in the queue: the worker fails it without running it
        time.sleep(0.1)
        gate.set()
        assert first.result(WAIT) == "aa"
        with pytest.raises(RequestTimeout):
            late.result(WAIT)
        assert fn.batches == [["a"]]  # neither "b" nor "c" ran
    finally:
        gate.set()
        b.close()


def test_batch_function_error_reaches_every_caller_and_worker_survives():
    calls = []

    def fn(items):
        calls.append(items)
        if len(calls) == 1:
            raise ZeroDivisionError("boom")
        return items

    with DynamicBatcher(fn, max_batch_size=4, max_delay_ms=50) as b:
        futures = [b.submit(i) for i in range(3)]
        for f in futures:
            with pytest.raises(ZeroDivisionError, match="boom"):
                f.result(WAIT)
        assert b.run(7, timeout=WAIT) == 7


def test_wrong_number_of_results_is_an_error():
    with DynamicBatcher(lambda items: items[:1], max_batch_size=2, max_delay_ms=50) as b:
        futures = [b.submit(i) for i in range(2)]
        with pytest.raises(BatcherError, match="returned 1 results for 2 items"):
            futures[1].result(WAIT)


def test_async_callers_get_their_own_results():
    fn = Recorder(delay=0.01)

    async def main(b):
        return await asyncio.gather(*(b.arun(i, timeout=WAIT) for i in range(20)))

    with DynamicBatcher(fn, max_batch_size=8, max_delay_ms=20) as b:
        assert asyncio.run(main(b)) == [2 * i for i in range(20)]
    assert max(len(batch) for batch in fn.batches) > 1


def test_async_timeout_and_cancellation_drop_queued_requests():
    gate = threading.Event()
    fn = Recorder(gate=gate)
    b = DynamicBatcher(fn, max_batch_size=1, max_delay_ms=0)

    async def main():
        first = asyncio.ensure_future(b.arun("a", timeout=WAIT))
        await asyncio.sleep(0)
        while b.running != 1:
            await asyncio.sleep(0.002)
        with pytest.raises(RequestTimeout):
            await b.arun("b", timeout=0.05)
        task = asyncio.ensure_future(b.arun("c", timeout=WAIT))
        while b.queue_depth != 1:
            await asyncio.sleep(0.002)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert b.queue_depth == 0
        gate.set()
        return await first

    try:
        assert asyncio.run(main()) == "aa"
        assert fn.batches == [["a"]]
    finally:
        gate.set()
        b.close()


def test_close_drains_queued_work_then_refuses_new():
    gate = threading.Event()
    fn = Recorder(gate=gate)
    b = DynamicBatcher(fn, max_batch_size=2, max_delay_ms=60_000)
    futures = [b.submit(i) for i in range(5)]
    closer = threading.Thread(target=b.close)
    closer.start()
    wait_until(lambda: b.closed)
    with pytest.raises(BatcherClosed):
        b.submit(9)
    gate.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert [f.result(0) for f in futures] == [0, 2, 4, 6, 8]  # ran without waiting for the 60 s delay


def test_close_without_drain_fails_queued_work():
    gate = threading.Event()
    fn = Recorder(gate=gate)
    b = DynamicBatcher(fn, max_batch_size=1, max_delay_ms=0)
    running = b.submit(0)
    wait_until(lambda: b.running == 1)
    queued = [b.submit(i) for i in (1, 2)]
    closer = threading.Thread(target=b.close, kwargs={"drain": False})
    closer.start()
    for f in queued:
        with pytest.raises(BatcherClosed, match="before this request ran"):
            f.result(WAIT)
    gate.set()
    closer.join(WAIT)
    assert running.result(0) == 0  # the batch in progress finished
    assert fn.batches == [[0]]


def test_close_with_drain_timeout_fails_what_is_left():
    gate = threading.Event()
    fn = Recorder(gate=gate)
    b = DynamicBatcher(fn, max_batch_size=1, max_delay_ms=0)
    running = b.submit(0)
    wait_until(lambda: b.running == 1)
    queued = b.submit(1)
    b.close(timeout=0.05)
    with pytest.raises(BatcherClosed, match="drain"):
        queued.result(WAIT)
    gate.set()
    assert running.result(WAIT) == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [({"max_batch_size": 0}, "max_batch_size"), ({"max_delay_ms": -1}, "max_delay_ms"),
     ({"max_queue_size": 0}, "max_queue_size"), ({"timeout_s": 0}, "timeout_s")],
)
def test_bad_options_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DynamicBatcher(lambda x: x, **kwargs)


# -- ColorizerBatcher over an object with the Colorizer contract -----------------------------------------------


@dataclass
class _Prepared:
    l: np.ndarray  # [1,h,w]
    key: tuple

    @property
    def batch_key(self) -> tuple:
        return self.key


class _Engine:
    def __init__(self):
        self.batch_shapes = []

    def run(self, l):
        assert l.ndim == 4 and l.shape[1] == 1
        time.sleep(0.01)
        self.batch_shapes.append(l.shape)
        return np.concatenate([l, -l], axis=1)


class _Colorizer:
    def __init__(self):
        self.engine = _Engine()
        self.threads = set()

    def run(self, prepared) -> np.ndarray:
        return self.engine.run(np.stack([p.l for p in prepared]))

    def prepare(self, image):
        self.threads.add(threading.current_thread().name)
        l = np.asarray(image, dtype=np.float32)[None]
        return _Prepared(l, l.shape)

    def finish(self, prepared, ab):
        self.threads.add(threading.current_thread().name)
        assert ab.shape == (2,) + prepared.l.shape[1:]
        return np.concatenate([prepared.l, ab])


def _images():
    rng = np.random.default_rng(0)
    return [rng.random((4 + i % 3, 6)).astype(np.float32) for i in range(24)]


def test_colorizer_batcher_threads():
    col = _Colorizer()
    images = _images()
    with ColorizerBatcher(col, max_batch_size=4, max_delay_ms=5) as cb, ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda im: cb.colorize(im, timeout=WAIT), images))
    for im, out in zip(images, outs):
        np.testing.assert_array_equal(out, np.stack([im, im, -im]))
    assert len(col.engine.batch_shapes) < len(images)  # some images shared an engine.run
    assert all(n <= 4 for n, *_ in col.engine.batch_shapes)
    assert "colorize-batcher" not in col.threads  # prepare/finish stay off the batching worker


def test_colorizer_batcher_asyncio():
    col = _Colorizer()
    images = _images()

    async def main(cb):
        return await asyncio.gather(*(cb.acolorize(im, timeout=WAIT) for im in images))

    with ColorizerBatcher(col, max_batch_size=8, max_delay_ms=20) as cb:
        outs = asyncio.run(main(cb))
    for im, out in zip(images, outs):
        np.testing.assert_array_equal(out, np.stack([im, im, -im]))
    assert len(col.engine.batch_shapes) < len(images)


class _Item:
    """A weakly referenceable stand-in for a prepared image."""

    def __init__(self, i: int):
        self.l = np.full(1000, i, np.float32)


@pytest.fixture
def no_cycle_collector():
    import gc

    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_finished_requests_are_freed_by_reference_counting(no_cycle_collector):
    """Nothing of a request outlives it in a reference cycle (they held image arrays until a full GC ran) nor on
    the idle worker (it held the last batch until the next one came)."""
    import weakref

    with DynamicBatcher(lambda items: [it.l * 2 for it in items], max_batch_size=4, max_delay_ms=1) as b:
        refs = []
        for i in range(6):
            item = _Item(i)
            refs.append(weakref.ref(item))
            assert b.run(item, timeout=WAIT)[0] == 2 * i
            del item

        async def one(i):
            item = _Item(i)
            refs.append(weakref.ref(item))
            return (await b.arun(item, timeout=WAIT))[0]

        async def many():
            return await asyncio.gather(*(one(i) for i in range(6, 12)))

        assert asyncio.run(many()) == [2 * i for i in range(6, 12)]
        assert [i for i, r in enumerate(refs) if r() is not None] == []


# -- clients take turns --------------------------------------------------------------------------------------------


def _hold_worker(b: DynamicBatcher, client: str = "held") -> concurrent.futures.Future:
    """Submit one item that occupies the worker (the batch function waits on its gate) until the gate opens."""
    first = b.submit(("held", 0), client=client)
    wait_until(lambda: b.running == 1)
    return first


def per_item(key, n: int) -> float:
    """A cost model where each item takes the same time (a CPU): batching saves nothing."""
    return float(n)


def flat(key, n: int) -> float:
    """A cost model where a batch takes the same time whatever its size (a GPU far from full)."""
    return 1.0


class Labelled(Recorder):
    """Records batches of (client, n) items and returns n for each."""

    def __call__(self, items):
        super().__call__([])
        self.batches[-1] = list(items)
        return [n for _, n in items]


def test_a_batch_is_filled_round_robin_across_clients():
    """Client a has 9 items queued before b's 1 and c's 2: the next batch takes one of each in turn, each client's
    oldest first, instead of a's first four. Then it is c's turn, with 1 item: a gets no more places than c."""
    gate = threading.Event()
    fn = Labelled(gate=gate)
    with DynamicBatcher(fn, max_batch_size=4, max_delay_ms=0, cost=per_item) as b:
        first = _hold_worker(b)
        futures = [b.submit(("a", i), client="a") for i in range(9)]
        futures += [b.submit(("b", 0), client="b")] + [b.submit(("c", i), client="c") for i in range(2)]
        assert b.queued_by("a") == 9 and b.queued_by("b") == 1 and b.queue_depth == 12
        gate.set()
        assert [f.result(WAIT) for f in futures] == list(range(9)) + [0, 0, 1]
        first.result(WAIT)
    assert fn.batches[1] == [("a", 0), ("b", 0), ("c", 0), ("a", 1)]
    assert fn.batches[2] == [("c", 1), ("a", 2)]  # c was next in the round
    assert fn.batches[3:] == [[("a", 3), ("a", 4), ("a", 5), ("a", 6)], [("a", 7), ("a", 8)]]


def test_a_client_with_nothing_queued_takes_the_next_turn():
    """a has had a turn and still has 5 queued; b, which had nothing queued, goes next, with a short batch of its
    own turn (its item and one of a's), instead of after a's next 4."""
    steps = threading.Semaphore(0)
    batches = []

    def fn(items):
        assert steps.acquire(timeout=WAIT)
        batches.append(list(items))
        return [n for _, n in items]

    with DynamicBatcher(fn, max_batch_size=4, max_delay_ms=0, cost=per_item) as b:
        first = _hold_worker(b)
        a = [b.submit(("a", i), client="a") for i in range(9)]
        steps.release()  # the held batch ends; a's first 4 start
        wait_until(lambda: b.queue_depth == 5 and b.running == 4)
        late = b.submit(("b", 0), client="b")
        for _ in range(3):
            steps.release()
        assert late.result(WAIT) == 0 and [f.result(WAIT) for f in a] == list(range(9)) and first.result(WAIT) == 0
    assert batches[1:] == [[("a", i) for i in range(4)], [("b", 0), ("a", 4)], [("a", i) for i in range(5, 9)]]


def test_the_group_that_runs_is_the_one_whose_client_has_the_turn():
    """Client a keeps one shape full; b's single item of another shape runs in the next batch but one, not after
    all of a's full batches."""
    gate = threading.Event()
    fn = Labelled(gate=gate)
    with DynamicBatcher(fn, key=lambda item: item[0] == "b", max_batch_size=2, max_delay_ms=0, cost=per_item) as b:
        first = _hold_worker(b)
        futures = [b.submit(("a", i), client="a") for i in range(6)] + [b.submit(("b", 0), client="b")]
        gate.set()
        for f in futures:
            f.result(WAIT)
        first.result(WAIT)
    assert fn.batches[1:] == [[("a", 0), ("a", 1)], [("b", 0)], [("a", 2), ("a", 3)], [("a", 4), ("a", 5)]]


def test_without_clients_it_is_first_come_first_served():
    gate = threading.Event()
    fn = Recorder(gate=gate)
    with DynamicBatcher(fn, max_batch_size=3, max_delay_ms=0) as b:
        first = b.submit(-1)
        wait_until(lambda: b.running == 1)
        futures = [b.submit(i) for i in range(7)]
        gate.set()
        assert [f.result(WAIT) for f in futures] == [2 * i for i in range(7)] and first.result(WAIT) == -2
    assert fn.batches == [[-1], [0, 1, 2], [3, 4, 5], [6]]


def test_evict_newest_takes_a_clients_newest_queued_item_out():
    gate = threading.Event()
    fn = Labelled(gate=gate)
    with DynamicBatcher(fn, max_batch_size=8, max_delay_ms=0, cost=per_item) as b:
        first = _hold_worker(b)
        a = [b.submit(("a", i), client="a") for i in range(3)]
        other = b.submit(("b", 0), client="b")
        assert b.evict_newest("a", BatcherClosed("gave way")) and b.evict_newest("a", BatcherClosed("gave way"))
        assert b.queued_by("a") == 1 and b.queue_depth == 2
        for f in a[1:]:
            with pytest.raises(BatcherClosed, match="gave way"):
                f.result(0)
        assert not b.evict_newest("held", BatcherClosed("x"))  # running, not queued: never touched
        assert not b.evict_newest("nobody", BatcherClosed("x"))
        gate.set()
        assert a[0].result(WAIT) == 0 and other.result(WAIT) == 0 and first.result(WAIT) == 0
    assert fn.batches[1] == [("a", 0), ("b", 0)]


def test_colorizer_batcher_passes_the_client_on():
    col = _Colorizer()
    images = _images()[:4]
    with ColorizerBatcher(col, max_batch_size=4, max_delay_ms=5) as cb:
        outs = [cb.colorize(im, timeout=WAIT, client=f"c{i % 2}") for i, im in enumerate(images)]
    for im, out in zip(images, outs):
        np.testing.assert_array_equal(out, np.stack([im, im, -im]))


def _stepped(fn_batches: list, steps: threading.Semaphore):
    def fn(items):
        assert steps.acquire(timeout=WAIT)
        fn_batches.append(list(items))
        return [n for _, n in items]

    return fn


@pytest.mark.parametrize("cost, want", [
    # each item costs its time: while b is active a's turn lasts at most 4 batches of one, and b's short turn
    # takes no more of a's items than b has (one more would make it 1.5x longer than 2 items)
    (per_item, [[("a", i) for i in range(8)], [("b", 0), ("a", 8)], [("a", i) for i in range(9, 13)],
                [("b", 1), ("a", 13)], [("a", i) for i in range(14, 18)]]),
    # batches cost the same whatever their size: turns stay full, b's filled with a's items
    (flat, [[("a", i) for i in range(8)], [("b", 0)] + [("a", i) for i in range(8, 15)],
            [("a", i) for i in range(15, 18)], [("b", 1)]]),
], ids=["per-item", "flat"])
def test_turns_follow_what_batches_cost(cost, want):
    """a keeps its items queued; b sends one at a time, each as soon as the last is done."""
    steps, batches = threading.Semaphore(0), []
    with DynamicBatcher(_stepped(batches, steps), max_batch_size=8, max_delay_ms=0, cost=cost) as b:
        first = _hold_worker(b, client="a")
        a = [b.submit(("a", i), client="a") for i in range(18)]
        steps.release()  # the held batch ends: a's full turn starts, nobody else being active
        wait_until(lambda: b.running == 8)
        for i in range(2):
            polite = b.submit(("b", i), client="b")
            steps.release(2)
            assert polite.result(WAIT) == i
            wait_until(lambda: b.running or b.queue_depth == 0)
        steps.release(10)
        assert [f.result(WAIT) for f in a] == list(range(18)) and first.result(WAIT) == 0
    assert batches[1:] == want


def test_batch_costs_are_measured_per_key():
    from colorize.serve.batch_costs import BatchCosts

    costs = BatchCosts(max_keys=2)
    costs.observe("x", 8, 0.5)  # the first batch of a size is not counted
    assert costs.estimate("x", 4) is None
    costs.observe("x", 8, 0.08)
    assert costs.estimate("x", 4) == pytest.approx(0.04)  # one size seen: each item the same
    costs.observe("x", 1, 0.3)
    costs.observe("x", 1, 0.02)
    assert costs.estimate("x", 4) == pytest.approx(0.02 + 0.06 * 3 / 7)  # between the sizes seen
    assert costs.estimate("x", 16) == pytest.approx(0.02 + 0.06 * 15 / 7)  # beyond: the same line
    costs.observe("x", 8, 0.18)
    assert costs.estimate("x", 8) == pytest.approx(0.08 + 0.2 * 0.1)  # a moving average
    for key in "yyzz":
        costs.observe(key, 2, 1.0)
    assert costs.estimate("x", 8) is None and costs.estimate("y", 2) == 1.0  # the least recent key is forgotten


def test_batches_are_timed_for_the_cost_model():
    """Without a cost model the batcher measures its batches (per key and size); with one, it measures nothing."""
    def fn(items):
        time.sleep(0.01 * len(items))
        return items

    with DynamicBatcher(fn, key=len, max_batch_size=4, max_delay_ms=50) as b:
        for _ in range(2):  # the first batch of each size is not counted
            assert b.run("x", timeout=WAIT) == "x"
            assert [f.result(WAIT) for f in [b.submit("y") for _ in range(4)]] == ["y"] * 4
        assert 0.01 <= b.costs.estimate(1, 1) < 0.5 and 0.04 <= b.costs.estimate(1, 4) < 2.0
        assert b.costs.estimate(2, 1) is None  # a key never run
    with DynamicBatcher(fn, cost=per_item) as b:
        assert b.run("x", timeout=WAIT) == "x" and b.costs is None
