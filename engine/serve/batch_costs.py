"""How long a batch of n items takes, per batch key, measured as batches run: what the batcher's fair turns are
bounded by (``colorize.serve.batcher``).

    costs = BatchCosts()
    for seconds in (0.150, 0.070, 0.068):   # batches of 8 (the first one is not counted)
        costs.observe(key, 8, seconds)
    costs.observe(key, 1, 0.030)
    costs.observe(key, 1, 0.011)
    costs.estimate(key, 4)                  # 0.036: between the sizes seen, linear
    costs.estimate(other_key, 4)            # None: nothing seen for that key

The first batch of each size is not counted: it pays once for what later ones
reuse (allocations, kernel choice, a graph compiled for a new shape). Each
size seen again keeps a moving average of its durations. A size not seen is
interpolated linearly between the nearest sizes seen; beyond them it follows
the line through the two nearest (or, with one size seen, the line through the
origin: each item costs the same). On a CPU, where a batch costs about its
number of items, a batch of 8 is about 6x a batch of 1; on a GPU it is about
as long as a batch of 1: the batcher lets its turns follow.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

#: weight of the newest duration in a size's moving average
SMOOTHING = 0.2
#: batch keys remembered (the least recently run are forgotten first)
MAX_KEYS = 64


class BatchCosts:
    """Measured batch durations per key and size; not thread-safe (the batcher's worker alone uses it)."""

    def __init__(self, max_keys: int = MAX_KEYS):
        self.max_keys = max_keys
        self._seconds: OrderedDict[Hashable, dict[int, float]] = OrderedDict()
        self._first: OrderedDict[Hashable, set[int]] = OrderedDict()  # sizes whose first batch has run

    def observe(self, key: Hashable, size: int, seconds: float) -> None:
        """A batch of ``size`` items of ``key`` took ``seconds``."""
        first = self._first.pop(key, None) or set()
        self._first[key] = first
        sizes = self._seconds.pop(key, None) or {}
        self._seconds[key] = sizes
        if size not in first:
            first.add(size)
        else:
            old = sizes.get(size)
            sizes[size] = seconds if old is None else old + SMOOTHING * (seconds - old)
        for remembered in (self._first, self._seconds):
            while len(remembered) > self.max_keys:
                remembered.popitem(last=False)

    def estimate(self, key: Hashable, size: int) -> float | None:
        """Seconds a batch of ``size`` items of ``key`` takes; None when no batch of ``key`` has run yet."""
        sizes = self._seconds.get(key)
        if not sizes:
            return None
        if size in sizes:
            return sizes[size]
        below = [n for n in sizes if n < size]
        above = [n for n in sizes if n > size]
        if below and above:
            lo, hi = max(below), min(above)
        elif len(sizes) == 1:
            (n, t), = sizes.items()
            return t * size / n
        elif below:
            hi = max(below)
            lo = max(n for n in below if n != hi)
        else:
            lo = min(above)
            hi = min(n for n in above if n != lo)
        t_lo, t_hi = sizes[lo], sizes[hi]
        return max(0.0, t_lo + (t_hi - t_lo) * (size - lo) / (hi - lo))
