"""``auto`` keeps the fastest candidate that passes the guard, measured once per model and machine and cached.

Most tests run stand-in backends registered like real ones (a module in ``BACKENDS``): each sleeps a set time per
call, so which one is fastest is decided by the test, and one can colour wrongly (the guard rejects it) or fail to
load. The last test measures the real ONNX Runtime backend at both its precisions.
"""

import sys
import time
import types

import numpy as np
import pytest

from colorize import auto_choice, guard
from colorize import engine as engine_mod
from colorize.backends import BACKENDS
from colorize.backends.base import Backend, BackendError
from colorize.engine import Engine
from colorize.guard import GuardData
from colorize.job.runner import passed_over

MODEL = "resnet18-unet"  # only its reference and files matter: the stand-ins do not run it
ORDER = (("alpha", "int8"), ("alpha", "fp32"), ("beta", "fp32"))


class StandIns:
    """What the stand-in backends do, set per test: seconds per call, wrong colours, failure to load; and what
    they did: every backend made (guard references included), open or closed."""

    def __init__(self):
        self.delay: dict[tuple[str, str], float] = {}
        self.wrong: set[tuple[str, str]] = set()
        self.broken: set[tuple[str, str]] = set()
        self.made: list["_StandIn"] = []
        self.runs: dict[tuple[str, str], int] = {}

    def loads(self) -> list[tuple[str, str]]:
        return [(b.name, b.precision) for b in self.made]


class _StandIn(Backend):
    thread_safe = True
    state: StandIns

    def __init__(self, ref, precision="fp32", **options):
        super().__init__(precision)
        self.state.made.append(self)
        if (self.name, precision) in self.state.broken:
            raise BackendError(f"{self.name} {precision} made to fail (test)")

    def artifact_id(self) -> dict:
        return {"backend": self.name, "precision": self.precision, "artifact_sha256": "stand-in"}

    def _run(self, l: np.ndarray) -> np.ndarray:
        pair = (self.name, self.precision)
        self.state.runs[pair] = self.state.runs.get(pair, 0) + 1
        time.sleep(self.state.delay.get((self.name, self.precision), 0.0))
        ab = np.zeros((len(l), 2, *l.shape[2:]), np.float32)
        return ab + 0.8 if (self.name, self.precision) in self.state.wrong else ab


@pytest.fixture
def stand_ins(monkeypatch):
    state = StandIns()
    module = types.ModuleType("colorize_auto_stand_ins")
    module.Alpha = type("Alpha", (_StandIn,), {"name": "alpha", "precisions": ("fp32", "int8"), "state": state})
    module.Beta = type("Beta", (_StandIn,), {"name": "beta", "precisions": ("fp32",), "state": state})
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(BACKENDS, "alpha", f"{module.__name__}:Alpha")
    monkeypatch.setitem(BACKENDS, "beta", f"{module.__name__}:Beta")
    monkeypatch.setattr(engine_mod, "AUTO_ORDER", ORDER)
    with np.load(guard.BUNDLED) as z:
        images = z["images"][:16]
    monkeypatch.setattr(guard, "load_guard_data", lambda n=16: GuardData(images, "test-16"))
    monkeypatch.setenv("COLORIZE_AUTO", "measure")  # the suite's default is "order" (tests/conftest.py)
    return state


@pytest.fixture
def timings(monkeypatch):
    """Every call of ``auto_choice.seconds_per_image``, as what it returned: (seconds per image, timed)."""
    calls = []
    real = auto_choice.seconds_per_image

    def counted(*args, **kwargs):
        calls.append(real(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(auto_choice, "seconds_per_image", counted)
    return calls


def _slow_but(state, fastest, slow=0.03):
    state.delay = {pair: (0.0 if pair == fastest else slow) for pair in ORDER}


def _outcomes(eng) -> dict:
    return {(b, p): why for b, p, why in eng.selection}


@pytest.mark.parametrize("fastest", ORDER)
def test_the_fastest_candidate_that_passes_is_kept(stand_ins, timings, fastest):
    _slow_but(stand_ins, fastest)
    with Engine.load(MODEL) as eng:
        assert (eng.backend, eng.precision) == fastest
        outcomes = _outcomes(eng)
        assert list(outcomes) == list(ORDER)  # every candidate, listed in AUTO_ORDER
        assert outcomes[fastest].startswith("selected (") and outcomes[fastest].endswith(" ms/img, measured)")
        for pair in ORDER:
            if pair != fastest:
                assert outcomes[pair].startswith("slower (") and " ms/img" in outcomes[pair], outcomes
        assert len(timings) == 3
        assert [b for b in stand_ins.made if not b.closed] == [eng._backend]  # the others closed
        assert eng.run(np.zeros((2, 1, 9, 9), np.float32)).shape == (2, 2, 9, 9)
        assert passed_over(eng) == []  # merely slower is not a problem to report


def test_a_fast_candidate_that_fails_the_guard_is_never_kept(stand_ins, timings):
    _slow_but(stand_ins, ("alpha", "int8"))
    stand_ins.wrong = {("alpha", "int8")}
    with Engine.load(MODEL) as eng:
        assert (eng.backend, eng.precision) != ("alpha", "int8")
        why = _outcomes(eng)[("alpha", "int8")]
        assert why.startswith("rejected: quality guard FAILED for int8"), why
        assert len(timings) == 3
        assert passed_over(eng) == [f"alpha/int8 ({why})"]
        assert [b for b in stand_ins.made if not b.closed] == [eng._backend]


def test_a_candidate_slower_than_the_one_kept_costs_no_guard_run(stand_ins, timings, monkeypatch):
    monkeypatch.setattr(engine_mod, "AUTO_ORDER", (("alpha", "fp32"), ("alpha", "int8")))
    _slow_but(stand_ins, ("alpha", "fp32"))
    stand_ins.wrong = {("alpha", "int8")}  # the guard would reject it, had it to judge it
    with Engine.load(MODEL) as eng:
        assert (eng.backend, eng.precision) == ("alpha", "fp32") and eng.guard_result is None
        assert _outcomes(eng)[("alpha", "int8")].startswith("slower (")
        assert stand_ins.loads() == [("alpha", "fp32"), ("alpha", "int8")]  # no FP32 reference made for a guard


def test_a_candidate_far_slower_than_the_fastest_so_far_runs_once(stand_ins, timings):
    """Eager torch next to OpenVINO INT8: its warm-up alone says it loses, so it is not timed further."""
    stand_ins.delay = {("alpha", "int8"): 0.01, ("alpha", "fp32"): 0.2, ("beta", "fp32"): 0.015}
    with Engine.load(MODEL, guard=False) as eng:
        assert (eng.backend, eng.precision) == ("alpha", "int8")
        assert stand_ins.runs[("alpha", "fp32")] == 1  # one run of the timing input (one call: 8 images)
        assert stand_ins.runs[("beta", "fp32")] > 1  # within reach: warmed up, then timed
        why = _outcomes(eng)[("alpha", "fp32")]
        assert why.startswith("slower (") and why.endswith(" ms/img, first run)"), why
        assert [timed for _, timed in timings] == [True, False, True]


def test_ties_go_to_the_earlier_candidate_in_auto_order(stand_ins, timings, monkeypatch):
    monkeypatch.setattr(auto_choice, "TIE_MARGIN", 1.0)  # no candidate can be faster by 100 %
    _slow_but(stand_ins, ("beta", "fp32"))
    with Engine.load(MODEL) as eng:
        assert (eng.backend, eng.precision) == ORDER[0]


def test_the_choice_is_cached_and_a_second_load_measures_nothing(stand_ins, timings, tmp_path):
    _slow_but(stand_ins, ("alpha", "fp32"))
    with Engine.load(MODEL, cache_dir=tmp_path) as first:
        measured = _outcomes(first)
    assert len(timings) == 3 and [p for p in tmp_path.glob("auto-choice-*") if p.is_dir()]
    stand_ins.made.clear()
    stand_ins.delay = {}  # all equally fast now: only a new measurement could change the pick
    with Engine.load(MODEL, cache_dir=tmp_path) as eng:
        assert (eng.backend, eng.precision) == ("alpha", "fp32")
        assert len(timings) == 3  # not measured again
        assert stand_ins.loads() == [("alpha", "fp32")]  # only the choice is loaded
        outcomes = _outcomes(eng)
        assert outcomes[("alpha", "fp32")].startswith("selected (cached choice: ")
        assert " ms/img, measured 20" in outcomes[("alpha", "fp32")]
        assert outcomes[("alpha", "int8")] == measured[("alpha", "int8")]  # as measured then
        assert outcomes[("beta", "fp32")] == measured[("beta", "fp32")]


def test_another_machine_measures_again(stand_ins, timings, tmp_path, fake_cpu):
    _slow_but(stand_ins, ("alpha", "fp32"))
    Engine.load(MODEL, cache_dir=tmp_path).close()
    fake_cpu("zen3")  # other ISA flags: another machine fingerprint
    _slow_but(stand_ins, ("beta", "fp32"))
    with Engine.load(MODEL, cache_dir=tmp_path) as eng:
        assert len(timings) == 6
        assert (eng.backend, eng.precision) == ("beta", "fp32")
        assert _outcomes(eng)[("beta", "fp32")].endswith("measured)")


def test_a_cached_choice_that_no_longer_loads_is_measured_again(stand_ins, timings, tmp_path):
    _slow_but(stand_ins, ("beta", "fp32"))
    stand_ins.delay[("alpha", "fp32")] = 0.01  # the runner-up
    Engine.load(MODEL, cache_dir=tmp_path).close()
    stand_ins.broken = {("beta", "fp32")}
    with Engine.load(MODEL, cache_dir=tmp_path) as eng:
        assert (eng.backend, eng.precision) == ("alpha", "fp32")
        assert _outcomes(eng)[("beta", "fp32")] == "failed to load: beta fp32 made to fail (test)"
        assert len(timings) == 3 + 2
    assert stand_ins.loads().count(("beta", "fp32")) == 2  # the first load, the cached choice: not tried a third time
    with Engine.load(MODEL, cache_dir=tmp_path) as eng:  # the new choice is what the cache holds now
        assert (eng.backend, eng.precision) == ("alpha", "fp32") and len(timings) == 5
        assert _outcomes(eng)[("alpha", "fp32")].startswith("selected (cached choice: ")


def test_a_named_backend_measures_its_own_precisions(stand_ins, timings):
    _slow_but(stand_ins, ("beta", "fp32"))
    with Engine.load(MODEL, "alpha") as eng:
        assert eng.backend == "alpha" and len(timings) == 2
        assert [(b, p) for b, p, _ in eng.selection] == [("alpha", "int8"), ("alpha", "fp32")]


def test_order_mode_takes_the_first_that_passes_and_times_nothing(stand_ins, timings, monkeypatch):
    _slow_but(stand_ins, ("beta", "fp32"))
    with Engine.load(MODEL, auto="order") as eng:
        assert (eng.backend, eng.precision) == ("alpha", "int8")
        assert eng.selection == [("alpha", "int8", "selected")]
    monkeypatch.setenv("COLORIZE_AUTO", "order")
    with Engine.load(MODEL) as eng:
        assert (eng.backend, eng.precision) == ("alpha", "int8")
    with Engine.load(MODEL, "alpha", "fp32") as eng:  # an explicit request: nothing chosen, nothing timed
        assert eng.selection == []
    assert timings == []


def test_an_unknown_mode_is_refused_with_where_it_came_from(stand_ins, monkeypatch):
    with pytest.raises(ValueError, match=r"auto='fast': expected one of measure, order"):
        Engine.load(MODEL, auto="fast")
    monkeypatch.setenv("COLORIZE_AUTO", "fast")
    with pytest.raises(ValueError, match=r"\$COLORIZE_AUTO='fast'"):
        Engine.load(MODEL)


def test_nothing_that_loads_is_an_error_naming_each_candidate(stand_ins):
    stand_ins.broken = set(ORDER)
    with pytest.raises(BackendError) as e:
        Engine.load(MODEL)
    for b, p in ORDER:
        assert f"{b} {p}: failed to load: {b} {p} made to fail (test)" in str(e.value)


def test_onnxruntime_int8_and_fp32_are_measured_on_the_real_backend(timings, monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(auto_choice, "WORKING_SIZE", 32)  # this model's own images: a short measurement
    with np.load(guard.BUNDLED) as z:
        images = z["images"][:16]
    monkeypatch.setattr(guard, "load_guard_data", lambda n=16: GuardData(images, "test-16"))
    with Engine.load(MODEL, "onnxruntime", auto="measure", cache_dir=tmp_path) as eng:
        outcomes = _outcomes(eng)
        assert list(outcomes) == [("onnxruntime", "int8"), ("onnxruntime", "fp32")]
        assert outcomes[("onnxruntime", eng.precision)].endswith("ms/img, measured)")
        timed = len(timings)
        assert timed == sum(not why.startswith("rejected") for why in outcomes.values())
        assert all(0 < t < 1 for t, _ in timings) and timings[0][1]  # the first is always timed after a warm-up
        kept = eng.precision
    with Engine.load(MODEL, "onnxruntime", auto="measure", cache_dir=tmp_path) as eng:
        assert eng.precision == kept and len(timings) == timed
        assert _outcomes(eng)[("onnxruntime", kept)].startswith("selected (cached choice: ")


def test_the_machine_fingerprint_is_stable_and_names_what_changes_speed(tmp_path, fake_cpu):
    from colorize import machine_id

    here = machine_id.fingerprint()
    assert machine_id.fingerprint() == here
    assert here["usable_cpus"] >= 1 and set(here["isa"]) <= set(machine_id.SPEED_FLAGS)
    fake_cpu("zen3")
    assert machine_id.fingerprint()["isa"] == ["avx2", "fma"] and machine_id.fingerprint() != here
    gpu = tmp_path / "gpus" / "0000:01:00.0"
    gpu.mkdir(parents=True)
    (gpu / "information").write_text("Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   42\n")
    (tmp_path / "version").write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15\nGCC version: 12\n")
    assert machine_id.nvidia_gpus(str(tmp_path)) == {
        "gpus": ["NVIDIA H100 80GB HBM3"], "driver": "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15"}
    assert machine_id.nvidia_gpus(str(tmp_path / "absent")) == {}
