"""``auto``: picks the first available, guard-passing backend x precision; never a failed one."""

import dataclasses
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from colorize import engine as engine_mod
from colorize.backends import BACKENDS, backend_class, openvino_backend
from colorize.backends.openvino_backend import OpenVinoBackend
from colorize.engine import AUTO_ORDER, Engine
from colorize.guard import GuardData


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    from colorize.export.onnx_export import export_onnx

    d = tmp_path_factory.mktemp("auto")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx("resnet18-unet", d / "m.onnx", weights="fp32")  # plain initializers: _broken_copy edits them
    return d / "m.onnx"


@pytest.fixture(autouse=True)
def _tiny_data(monkeypatch):
    from colorize import guard
    from colorize.export import quantize

    from colorize.image.color import DEFAULT_NORMALIZATION, rgb_to_l

    with np.load(guard.BUNDLED) as z:
        images = z["images"][:16]
        calib_rgb = z["images"][16:32]
    # Calibrate on real images (not noise), disjoint from the guard's, so that the verdict does not depend on
    # whether the model is random-init or trained.
    tiny = DEFAULT_NORMALIZATION.normalize_l(rgb_to_l(calib_rgb.astype(np.float32) / 255.0))[:, None].astype(np.float32)
    monkeypatch.setattr(quantize, "calibration_l", lambda n=16, seed=0: tiny)
    monkeypatch.setattr(guard, "load_guard_data", lambda n=16: GuardData(images, "test-16"))


def _broken_copy(src, dst):
    """The model with its output head scaled x8 and shifted: still valid ONNX, visibly wrong colours."""
    proto = onnx.load(str(src))
    inits = {i.name: i for i in proto.graph.initializer}
    last_conv = [n for n in proto.graph.node if n.op_type == "Conv"][-1]
    for name in last_conv.input[1:]:
        arr = numpy_helper.to_array(inits[name])
        inits[name].CopyFrom(numpy_helper.from_array((arr * 8 + 0.5).astype(arr.dtype), name))
    onnx.save(proto, str(dst))
    return dst


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("auto-cache")


def _assert_first_that_passed(eng):
    """What ``auto`` promises on every CPU: it walked ``AUTO_ORDER`` in order, skipping nothing it could run, and
    selected the first candidate that was available, loaded and passed its guard. Which one that is (INT8 where
    VNNI makes it win the guard's race, FP32 where it does not) is a property of the CPU, not of ``auto``."""
    tried = [(b, p) for b, p, _ in eng.selection]
    runs = [(b, p) for b, p in AUTO_ORDER if b in BACKENDS and p in backend_class(b).precisions]
    assert tried == runs[: len(tried)]
    *before, last = eng.selection
    assert last == (eng.backend, eng.precision, "selected")
    for b, p, why in before:
        assert why.split(":")[0] in ("unavailable", "failed to load", "rejected", "guard could not run"), (b, p, why)
    if eng.precision != "fp32":
        assert eng.guard_result.passed
    assert eng.run(np.zeros((2, 1, 9, 9), np.float32)).shape == (2, 2, 9, 9)


def test_auto_picks_the_first_choice_that_passes(onnx_path, shared_cache):
    with Engine.load(onnx_path, cache_dir=shared_cache) as eng:
        _assert_first_that_passed(eng)
        for b, p, why in eng.selection[:-1]:  # on a CPU without GPU, only the GPU backends come before
            assert backend_class(b).available() or backend_class(b).precision_unavailable(p), (b, p, why)


def test_guard_rejects_a_broken_int8_artifact(onnx_path, tmp_path, monkeypatch):
    broken = _broken_copy(onnx_path, tmp_path / "broken.onnx")
    monkeypatch.setattr(openvino_backend, "int8_onnx", lambda ref, cache=None, io=None: broken)
    with Engine.load(onnx_path, "openvino", cache_dir=tmp_path / "c") as eng:  # precision auto
        assert eng.precision != "int8"
        reasons = dict(((b, p), why) for b, p, why in eng.selection)
        assert reasons[("openvino", "int8")].startswith("rejected: quality guard FAILED for int8")
    # an explicit request still runs, but warns with the figures
    with pytest.warns(UserWarning, match=r"FAILED for int8: PSNR .* dB vs FP32 .* dB \(drop"):
        eng = Engine.load(onnx_path, "openvino", "int8", cache_dir=tmp_path / "c")
    assert eng.precision == "int8" and not eng.guard_result.passed
    eng.close()


def test_guard_verdict_is_cached_with_the_artifact(onnx_path, shared_cache, monkeypatch):
    with Engine.load(onnx_path, "openvino", "int8", cache_dir=shared_cache) as eng:
        first = eng.guard_result
    assert [p for p in shared_cache.glob("guard-*") if p.is_dir()]
    calls, loads = [], []
    monkeypatch.setattr(engine_mod, "_padded_runner", lambda *a: calls.append(a) or (lambda l: l))
    from colorize import guard

    monkeypatch.setattr(guard, "guard_source", lambda n=256: "test-16")  # as the patched load_guard_data says
    monkeypatch.setattr(guard, "load_guard_data", lambda n=16: loads.append(n))
    with Engine.load(onnx_path, "openvino", "int8", cache_dir=shared_cache) as eng:
        assert eng.guard_result == first and not calls and not loads  # not recomputed; no image loaded


def test_auto_skips_unavailable_backends(onnx_path, shared_cache, monkeypatch):
    monkeypatch.setattr(OpenVinoBackend, "available", classmethod(lambda cls: "openvino is not installed (test)"))
    with Engine.load(onnx_path, cache_dir=shared_cache) as eng:
        _assert_first_that_passed(eng)
        assert eng.backend == "onnxruntime"
        assert ("openvino", "int8", "unavailable: openvino is not installed (test)") in eng.selection


def test_auto_when_int8_is_rejected_on_a_cpu_without_bf16_or_vnni(onnx_path, shared_cache, monkeypatch, fake_cpu):
    """The AMD Zen 3 CI machine: no bf16, and ONNX Runtime's INT8 not selected there. ``auto`` goes on to FP32."""
    fake_cpu("zen3")
    real_guard = engine_mod.quality_guard

    def guard(backend, *args, **kwargs):
        result = real_guard(backend, *args, **kwargs)
        if backend.precision == "int8":  # as if the AVX2 int8 kernels had lost too much
            result = dataclasses.replace(result, passed=False, drop_db=1.0, psnr=result.psnr_fp32 - 1.0)
        return result

    monkeypatch.setattr(engine_mod, "quality_guard", guard)
    with Engine.load(onnx_path, cache_dir=shared_cache) as eng:
        _assert_first_that_passed(eng)
        assert (eng.backend, eng.precision) == ("onnxruntime", "fp32") and eng.guard_result is None
        reasons = {(b, p): why for b, p, why in eng.selection}
        assert reasons[("openvino", "int8")].startswith("rejected: quality guard FAILED for int8")
        assert reasons[("openvino", "bf16")].startswith("unavailable: this CPU has no native bf16")
