from colorize.benchmarks.machine import ISA_FLAGS, _cpuinfo, describe_machine, machine_summary

CPUINFO = """processor\t: 0
model name\t: Fake Xeon 9999
physical id\t: 0
core id\t: 0
flags\t\t: fpu avx2 avx512f amx_bf16 amx_int8

processor\t: 1
model name\t: Fake Xeon 9999
physical id\t: 0
core id\t: 0
flags\t\t: fpu avx2 avx512f amx_bf16 amx_int8

processor\t: 2
model name\t: Fake Xeon 9999
physical id\t: 0
core id\t: 1
flags\t\t: fpu avx2 avx512f amx_bf16 amx_int8
"""


def test_cpuinfo_parsing(tmp_path):
    p = tmp_path / "cpuinfo"
    p.write_text(CPUINFO)
    model, flags, cores = _cpuinfo(str(p))
    assert model == "Fake Xeon 9999"
    assert {"avx512f", "amx_bf16", "amx_int8"} <= flags and "avx512_fp16" not in flags
    assert cores == 2  # 3 logical CPUs, 2 physical cores


def test_describe_machine_fields():
    m = describe_machine(with_gpu=False)
    for key in ("cpu", "logical_cpus", "usable_cpus", "isa", "gpus", "python", "packages", "date_utc"):
        assert key in m
    assert m["logical_cpus"] >= 1 and m["gpus"] == []
    assert set(m["isa"]) <= set(ISA_FLAGS)
    assert "numpy" in m["packages"]
    line = machine_summary(m)
    assert m["cpu"] in line and "GPU: none" in line
    if m["load_avg_start"] is not None:
        assert f"load average {m['load_avg_start']} at start" in line
