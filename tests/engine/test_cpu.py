"""``colorize.cpu``: the one capability probe, and what the backends and ``auto`` do on a CPU without bf16 or VNNI.

The faked CPUs (``fake_cpu`` in tests/conftest.py) are the AMD EPYC Zen 3 (AVX2 and FMA only) and an AVX-512 CPU
with VNNI but no bf16, so their behaviour is exercised on any machine, whatever it has.
"""

import numpy as np
import pytest

from colorize import cpu
from colorize.backends import backend_class
from colorize.backends.base import BackendError
from colorize.engine import Engine

ZEN3_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse4_2 avx f16c fma avx2 bmi2 sha_ni
"""
SPR_CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu avx2 fma avx512f avx_vnni avx512_bf16 avx512_vnni amx_bf16 amx_tile amx_int8
"""


def test_probe_reads_cpuinfo_flags(tmp_path):
    (tmp_path / "zen3").write_text(ZEN3_CPUINFO)
    (tmp_path / "spr").write_text(SPR_CPUINFO)
    zen3 = cpu.probe(str(tmp_path / "zen3"), openvino=False)
    spr = cpu.probe(str(tmp_path / "spr"), openvino=False)
    assert (zen3.bf16, zen3.vnni) == (False, False) and "avx2" in zen3.flags
    assert (spr.bf16, spr.vnni) == (True, True)
    assert zen3.missing("bf16").startswith("this CPU has no native bf16 (cpuinfo: avx2 fma")
    assert spr.missing("bf16") is None
    assert all(zen3.missing(p) is None for p in ("fp32", "int8", "fp16"))  # int8 runs everywhere


def test_probe_without_any_source_assumes_nothing(tmp_path):
    f = cpu.probe(str(tmp_path / "absent"), openvino=False)
    assert (f.bf16, f.vnni, f.flags) == (False, False, frozenset())
    assert "cpuinfo: unreadable" in f.missing("bf16")


def test_openvino_decides_bf16_when_installed(tmp_path, monkeypatch):
    (tmp_path / "spr").write_text(SPR_CPUINFO)
    monkeypatch.setattr(cpu, "_openvino_capabilities", lambda: ("FP32", "INT8"))  # e.g. an old plugin
    f = cpu.probe(str(tmp_path / "spr"))
    assert not f.bf16 and f.vnni and "OpenVINO CPU capabilities: FP32, INT8" in f.missing("bf16")


def test_this_machine_agrees_with_openvino():
    ov = pytest.importorskip("openvino")
    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert cpu.features().bf16 == ("BF16" in caps)


@pytest.mark.parametrize("kind", ["zen3", "avx512-vnni"])
@pytest.mark.parametrize("backend", ["openvino", "torch"])
def test_bf16_is_unavailable_without_native_bf16(fake_cpu, kind, backend):
    fake_cpu(kind)
    cls = backend_class(backend)
    assert "this CPU has no native bf16" in cls.precision_unavailable("bf16")
    assert cls.precision_unavailable("fp32") is None
    if backend == "openvino":
        assert cls.precision_unavailable("int8") is None  # no VNNI: slower, still available


@pytest.mark.parametrize("backend", ["openvino", "torch"])
def test_explicit_bf16_request_raises_the_reason(fake_cpu, backend):
    pytest.importorskip(backend)
    fake_cpu("zen3")
    with pytest.raises(BackendError, match="this CPU has no native bf16 \\(cpuinfo: avx2 fma"):
        Engine.load("resnet18-unet", backend, "bf16")


def test_auto_records_bf16_as_unavailable(fake_cpu):
    pytest.importorskip("openvino")
    fake_cpu("zen3")
    with pytest.raises(BackendError) as e:
        Engine.load("resnet18-unet", "auto", "bf16")
    assert "openvino bf16: unavailable: this CPU has no native bf16" in str(e.value)


def test_auto_on_a_cpu_without_bf16_or_vnni(fake_cpu, monkeypatch):
    """On Zen 3 ``auto`` passes over bf16 with the reason and goes on to the next candidate."""
    pytest.importorskip("openvino")
    from colorize.backends import openvino_backend

    fake_cpu("zen3")

    def no_int8(ref, cache=None, io=None):
        raise BackendError("int8 made to fail (test)")

    monkeypatch.setattr(openvino_backend, "int8_onnx", no_int8)
    with Engine.load("resnet18-unet", "openvino", guard=False) as eng:
        assert (eng.backend, eng.precision) == ("openvino", "fp32")
        outcomes = [(p, why.split(":")[0]) for _, p, why in eng.selection]
        assert outcomes == [("int8", "failed to load"), ("bf16", "unavailable"), ("fp32", "selected")]
        assert eng.run(np.zeros((1, 1, 16, 16), np.float32)).shape == (1, 2, 16, 16)


def test_asking_about_fp32_or_int8_never_probes(monkeypatch):
    def probe():
        raise AssertionError("probed")

    monkeypatch.setattr(cpu, "features", probe)
    for backend in ("openvino", "torch", "onnxruntime"):
        assert all(backend_class(backend).precision_unavailable(p) is None for p in ("fp32", "int8"))
    with pytest.raises(AssertionError, match="probed"):
        cpu.precision_missing("bf16")
