"""Prometheus text-format metrics without a dependency: counters, gauges,
histograms with labels, rendered in the exposition format 0.0.4.

    registry = Registry()
    requests = registry.counter("colorize_requests_total", "HTTP requests", ["status"])
    requests.inc(status="200")
    depth = registry.gauge("colorize_queue_depth", "queued requests", fn=lambda: batcher.queue_depth)
    latency = registry.histogram("colorize_request_seconds", "latency", buckets=(0.01, 0.1, 1))
    latency.observe(0.05)
    registry.render()        # the /metrics body; content type CONTENT_TYPE

Thread-safe: every update takes the metric's lock.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()):
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labelnames:
            if not _LABEL.match(label) or label == "le":
                raise ValueError(f"invalid label name {label!r} for metric {name!r}")
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"metric {self.name!r} takes labels {list(self.labelnames)}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {_escape(self.help)}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()):
        super().__init__(name, help, labelnames)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError(f"counter {self.name!r} can only increase, got {amount}")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.labelnames, k)} {_fmt(v)}" for k, v in items]


class Gauge(_Metric):
    """A value that goes up and down; or, with ``fn``, read from a callback at render time."""

    kind = "gauge"

    def __init__(self, name: str, help: str, fn: Callable[[], float] | None = None):
        super().__init__(name, help)
        self.fn = fn
        self._value = 0.0

    def set(self, value: float) -> None:
        with self._lock:
            self._value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self._value += amount

    def value(self) -> float:
        if self.fn is not None:
            return float(self.fn())
        with self._lock:
            return self._value

    def samples(self) -> list[str]:
        return [f"{self.name} {_fmt(self.value())}"]


class Histogram(_Metric):
    """Cumulative buckets (``le``), ``_sum`` and ``_count``, optionally per label set."""

    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Iterable[float], labelnames: Sequence[str] = ()):
        super().__init__(name, help, labelnames)
        b = sorted(float(x) for x in buckets)
        if not b or len(set(b)) != len(b):
            raise ValueError(f"histogram {name!r} needs distinct buckets, got {b}")
        if not math.isinf(b[-1]):
            b.append(math.inf)
        self.buckets = tuple(b)
        self._data: dict[tuple[str, ...], list[float]] = {}  # key -> [count per bucket..., sum]

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            row = self._data.setdefault(key, [0.0] * (len(self.buckets) + 1))
            for i, upper in enumerate(self.buckets):
                if value <= upper:
                    row[i] += 1
                    break
            row[-1] += value

    def count(self, **labels: str) -> int:
        with self._lock:
            row = self._data.get(self._key(labels))
            return int(sum(row[:-1])) if row else 0

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._data.items())
        if not items and not self.labelnames:
            items = [((), [0.0] * (len(self.buckets) + 1))]
        out = []
        for key, row in items:
            cumulative = 0.0
            for upper, n in zip(self.buckets, row):
                cumulative += n
                le = 'le="' + _fmt(upper) + '"'
                out.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {_fmt(cumulative)}")
            out.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_fmt(row[-1])}")
            out.append(f"{self.name}_count{_labels(self.labelnames, key)} {_fmt(cumulative)}")
        return out


class Registry:
    """A set of metrics rendered together."""

    def __init__(self):
        self._metrics: dict[str, _Metric] = {}

    def _add(self, metric: _Metric):
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name!r} is already registered")
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help, labelnames))

    def gauge(self, name: str, help: str, fn: Callable[[], float] | None = None) -> Gauge:
        return self._add(Gauge(name, help, fn))

    def histogram(self, name: str, help: str, buckets: Iterable[float], labelnames: Sequence[str] = ()) -> Histogram:
        return self._add(Histogram(name, help, buckets, labelnames))

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._metrics.values():
            lines += metric.header() + metric.samples()
        return "\n".join(lines) + "\n"


def parse_text(text: str) -> dict[str, float]:
    """Samples of a rendered exposition as ``{'name{labels}': value}`` (tests and the load benchmark)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
    return out
