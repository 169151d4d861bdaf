"""What this CPU runs natively: the one probe that the backends, ``auto``, ``colorize bench`` and the tests ask.

    from colorize import cpu
    cpu.features().bf16          # native bf16 arithmetic (AVX512-BF16, AMX-BF16)
    cpu.features().vnni          # int8 dot-product instructions (AVX512-VNNI, AVX-VNNI, AMX-INT8)
    cpu.precision_missing("bf16")    # None, or why this CPU cannot run that precision natively

Sources: the ``/proc/cpuinfo`` flags (Linux) and, when openvino is installed, its CPU plugin's
``OPTIMIZATION_CAPABILITIES``, which say what its kernels will use; for bf16 OpenVINO's answer wins
(it refuses a bf16 hint without "BF16"). Without either source nothing is assumed: bf16 and VNNI
read as absent. An AVX2-only CPU (e.g. AMD Zen 3) has neither: bf16 is unavailable, and int8 still
runs, on AVX2 kernels, at about 1.5-2x FP32 instead of 3-4x.

Tests fake another CPU by replacing ``features`` (``monkeypatch.setattr(cpu, "features", lambda: fake)``);
every caller looks it up through this module at call time, so the fake reaches all of them.
"""

from __future__ import annotations

import functools
import importlib.util
import platform
from dataclasses import dataclass, field
from pathlib import Path

#: cpuinfo flags that give native bf16 arithmetic
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: cpuinfo flags that give int8 dot-product instructions
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@dataclass(frozen=True)
class CpuFeatures:
    bf16: bool  # native bf16 arithmetic
    vnni: bool  # int8 dot-product instructions
    flags: frozenset[str] = field(default_factory=frozenset)  # /proc/cpuinfo flags (empty where unreadable)
    openvino: tuple[str, ...] | None = None  # OpenVINO CPU OPTIMIZATION_CAPABILITIES, None without openvino

    def missing(self, precision: str) -> str | None:
        """None if ``precision`` runs natively on this CPU, else the reason (bf16 is the only one that can be
        missing: fp32 and int8 run everywhere, int8 without VNNI on slower AVX2 kernels)."""
        if precision == "bf16" and not self.bf16:
            return f"this CPU has no native bf16 ({self.describe()})"
        return None

    def describe(self) -> str:
        """One line: what was found and where it came from."""
        isa = [f for f in ("avx2", "fma", "avx512f", *sorted(BF16_FLAGS | VNNI_FLAGS)) if f in self.flags]
        parts = [f"cpuinfo: {' '.join(isa) if isa else 'none of the relevant flags' if self.flags else 'unreadable'}"]
        if self.openvino is not None:
            parts.append(f"OpenVINO CPU capabilities: {', '.join(self.openvino)}")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {"bf16": self.bf16, "vnni": self.vnni, "openvino": list(self.openvino) if self.openvino else None}


def read_cpuinfo(path: str = "/proc/cpuinfo") -> tuple[str, set[str], int | None]:
    """(model name, flags, physical core count) from /proc/cpuinfo; empty flags when unreadable."""
    try:
        text = Path(path).read_text()
    except OSError:
        return platform.processor() or platform.machine(), set(), None
    model, flags, cores = "", set(), set()
    phys = core = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and not model:
            model = value
        elif key == "flags" and not flags:
            flags = set(value.split())
        elif key == "physical id":
            phys = value
        elif key == "core id":
            core = value
        elif not key and phys is not None and core is not None:
            cores.add((phys, core))
            phys = core = None
    if phys is not None and core is not None:
        cores.add((phys, core))
    return model or platform.machine(), flags, len(cores) or None


def _openvino_capabilities() -> tuple[str, ...] | None:
    if importlib.util.find_spec("openvino") is None:
        return None
    try:
        import openvino as ov

        return tuple(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # a broken plugin must not break the probe; cpuinfo still answers
        return None


def probe(cpuinfo: str = "/proc/cpuinfo", openvino: bool = True) -> CpuFeatures:
    """Ask the sources now (``features()`` caches this)."""
    flags = frozenset(read_cpuinfo(cpuinfo)[1])
    caps = _openvino_capabilities() if openvino else None
    bf16 = "BF16" in caps if caps is not None else bool(flags & BF16_FLAGS)
    return CpuFeatures(bf16=bf16, vnni=bool(flags & VNNI_FLAGS), flags=flags, openvino=caps)


@functools.cache
def _cached() -> CpuFeatures:
    return probe()


def features() -> CpuFeatures:
    """This CPU's features, probed once per process."""
    return _cached()


def precision_missing(precision: str) -> str | None:
    """Why this CPU cannot run ``precision`` natively, else None. Probes only for bf16 (the one precision that
    depends on the CPU), so asking about fp32 or int8 never imports openvino."""
    return features().missing(precision) if precision == "bf16" else None
