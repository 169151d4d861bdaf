"""``auto``: which candidate (backend x precision) an ``Engine`` keeps, by measured speed, cached per machine.

    backend, verdict, selection = choose(candidates, load, check, runner, adapter, mode="measure", key=...)

Two modes (``Engine.load(..., auto=...)``, else ``$COLORIZE_AUTO``, else "measure"):

* ``measure``: on the first load of a model on a machine, every available candidate is loaded and timed on the
  model's working input (``timing_input``: a warm-up, then the best of a few runs, about two seconds a candidate),
  and the fastest that passes the quality guard (``check``: ``engine/guard.py``) is kept. A candidate meets the guard
  only when it is faster than the one kept so far, so the slower ones cost no guard run; each is closed as soon as
  it is beaten. The choice is stored in the artifact cache (kind ``auto-choice``) under ``key``: the model's files,
  the candidates available, its I/O description, the guard, the backend options and the machine
  (``colorize.machine_id``); a cache that cannot be written keeps it for this load only. Later loads read it and load that candidate only (its guard verdict is cached too); when
  it no longer loads or passes, the candidates are measured again and the cache updated. Processes that load the same
  model at once (Ray actors) measure once: the others wait on the cache entry's lock and read the choice.
* ``order``: the first candidate that is available, loads and passes; nothing is timed. The smallest start-up and the
  same pick on every machine with the same libraries; the test suite runs this way (``tests/conftest.py``).

The candidates come in ``AUTO_ORDER`` (``engine/engine.py``), which is also the tie-break: a later candidate replaces
the fastest so far only when it is more than ``TIE_MARGIN`` faster. Each candidate's fate is one line of the
selection: "selected (4.21 ms/img, measured)", "slower (6.03 ms/img)" ("slower (48.1 ms/img, first run)": its
warm-up alone was over ``CUT_OFF`` times the fastest), "selected (cached choice: 4.21 ms/img, measured 2025-06-01
09:30 UTC)", "rejected: ...", "failed to load: ...", "failed to run: ...", "unavailable: ...".
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from colorize.artifacts.cache import ArtifactCache, sha256_file
from colorize.artifacts.model_ref import ModelRef
from colorize.model_adapter import ModelAdapter

MODES = ("measure", "order")
#: the environment variable that sets the mode when ``Engine.load`` is not given ``auto=``
ENV = "COLORIZE_AUTO"
#: a dynamic model is timed on square images of this side (the ``Colorizer``'s default working size)
WORKING_SIZE = 256
#: images per timed run (a static-batch model: its batch)
BATCH = 8
#: fewer images per run when one run of ``BATCH`` on the first candidate would take longer than this (a heavy model)
RUN_TARGET_S = 0.5
#: timed runs per candidate after its warm-up: the best of up to ``RUNS``, fewer once ``BUDGET_S`` is spent
RUNS = 3
BUDGET_S = 2.0
#: a candidate later in ``AUTO_ORDER`` must be this much faster (a fraction) to replace an earlier one
TIE_MARGIN = 0.05
#: a candidate whose warm-up run alone is this many times slower per image than the fastest so far is not timed
#: further: eager torch and the like cost one run, not several. Safe: a first run took at most 2.7x a timed one
#: (OpenVINO; ONNX Runtime 1.25x, torch 1.1x) for the default photo model on the 2-core AMD EPYC Zen 4
CUT_OFF = 4.0
#: what is timed and how; a change here measures every cached choice again
RECIPE = "auto-choice/1"

Pair = tuple[str, str]
Outcome = tuple[str, str, str]


class NothingKept(Exception):
    """No candidate loaded and passed; ``selection`` says what became of each."""

    def __init__(self, selection: list[Outcome]):
        super().__init__("no candidate kept")
        self.selection = selection


def auto_mode(mode: str | None = None) -> str:
    """``mode``, else ``$COLORIZE_AUTO``, else "measure".

    Raises:
        ValueError: a mode other than "measure" or "order" (the message says where it came from).
    """
    source = "auto"
    if mode is None:
        mode, source = os.environ.get(ENV) or "measure", f"${ENV}"
    if mode not in MODES:
        raise ValueError(f"{source}={mode!r}: expected one of {', '.join(MODES)}")
    return mode


def model_identity(ref: ModelRef) -> dict:
    """The model as cache keys see it: its names, weights sha256, and the sha256 of its files (the ONNX, the
    checkpoint's metadata, a shipped INT8 file beside the ONNX)."""
    files = [p for p in (ref.onnx, ref.checkpoint) if p is not None]
    if ref.onnx is not None and (int8 := ref.onnx.with_name(ref.onnx.stem + ".int8.onnx")).is_file():
        files.append(int8)
    return {"name": ref.name, "arch": ref.arch, "arch_kwargs": ref.arch_kwargs, "weights_sha256": ref.sha256,
            "random_init": ref.random_init, "files": {p.name: sha256_file(p) for p in files}}


def choice_key(ref: ModelRef, adapter: ModelAdapter, reachable: list[Pair], guard: bool, options: dict) -> dict:
    """What a measured choice depends on: the model's files, the candidates available, the I/O description, the
    guard's images (or no guard), the backend options (threads, mode), the machine, and how it was timed."""
    from colorize import machine_id
    from colorize.guard import guard_source

    return {
        "kind": "auto-choice",
        "recipe": RECIPE,
        "timing": {"working_size": WORKING_SIZE, "batch": BATCH},
        "model": model_identity(ref),
        "candidates": [f"{b}/{p}" for b, p in reachable],
        "io": adapter.io.to_dict(),
        "guard": guard_source() if guard else None,
        "options": {k: v for k, v in sorted(options.items()) if k != "cache_dir"},
        "machine": machine_id.fingerprint(),
    }


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _gray(n: int, h: int, w: int) -> np.ndarray:
    """Model-normalized L (our convention: about [-1, 1]), fixed noise."""
    return np.random.default_rng(0).uniform(-1, 1, (n, 1, h, w)).astype(np.float32)


def timing_input(adapter: ModelAdapter, run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The input every candidate is timed on: a static model's size and batch; else ``BATCH`` images of
    ``WORKING_SIZE`` square (rounded up to the stride), fewer when ``run`` (the first candidate) takes longer than
    ``RUN_TARGET_S`` for that many, so that a heavy model is measured in seconds too."""
    io = adapter.io
    side = -(-WORKING_SIZE // adapter.stride) * adapter.stride
    h, w = io.size or (side, side)
    if io.batch is not None:
        return _gray(io.batch, h, w)
    one = _gray(1, h, w)
    run(one)  # warm-up
    start = time.perf_counter()
    run(one)
    per_image = max(time.perf_counter() - start, 1e-9)
    return _gray(max(1, min(BATCH, int(RUN_TARGET_S / per_image))), h, w)


def seconds_per_image(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                      beat: float | None = None) -> tuple[float, bool]:
    """``run``'s time per image of ``x`` and whether it was timed after a warm-up: one warm-up run (compiles and
    allocates for the shape), then the best of up to ``RUNS`` timed runs, fewer once ``BUDGET_S`` is spent (at least
    one); or the warm-up's alone when it is over ``CUT_OFF`` times ``beat`` (the fastest so far, per image)."""
    start = time.perf_counter()
    run(x)
    first = (time.perf_counter() - start) / len(x)
    if beat is not None and first > CUT_OFF * beat:
        return first, False
    best = math.inf
    start = time.perf_counter()
    for _ in range(RUNS):
        t0 = time.perf_counter()
        run(x)
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() - start >= BUDGET_S:
            break
    return best / len(x), True


@dataclass
class _Kept:
    backend: Any
    verdict: Any
    outcomes: dict[Pair, str]
    record: dict | None = None  # what the cache stores, for a fresh measurement


def _listed(candidates: Sequence[tuple[str, str, str | None]], outcomes: dict[Pair, str]) -> list[Outcome]:
    return [(b, p, outcomes[(b, p)]) for b, p, _ in candidates if (b, p) in outcomes]


def _checked(pair: Pair, load, check) -> tuple[Any, Any] | str:
    """``pair`` loaded and passed by ``check``: (backend, verdict), or why not (the backend closed)."""
    be = load(*pair)
    if isinstance(be, str):
        return be
    try:
        verdict = check(be)
    except BaseException:
        be.close()
        raise
    if isinstance(verdict, str):
        be.close()
        return verdict
    return be, verdict


def _by_order(candidates, load, check) -> _Kept:
    outcomes: dict[Pair, str] = {}
    for b, p, unavailable in candidates:
        got = f"unavailable: {unavailable}" if unavailable else _checked((b, p), load, check)
        if isinstance(got, str):
            outcomes[(b, p)] = got
            continue
        outcomes[(b, p)] = "selected"
        return _Kept(*got, outcomes)
    raise NothingKept(_listed(candidates, outcomes))


def _measure(reachable: list[Pair], load, check, runner, adapter: ModelAdapter, known: dict[Pair, str]) -> _Kept:
    """Load and time every candidate in ``reachable`` (``known``: outcomes already met, not tried again) and keep
    the fastest that passes ``check``: a candidate is checked (the guard) only when it is faster than the one kept
    so far, so a slower one costs no guard run."""
    outcomes: dict[Pair, str] = {}
    best: tuple[float, Pair, Any, Any] | None = None
    be = None
    x = None
    try:
        for pair in reachable:
            be = known.get(pair) or load(*pair)
            if isinstance(be, str):
                outcomes[pair], be = be, None
                continue
            try:
                run = runner(be)
                if x is None:
                    x = timing_input(adapter, run)
                seconds, timed = seconds_per_image(run, x, best[0] if best else None)
            except Exception as e:
                outcomes[pair] = f"failed to run: {type(e).__name__}: {' '.join(str(e).split())}"
                seconds = None
            if seconds is not None and (best is None or seconds < best[0] * (1 - TIE_MARGIN)):
                verdict = check(be)
                if not isinstance(verdict, str):
                    if best is not None:
                        best[2].close()
                        outcomes[best[1]] = f"slower ({_ms(best[0])} ms/img)"
                    best, be = (seconds, pair, be, verdict), None
                    continue
                outcomes[pair] = verdict
            elif seconds is not None:
                outcomes[pair] = f"slower ({_ms(seconds)} ms/img{'' if timed else ', first run'})"
            be.close()
            be = None
    except BaseException:
        for open_backend in (be, best[2] if best else None):
            if open_backend is not None:
                open_backend.close()
        raise
    if best is None:
        raise NothingKept([(b, p, why) for (b, p), why in outcomes.items()])
    seconds, pair, backend, verdict = best
    outcomes[pair] = f"selected ({_ms(seconds)} ms/img, measured)"
    record = {"backend": pair[0], "precision": pair[1], "ms_per_image": round(seconds * 1000, 4),
              "measured": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "input": list(x.shape), "outcomes": [[b, p, why] for (b, p), why in outcomes.items()]}
    return _Kept(backend, verdict, outcomes, record)


def _recorded(choice: Any, reachable: list[Pair], load, check) -> tuple[_Kept | None, dict[Pair, str]]:
    """The cached choice loaded and checked (with the other candidates' recorded outcomes), or None and, when it was
    tried, why it failed now."""
    try:
        pair = (choice["backend"], choice["precision"])
        recorded = {(b, p): why for b, p, why in choice["outcomes"]}
        ms, when = float(choice["ms_per_image"]), str(choice["measured"])
    except (TypeError, KeyError, ValueError):
        return None, {}
    if pair not in reachable:
        return None, {}
    got = _checked(pair, load, check)
    if isinstance(got, str):
        return None, {pair: got}
    outcomes = {q: why for q, why in recorded.items() if q in reachable}
    outcomes[pair] = f"selected (cached choice: {_ms(ms / 1000)} ms/img, measured {when})"
    return _Kept(*got, outcomes), {}


def _measured_or_cached(reachable, load, check, runner, adapter, key: dict, cache_dir) -> _Kept:
    cache = ArtifactCache(cache_dir)
    entry = cache.lookup(key)
    if entry is None:
        fresh: list[_Kept] = []

        def build(tmp) -> dict:
            fresh.append(_measure(reachable, load, check, runner, adapter, {}))
            return {"choice": fresh[0].record}

        try:
            entry = cache.get_or_build(key, build)  # under the entry's lock: one process measures
        except OSError:  # a cache that cannot be written: the choice holds for this load only
            return fresh[0] if fresh else _measure(reachable, load, check, runner, adapter, {})
        except BaseException:
            if fresh:
                fresh[0].backend.close()
            raise
        if entry.built:
            return fresh[0]
    kept, failed = _recorded(entry.meta.get("choice"), reachable, load, check)  # ours, or another process's
    if kept is not None:
        return kept
    kept = _measure(reachable, load, check, runner, adapter, failed)
    with contextlib.suppress(OSError):
        cache.update_meta(entry, choice=kept.record)
    return kept


def choose(
    candidates: Sequence[tuple[str, str, str | None]],
    load: Callable[[str, str], Any],
    check: Callable[[Any], Any],
    runner: Callable[[Any], Callable[[np.ndarray], np.ndarray]],
    adapter: ModelAdapter,
    *,
    mode: str,
    key: Callable[[list[Pair]], dict],
    cache_dir=None,
) -> tuple[Any, Any, list[Outcome]]:
    """The candidate to keep, its guard verdict, and the selection (each candidate with what became of it).

    Args:
        candidates: (backend, precision, why it is unavailable here or None), in ``AUTO_ORDER``.
        load: loads one: the backend, or why it did not load ("failed to load: ...").
        check: a loaded backend -> its guard verdict (None: not guarded), or why it cannot be kept ("rejected: ...").
        runner: a loaded backend -> the function ``Engine.run`` would call (model-normalized L in, ab out).
        adapter: the model's (the timing input's size and batch).
        mode: "measure" or "order" (``auto_mode``).
        key: the available candidates -> the cache key of the choice (everything but them).
        cache_dir: the artifact cache root (default ``$COLORIZE_CACHE/artifacts``).
    Raises:
        NothingKept: no candidate loaded and passed (its ``selection`` says why for each).
    """
    if mode == "order":
        kept = _by_order(candidates, load, check)
        return kept.backend, kept.verdict, _listed(candidates, kept.outcomes)
    reachable = [(b, p) for b, p, unavailable in candidates if not unavailable]
    outcomes = {(b, p): f"unavailable: {why}" for b, p, why in candidates if why}
    try:
        kept = _measured_or_cached(reachable, load, check, runner, adapter, key(reachable), cache_dir)
    except NothingKept as e:
        outcomes.update({(b, p): why for b, p, why in e.selection})
        raise NothingKept(_listed(candidates, outcomes)) from None
    return kept.backend, kept.verdict, _listed(candidates, outcomes | kept.outcomes)
