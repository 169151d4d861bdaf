"""Which machine this is, for results measured once and cached per machine (``auto``'s speed choice).

    from colorize import machine_id
    machine_id.fingerprint()     # {"cpu": "AMD EPYC ...", "isa": ["avx2", ...], "usable_cpus": 2, ...}

What goes in is what changes which backend is fastest: the CPU model, the ISA flags that inference kernels use
(from ``colorize.cpu``, so a test's fake CPU reaches it), what ``colorize.cpu`` says runs natively, the cores and
the cores this process may use, the NVIDIA GPUs and their driver, and the versions of the runtime libraries. It is
cheap: ``/proc`` files and package metadata, no import of a runtime library.
"""

from __future__ import annotations

import glob
import os
from importlib import metadata
from pathlib import Path

from colorize import cpu

#: cpuinfo flags that change which kernels (and so which backend and precision) are fastest
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
               "amx_bf16", "amx_int8")
#: distributions whose version changes a backend's speed
LIBRARIES = ("onnxruntime", "onnxruntime-gpu", "openvino", "torch", "tensorrt")


def installed_versions(names) -> dict[str, str]:
    """The installed ones of the distributions ``names``, name -> version (package metadata: nothing is imported)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def library_versions() -> dict[str, str]:
    """The installed ones of ``LIBRARIES``, name -> version."""
    return installed_versions(LIBRARIES)


def nvidia_gpus(root: str = "/proc/driver/nvidia") -> dict:
    """{"gpus": [model names], "driver": version line} from the NVIDIA driver's ``/proc`` files; empty without."""
    names = []
    for info in sorted(glob.glob(os.path.join(root, "gpus", "*", "information"))):
        try:
            for line in Path(info).read_text().splitlines():
                key, _, value = line.partition(":")
                if key.strip() == "Model":
                    names.append(value.strip())
        except OSError:
            continue
    try:
        driver = Path(root, "version").read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        driver = None
    return {"gpus": names, "driver": driver} if names or driver else {}


def usable_cpus() -> int | None:
    """The cores this process may run on (affinity-aware), None where the OS does not say."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def fingerprint() -> dict:
    """This machine as a JSON-able dict: equal on the same machine and software, different where a backend's
    speed may differ."""
    model, _, physical = cpu.read_cpuinfo()
    features = cpu.features()
    return {
        "cpu": model,
        "isa": [f for f in SPEED_FLAGS if f in features.flags],
        "native": features.to_dict(),
        "physical_cores": physical,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "nvidia": nvidia_gpus(),
        "libraries": library_versions(),
    }
