"""What machine a benchmark ran on: CPU model, cores, ISA flags, GPU, library versions.

Reads ``/proc/cpuinfo`` and ``/proc/meminfo`` where they exist (Linux) and
package metadata (no heavy imports), except torch, which is imported only when
it is already loaded or ``with_gpu=True`` to ask for the CUDA device name.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from pathlib import Path

from colorize import cpu
from colorize.cpu import read_cpuinfo
from colorize.machine_id import SPEED_FLAGS, installed_versions

#: ISA flags that matter for inference speed (recorded when present/absent): the ones ``auto``'s cached choice
#: is keyed by
ISA_FLAGS = SPEED_FLAGS
PACKAGES = ("numpy", "torch", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "triton")


def _cpuinfo(path: str = "/proc/cpuinfo") -> tuple[str, set[str], int | None]:
    """(model name, flags, physical core count) from /proc/cpuinfo; empty when unreadable."""
    return read_cpuinfo(path)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's best guess."""
    return _cpuinfo()[0]


def _mem_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _versions() -> dict[str, str]:
    return installed_versions(PACKAGES)


def _gpus(with_gpu: bool) -> list[str]:
    """CUDA device names via torch (only when torch is importable and ``with_gpu``)."""
    if not with_gpu:
        return []
    try:
        import torch
    except ImportError:
        return []
    try:
        if torch.cuda.is_available():
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a broken driver must not break the benchmark report
        return []
    return []


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent.parent
        r = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def load_average() -> float | None:
    """1-minute load average (None where the OS has none): how busy the cores were."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def describe_machine(with_gpu: bool = True) -> dict:
    """A JSON-able description of this machine and the software benchmarked."""
    model, flags, physical = _cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    threads = None
    if "torch" in sys.modules or with_gpu:
        try:
            import torch

            threads = torch.get_num_threads()
        except ImportError:
            pass
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical,
        "usable_cpus": usable,
        "isa": {f: f in flags for f in ISA_FLAGS} if flags else {},
        "native": cpu.features().to_dict(),  # what the backends and ``auto`` were told this CPU runs natively
        "memory_gib": _mem_gib(),
        "gpus": _gpus(with_gpu),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": _versions(),
        "torch_threads": threads,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_avg_start": load_average(),
        "git_commit": _git_commit(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def machine_summary(machine: dict) -> str:
    """One line: CPU, cores, the ISA flags present, GPUs."""
    isa = [f for f, present in machine.get("isa", {}).items() if present and f not in ("avx2", "fma")]
    cores = machine.get("physical_cores") or machine.get("logical_cpus")
    parts = [f"{machine.get('cpu', '?')}, {cores} cores ({machine.get('usable_cpus')} usable)"]
    if machine.get("memory_gib"):
        parts.append(f"{machine['memory_gib']} GiB")
    parts.append("ISA: " + (", ".join(isa) if isa else "no AVX-512/AMX"))
    native = machine.get("native")
    if native:
        yes = {True: "yes", False: "no"}
        parts.append(f"native bf16: {yes[bool(native.get('bf16'))]}, int8 VNNI: {yes[bool(native.get('vnni'))]}")
    parts.append("GPU: " + (", ".join(machine["gpus"]) if machine.get("gpus") else "none"))
    if machine.get("load_avg_start") is not None:
        end = machine.get("load_avg_end")
        at_end = f", {end} at end" if end is not None else ""
        parts.append(f"load average {machine['load_avg_start']} at start{at_end}")
    return "; ".join(parts)
