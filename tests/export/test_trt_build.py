"""TensorRT build orchestration and ``colorize build``, against a fake ``tensorrt`` module.

TensorRT cannot be installed here. The fake implements the TensorRT 10 Python calls the builder
makes (parser, builder config, profile, timing cache, build) and records them, so these tests
check our side: which calls are made with which values, error reporting, sidecar and rebuild
logic. They do not show that a real TensorRT accepts the calls.
"""

import json
import sys
import types

import onnx
import pytest
from onnx import TensorProto, helper

import colorize.export.tensorrt_build as tb
from colorize.cli import main as cli_main
from colorize.export.trt_plan import read_plan_info, sidecar_path

SUPPORTED_OPS = {"Conv", "Relu", "Add"}


def make_fake_trt(version="10.3.0"):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = []

    class Logger:
        WARNING, VERBOSE = "WARNING", "VERBOSE"

        def __init__(self, severity):
            self.severity = severity

    class Error:
        def __init__(self, node, name, op, desc):
            self._n, self._name, self._op, self._desc = node, name, op, desc

        def node(self):
            return self._n

        def node_name(self):
            return self._name

        def node_operator(self):
            return self._op

        def desc(self):
            return self._desc

        def code(self):
            return "UNSUPPORTED_NODE"

    class Network:
        def __init__(self):
            self.inputs = []

        @property
        def num_inputs(self):
            return len(self.inputs)

        def get_input(self, i):
            return types.SimpleNamespace(name=self.inputs[i])

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        def parse(self, data, path=None):
            proto = onnx.load_from_string(data)
            inits = {t.name for t in proto.graph.initializer}
            self.network.inputs = [i.name for i in proto.graph.input if i.name not in inits]
            for k, node in enumerate(proto.graph.node):
                if node.op_type not in SUPPORTED_OPS:
                    self.errors.append(Error(k, node.name, node.op_type, f"No importer registered for op: {node.op_type}"))
            return not self.errors

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

    class TimingCache:
        def __init__(self, blob):
            self.blob = bytes(blob)

        def serialize(self):
            return self.blob + b"+timed"

    class Config:
        def __init__(self):
            self.flags, self.profiles, self.pools, self.cache = set(), [], {}, None

        def set_memory_pool_limit(self, pool, size):
            self.pools[pool] = size

        def set_flag(self, flag):
            self.flags.add(flag)

        def add_optimization_profile(self, p):
            self.profiles.append(p)

        def create_timing_cache(self, blob):
            trt.calls.append(("create_timing_cache", bytes(blob)))
            return TimingCache(blob)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache

        def get_timing_cache(self):
            return self.cache

    class OptProfile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, lo, mid, hi):
            self.shapes[name] = [list(lo), list(mid), list(hi)]

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            trt.calls.append(("create_network", flags))
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return OptProfile()

        def build_serialized_network(self, network, config):
            trt.calls.append(("build", sorted(config.flags), config.pools, [p.shapes for p in config.profiles]))
            plan = {"flags": sorted(config.flags), "profiles": [p.shapes for p in config.profiles]}
            return memoryview(json.dumps(plan).encode())

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16")
    return trt


def make_onnx(path, op="Conv", stride=8):
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 1, 1, 1], [1.0, -1.0])
    node = helper.make_node(op, ["l", "w"], ["ab"], name=f"decoder.head.{op.lower()}")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("l", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("ab", TensorProto.FLOAT, ["N", 2, "H", "W"])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    entry = model.metadata_props.add()
    entry.key, entry.value = "colorize.total_stride", str(stride)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def fake_trt(monkeypatch):
    trt = make_fake_trt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    gpu = {"value": ("NVIDIA H100 80GB HBM3", "9.0")}
    monkeypatch.setattr(tb, "gpu_identity", lambda device=0: gpu["value"])
    trt.gpu = gpu
    return trt


def test_build_writes_plan_sidecar_and_timing_cache(tmp_path, fake_trt):
    onnx_path = make_onnx(tmp_path / "m.onnx")
    cache = tmp_path / "timing.cache"
    res = tb.build_plan(onnx_path, tmp_path / "m.plan", "fp16", max_shapes={"l": (4, 1, 64, 64)},
                        workspace_bytes=1 << 28, timing_cache=cache, log=lambda s: None)
    assert res.rebuilt
    assert ("create_network", 0) in fake_trt.calls  # explicit batch is implicit in TensorRT 10
    (_, flags, pools, profiles) = next(c for c in fake_trt.calls if c[0] == "build")
    assert flags == ["FP16"] and pools == {"WORKSPACE": 1 << 28}
    assert profiles == [{"l": [[1, 1, 8, 8], [4, 1, 64, 64], [4, 1, 64, 64]]}]
    info = read_plan_info(tmp_path / "m.plan")
    assert info.gpu_name == "NVIDIA H100 80GB HBM3" and info.compute_capability == "9.0"
    assert info.tensorrt_version == "10.3.0" and info.precision == "fp16"
    assert info.profile["l"]["max"] == [4, 1, 64, 64]
    assert info.onnx_sha256 == tb.sha256_file(onnx_path) and info.plan_sha256 == tb.sha256_file(tmp_path / "m.plan")
    assert cache.read_bytes() == b"+timed"

    # up to date: nothing is built
    n_builds = sum(c[0] == "build" for c in fake_trt.calls)
    again = tb.build_plan(onnx_path, tmp_path / "m.plan", "fp16", max_shapes={"l": (4, 1, 64, 64)},
                          timing_cache=cache, log=lambda s: None)
    assert not again.rebuilt and sum(c[0] == "build" for c in fake_trt.calls) == n_builds

    # another GPU: rebuilt, the timing cache from the first build is loaded, and grows
    fake_trt.gpu["value"] = ("NVIDIA L4", "8.9")
    logs = []
    third = tb.build_plan(onnx_path, tmp_path / "m.plan", "fp16", max_shapes={"l": (4, 1, 64, 64)},
                          timing_cache=cache, log=logs.append)
    assert third.rebuilt and "compute capability 9.0" in third.reasons[0] and "rebuilding" in logs[0]
    assert ("create_timing_cache", b"+timed") in fake_trt.calls
    assert cache.read_bytes() == b"+timed+timed"
    assert read_plan_info(tmp_path / "m.plan").gpu_name == "NVIDIA L4"


def test_fp32_has_no_fp16_flag_and_tampered_plan_is_rebuilt(tmp_path, fake_trt):
    onnx_path = make_onnx(tmp_path / "m.onnx")
    plan = tmp_path / "m.plan"
    tb.build_plan(onnx_path, plan, "fp32", timing_cache=False, log=lambda s: None)
    assert next(c for c in fake_trt.calls if c[0] == "build")[1] == []
    assert not any(c[0] == "create_timing_cache" for c in fake_trt.calls)
    plan.write_bytes(b"truncated")
    res = tb.build_plan(onnx_path, plan, "fp32", timing_cache=False, log=lambda s: None)
    assert res.rebuilt and "modified or truncated" in res.reasons[0]
    sidecar_path(plan).unlink()
    res = tb.build_plan(onnx_path, plan, "fp32", timing_cache=False, log=lambda s: None)
    assert res.rebuilt and "sidecar not found" in res.reasons[0]


def test_parser_errors_name_the_node(tmp_path, fake_trt):
    onnx_path = make_onnx(tmp_path / "m.onnx", op="Mul")
    with pytest.raises(tb.TensorRTBuildError, match=r"node 0 'decoder.head.mul' \(Mul\): No importer"):
        tb.build_plan(onnx_path, tmp_path / "m.plan", timing_cache=False, log=lambda s: None)
    assert not (tmp_path / "m.plan").exists() and not sidecar_path(tmp_path / "m.plan").exists()


def test_cli_build_and_up_to_date(tmp_path, fake_trt, capsys):
    onnx_path = make_onnx(tmp_path / "m.onnx")
    argv = ["build", str(onnx_path), "--max", "l:2x1x16x16", "--timing-cache", str(tmp_path / "t.cache")]
    assert cli_main(argv) == 0
    assert "built in" in capsys.readouterr().out
    assert (tmp_path / "m.plan").is_file()
    assert cli_main(argv) == 0
    assert "up to date" in capsys.readouterr().out
    assert cli_main(argv + ["--precision", "fp32"]) == 0
    assert "built in" in capsys.readouterr().out


def test_cli_dry_run_and_usage_errors_without_tensorrt(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    onnx_path = make_onnx(tmp_path / "m.onnx", stride=16)
    assert cli_main(["build", str(onnx_path), "--dry-run", "--opt", "4x1x64x64"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stride"] == 16 and out["profile"]["l"]["opt"] == [4, 1, 64, 64] and out["plan"].endswith("m.plan")
    assert cli_main(["build", str(onnx_path), "--max", "l:4x1x60x64"]) == 2
    assert "multiples of the model's stride 16" in capsys.readouterr().err
    assert cli_main(["build", str(tmp_path / "nope.onnx")]) == 2
    assert "nope.onnx" in capsys.readouterr().err
    assert cli_main(["build", str(onnx_path)]) == 1
    assert 'pip install ".[trt]"' in capsys.readouterr().err


def test_backend_plan_selection_reuses_or_rebuilds_into_the_cache(tmp_path, fake_trt):
    # TensorRTBackend._plan: a given plan is used when its sidecar matches this GPU/TensorRT/ONNX/
    # precision/profile; otherwise a plan is built into the artifact cache, keyed by all of them.
    from colorize.backends.tensorrt_backend import TensorRTBackend

    onnx_path = make_onnx(tmp_path / "m.onnx")
    plan = tmp_path / "m.plan"
    tb.build_plan(onnx_path, plan, "fp16", timing_cache=False, log=lambda s: None)
    backend = object.__new__(TensorRTBackend)  # no GPU here: exercise _plan alone
    backend.onnx = onnx_path
    cache = tmp_path / "cache"

    target = tb.build_target(onnx_path, "fp16", tensorrt_version="10.3.0", gpu=fake_trt.gpu["value"])
    assert backend._plan(target, str(plan), 1 << 28, str(cache)) == plan

    fake_trt.gpu["value"] = ("NVIDIA L4", "8.9")
    other = tb.build_target(onnx_path, "fp16", tensorrt_version="10.3.0", gpu=fake_trt.gpu["value"])
    with pytest.warns(UserWarning, match="not usable here .*compute capability 9.0"):
        cached = backend._plan(other, str(plan), 1 << 28, str(cache))
    assert cached.is_file() and cache in cached.parents
    assert read_plan_info(cached).gpu_name == "NVIDIA L4"
    builds = sum(c[0] == "build" for c in fake_trt.calls)
    assert backend._plan(other, None, 1 << 28, str(cache)) == cached  # cache hit, no new build
    assert sum(c[0] == "build" for c in fake_trt.calls) == builds
