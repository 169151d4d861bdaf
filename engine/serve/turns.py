"""Whose turn it is at the dynamic batcher, and how many places each client gets in a batch
(``colorize.serve.batcher.DynamicBatcher``; the service's fair shares: docs/serving.md#fair-shares-between-clients).

    turns = Turns(max_batch_size=8, cost=costs.estimate)
    turns.joined("key:3f2a")                       # a request of this client is queued
    client, key = turns.leader(due_groups)         # whose turn it is, and the group of its oldest due request
    batch = turns.take(client, key, group)         # the requests of the next batch (they leave the counts)

* **Turn order**: clients that had nothing queued when their request came and
  have not had a turn since (sparse clients, fq_codel's rule for sparse flows),
  then the others; clients served go to the back, in the order of their last
  place in the batch, so the turn goes on from the last one served.
* **Places**: a batch is filled round-robin across the group's clients in
  turn order from the leader (each client's oldest request first), none
  getting more places than the leader has requests in the group.
* **Time**: while other clients are active (queued, or served in the last two
  batches), the leader's places are cut so that the batch lasts at most
  ``TURN`` times a batch of one request, by the durations ``cost`` says
  (measured: ``batch_costs.BatchCosts``). A batch then takes more requests of
  the others, round-robin, while that makes it at most ``FILL_SLACK`` times
  longer: where batching is nearly free (a GPU) batches stay full; where each
  request costs its own time (a CPU) a turn is short.

Requests are any objects with ``client``, ``key`` and ``seq`` (arrival order) attributes. Not thread-safe: the
batcher calls it holding its lock.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any

#: while other clients are active, a client's turn lasts at most this many times a batch of one request
TURN = 4.0
#: a short batch takes more requests of other clients while that makes it at most this many times longer
FILL_SLACK = 1.15


class Turns:
    """The turn order of the clients with queued requests, and the composition of each batch.

    Args:
        max_batch_size: most requests per batch.
        cost: ``cost(key, n)``, the seconds a batch of ``n`` requests of ``key`` takes, or None when unknown
            (then turns are not bounded in time).
    """

    def __init__(self, max_batch_size: int, cost: Callable[[Hashable, int], float | None]):
        self.max_batch_size = max_batch_size
        self.cost = cost
        self._waiting: dict[Hashable, int] = {}  # client -> requests queued
        self._sparse: OrderedDict[Hashable, None] = OrderedDict()
        self._others: OrderedDict[Hashable, None] = OrderedDict()
        self._recent: deque[frozenset] = deque(maxlen=2)  # the clients of the last two batches

    def order(self) -> Iterator[Hashable]:
        """Clients with queued requests, in turn order."""
        return itertools.chain(self._sparse, self._others)

    def waiting(self, client: Hashable) -> int:
        """Requests of ``client`` queued."""
        return self._waiting.get(client, 0)

    def joined(self, client: Hashable) -> None:
        """A request of ``client`` was queued."""
        if client in self._waiting:
            self._waiting[client] += 1
        else:  # nothing queued: a sparse client, before those with requests waiting
            self._waiting[client] = 1
            self._sparse[client] = None

    def left(self, client: Hashable) -> None:
        """A queued request of ``client`` left the queue (cancelled, timed out, evicted)."""
        n = self._waiting[client] - 1
        if n:
            self._waiting[client] = n
        else:
            del self._waiting[client]
            self._sparse.pop(client, None)
            self._others.pop(client, None)

    def clear(self) -> None:
        self._waiting.clear()
        self._sparse.clear()
        self._others.clear()

    def leader(self, due: Mapping[Hashable, Iterable[Any]]) -> tuple[Hashable, Hashable]:
        """(client, key): the first client in turn order with a request in one of the ``due`` groups (key ->
        requests), and the key of its oldest such request."""
        oldest: dict[Hashable, Any] = {}
        for group in due.values():
            for req in group:
                if req.client not in oldest or req.seq < oldest[req.client].seq:
                    oldest[req.client] = req
        client = next(c for c in self.order() if c in oldest)
        return client, oldest[client].key

    def take(self, leader: Hashable, key: Hashable, group: Iterable[Any]) -> list[Any]:
        """The requests of the next batch, from ``group`` (the queued requests of ``key``, in arrival order) on
        ``leader``'s turn. They leave the counts (``left``), and the clients served move to the back."""
        lanes: dict[Hashable, deque] = {}
        for req in group:
            lanes.setdefault(req.client, deque()).append(req)
        turn_order = [c for c in self.order() if c in lanes]
        assert turn_order[0] == leader, (turn_order, leader)
        share = min(len(lanes[leader]), self.max_batch_size)  # places per client in this batch
        if any(c != leader for c in self._waiting) or any(c != leader for batch in self._recent for c in batch):
            share = self._within_turn(key, share)
        batch: list[Any] = []
        places: dict[Hashable, int] = {}
        order = list(turn_order)
        while order and len(batch) < self.max_batch_size:
            for client in list(order):
                batch.append(lanes[client].popleft())
                places[client] = places.get(client, 0) + 1
                if not lanes[client] or places[client] == share:
                    order.remove(client)
                if len(batch) == self.max_batch_size:
                    break
        self._fill(key, batch, [c for c in turn_order if lanes[c]], lanes)
        for req in batch:
            self.left(req.client)
        last = {req.client: i for i, req in enumerate(batch)}  # where each client was served last
        for client in sorted(last, key=last.get):  # the turn goes on from the last one served
            self._sparse.pop(client, None)
            self._others.pop(client, None)
            if client in self._waiting:
                self._others[client] = None
        self._recent.append(frozenset(last))
        return batch

    def _within_turn(self, key: Hashable, share: int) -> int:
        """The most requests, up to ``share``, whose batch lasts at most ``TURN`` times a batch of one
        (``share`` when the costs of ``key`` are not known yet)."""
        one = self.cost(key, 1)
        if one is None:
            return share
        while share > 1 and (self.cost(key, share) or 0.0) > TURN * one:
            share -= 1
        return share

    def _fill(self, key: Hashable, batch: list[Any], clients: list[Hashable], lanes: dict[Hashable, deque]) -> None:
        """Add requests of ``clients`` (round-robin, in this order) to ``batch`` while that makes it at most
        ``FILL_SLACK`` times longer."""
        base = self.cost(key, len(batch))
        while base is not None and clients and len(batch) < self.max_batch_size:
            for client in list(clients):
                longer = self.cost(key, len(batch) + 1)
                if longer is None or longer > FILL_SLACK * base or len(batch) == self.max_batch_size:
                    return
                batch.append(lanes[client].popleft())
                if not lanes[client]:
                    clients.remove(client)
