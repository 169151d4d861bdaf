"""Plain-Python side of TensorRT builds: ONNX inputs, shape specs, profiles (trt_profile); sidecars,
reuse checks, cache keys (trt_plan)."""

import dataclasses

import onnx
import pytest
from onnx import TensorProto, helper

from colorize.export.trt_plan import BuildTarget, PlanInfo, plan_cache_key, plan_mismatches, read_plan_info, sidecar_path
from colorize.export.trt_profile import DefaultRanges, Profile, onnx_inputs, onnx_stride, parse_shapes, resolve_profile


def make_onnx(path, dims=("N", 1, "H", "W"), stride=8, extra_input=False):
    """A one-node ONNX (Conv 1->2 channels) with the given input dims and colorize stride metadata."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 1, 1, 1], [1.0, -1.0])
    inputs = [helper.make_tensor_value_info("l", TensorProto.FLOAT, list(dims))]
    nodes = [helper.make_node("Conv", ["l", "w"], ["ab"], name="head_conv")]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1]))
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info("ab", TensorProto.FLOAT, ["N", 2, "H", "W"])], [w]
    )
    # older IR versions list initializers as inputs too; they must not count as inputs
    graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 1, 1, 1]))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if stride is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "colorize.total_stride", str(stride)
    onnx.save(model, str(path))
    return path


def test_onnx_inputs_and_stride(tmp_path):
    p = make_onnx(tmp_path / "m.onnx", dims=("N", 1, None, "W"), stride=16)
    (spec,) = onnx_inputs(p)
    assert spec.name == "l" and spec.dims == ("N", 1, None, "W") and spec.dynamic_axes == [0, 2, 3]
    assert onnx_stride(p) == 16
    assert onnx_stride(make_onnx(tmp_path / "n.onnx", stride=None)) is None


def test_onnx_inputs_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        onnx_inputs(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a model")
    with pytest.raises(ValueError, match="bad.onnx"):
        onnx_inputs(bad)


def test_default_profile_from_dynamic_axes(tmp_path):
    inputs = onnx_inputs(make_onnx(tmp_path / "m.onnx"))
    prof = resolve_profile(inputs, stride=8)
    r = DefaultRanges()
    lo, mid, hi = prof.shapes["l"]
    assert lo == (r.batch[0], 1, 8 * r.spatial_strides[0], 8 * r.spatial_strides[0])
    assert mid == (r.batch[1], 1, 8 * r.spatial_strides[1], 8 * r.spatial_strides[1])
    assert hi == (r.batch[2], 1, 8 * r.spatial_strides[2], 8 * r.spatial_strides[2])
    # static axes stay fixed
    static = resolve_profile(onnx_inputs(make_onnx(tmp_path / "s.onnx", dims=(4, 1, 32, "W"))), stride=8)
    lo, mid, hi = static.shapes["l"]
    assert lo[:3] == mid[:3] == hi[:3] == (4, 1, 32) and lo[3] < hi[3]


def test_overrides_are_clamped_and_validated(tmp_path):
    inputs = onnx_inputs(make_onnx(tmp_path / "m.onnx"))
    prof = resolve_profile(inputs, max_shapes=parse_shapes("4x1x64x64", inputs), stride=8)
    lo, mid, hi = prof.shapes["l"]
    assert hi == (4, 1, 64, 64) and mid == (4, 1, 64, 64) and lo == (1, 1, 8, 8)
    prof = resolve_profile(inputs, min_shapes={"l": (16, 1, 512, 512)}, stride=8)
    assert prof.shapes["l"][1] == (16, 1, 512, 512)
    with pytest.raises(ValueError, match="min <= opt <= max"):
        resolve_profile(inputs, {"l": (8, 1, 8, 8)}, {"l": (4, 1, 8, 8)}, {"l": (16, 1, 8, 8)})
    with pytest.raises(ValueError, match="multiples of the model's stride 8"):
        resolve_profile(inputs, max_shapes={"l": (4, 1, 60, 64)}, stride=8)
    with pytest.raises(ValueError, match="axis 1 is static 1"):
        resolve_profile(inputs, max_shapes={"l": (4, 3, 64, 64)})
    with pytest.raises(ValueError, match="rank 3"):
        resolve_profile(inputs, max_shapes={"l": (4, 64, 64)})
    with pytest.raises(ValueError, match="no input named 'x'"):
        resolve_profile(inputs, opt_shapes={"x": (4, 1, 64, 64)})


def test_dynamic_channel_axis_needs_explicit_shapes(tmp_path):
    inputs = onnx_inputs(make_onnx(tmp_path / "m.onnx", dims=("N", "C", "H", "W")))
    with pytest.raises(ValueError, match="axis 1 .* neither batch nor spatial"):
        resolve_profile(inputs)
    s = {"l": (1, 1, 8, 8)}
    assert resolve_profile(inputs, s, s, s).shapes["l"] == ((1, 1, 8, 8),) * 3


def test_parse_shapes(tmp_path):
    inputs = onnx_inputs(make_onnx(tmp_path / "m.onnx", extra_input=True))
    assert parse_shapes("l:1x1x32x32, scale:1", inputs) == {"l": (1, 1, 32, 32), "scale": (1,)}
    assert parse_shapes(None) == {} and parse_shapes("  ") == {}
    single = onnx_inputs(make_onnx(tmp_path / "one.onnx"))
    assert parse_shapes("2x1x8x16", single) == {"l": (2, 1, 8, 16)}
    with pytest.raises(ValueError, match="no input name"):
        parse_shapes("1x1x8x8", inputs)
    with pytest.raises(ValueError, match="no input named 'x'"):
        parse_shapes("x:1x1x8x8", inputs)
    for bad in ("l:1x1x8x", "l:1,1,8,8", "l:0x1x8x8", "l:-1x1x8x8"):
        with pytest.raises(ValueError):
            parse_shapes(bad, inputs)
    with pytest.raises(ValueError, match="given twice"):
        parse_shapes("l:1x1x8x8,l:2x1x8x8", inputs)


def test_profile_check_and_json_roundtrip():
    prof = Profile({"l": ((1, 1, 8, 8), (8, 1, 256, 256), (32, 1, 512, 512))})
    prof.check("l", (4, 1, 64, 128))
    with pytest.raises(ValueError, match="outside the engine's profile"):
        prof.check("l", (4, 1, 1024, 64))
    with pytest.raises(ValueError, match="outside"):
        prof.check("l", (64, 1, 8, 8))
    assert prof.max_batch("l") == 32
    assert Profile.from_json(prof.to_json()) == prof
    with pytest.raises(ValueError, match="malformed profile"):
        Profile.from_json({"l": {"min": [1]}})


def _target(**kw):
    base = dict(
        tensorrt_version="10.3.0",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        precision="fp16",
        profile=Profile({"l": ((1, 1, 8, 8), (8, 1, 256, 256), (32, 1, 512, 512))}),
        onnx_sha256="a" * 64,
    )
    base.update(kw)
    return BuildTarget(**base)


def test_sidecar_roundtrip_and_mismatches(tmp_path):
    target = _target()
    info = PlanInfo.for_target(target, plan_sha256="b" * 64, workspace_bytes=1 << 30)
    plan = tmp_path / "m.plan"
    sidecar_path(plan).write_text(info.to_json())
    assert sidecar_path(plan).name == "m.plan.json"
    back = read_plan_info(plan)
    assert back == info
    assert plan_mismatches(back, target, "b" * 64) == []
    cases = {
        "TensorRT 10.3.0, this is TensorRT 10.8.0": _target(tensorrt_version="10.8.0"),
        "compute capability 9.0": _target(compute_capability="8.9", gpu_name="NVIDIA L4"),
        "this GPU is NVIDIA H200": _target(gpu_name="NVIDIA H200"),
        "precision fp16, wanted fp32": _target(precision="fp32"),
        "built from ONNX aaaa": _target(onnx_sha256="c" * 64),
        "profile": _target(profile=Profile({"l": ((1, 1, 8, 8), (8, 1, 256, 256), (64, 1, 512, 512))})),
    }
    for expected, other in cases.items():
        reasons = plan_mismatches(back, other, "b" * 64)
        assert len(reasons) == 1 and expected in reasons[0], (expected, reasons)
        assert plan_cache_key(other, 1 << 30) != plan_cache_key(target, 1 << 30)
    assert "modified or truncated" in plan_mismatches(back, target, "d" * 64)[0]


def test_sidecar_errors_name_file_and_field(tmp_path):
    plan = tmp_path / "m.plan"
    with pytest.raises(FileNotFoundError, match="m.plan.json"):
        read_plan_info(plan)
    sidecar_path(plan).write_text("{")
    with pytest.raises(ValueError, match="m.plan.json: not JSON"):
        read_plan_info(plan)
    data = dataclasses.asdict(PlanInfo.for_target(_target(), plan_sha256="b" * 64))
    del data["gpu_name"]
    import json

    sidecar_path(plan).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="missing field\\(s\\) gpu_name"):
        read_plan_info(plan)
    data["gpu_name"], data["format"] = "x", "other/1"
    sidecar_path(plan).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="field 'format'"):
        read_plan_info(plan)
