"""The stride: one rule (``colorize.model_io.model_stride``), from a torch-free table of every registered colorizer
(``ARCH_STRIDES``), checked here against each real network's downsampling; the engine, the TensorRT profile and an
imported model's metadata all go through it; ``colorize.model_io`` imports no engine (no import circle)."""

import subprocess
import sys
import textwrap

import pytest

from colorize.artifacts.model_ref import ModelRef
from colorize.model_io import ARCH_STRIDES, ModelIO, arch_stride, model_io, model_stride

torch = pytest.importorskip("torch")

from colorize.models import create_model, list_models  # noqa: E402  (needs torch)


def downsampling(model, side: int = 64) -> int:
    """How much the network downsamples: the input's side over the smallest feature map any of its layers
    produces, on a ``side`` x ``side`` input (a multiple of every stride here)."""
    smallest = [side]

    def hook(module, args, out):
        for t in out if isinstance(out, (list, tuple)) else [out]:
            if isinstance(t, torch.Tensor) and t.dim() == 4:
                smallest[0] = min(smallest[0], t.shape[-1])

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            model.eval().forward_padded(torch.zeros(1, 1, side, side))
    finally:
        for h in handles:
            h.remove()
    return side // smallest[0]


#: every registered colorizer with its defaults, and the keyword arguments that change a stride
CASES = [(name, {}) for name in list_models("colorizer")] + [
    ("resnet18-unet", {"stem": "imagenet"}),
    ("seed-unet", {"widths": (8, 16, 32)}),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}{'-' + '-'.join(map(str, k.values())) if k else ''}"
                                                     for n, k in CASES])
def test_the_table_is_each_networks_real_downsampling(name, kwargs):
    model = create_model(name, **kwargs)
    assert arch_stride(name, kwargs) == downsampling(model) == model.total_stride


def test_every_registered_colorizer_is_in_the_table():
    assert set(list_models("colorizer")) == set(ARCH_STRIDES)
    from colorize.models._registry import model_stride as registry_stride, register_model

    assert registry_stride("efficientnet_lite0-unet") == 32 and registry_stride("resnet18-unet") == 8
    with pytest.raises(ValueError, match="classifier"):
        registry_stride("resnet18")
    with pytest.raises(ValueError, match="'made-up-unet' has no total stride"):
        register_model("made-up-unet", kind="colorizer")(lambda: None)
    assert "made-up-unet" not in list_models()


def test_model_stride_reads_the_description_then_the_metadata_then_the_architecture():
    assert model_stride(ModelRef("e", "efficientnet_lite0-unet")) == 32  # the name alone once gave 8
    assert model_stride(ModelRef("r", "resnet34-unet-lite")) == 32
    assert model_stride(ModelRef("s", "seed-unet", {"widths": [4, 8]})) == 2
    assert model_stride(ModelRef("m", "resnet18-unet", metadata={"total_stride": 16})) == 16
    static = ModelIO.from_dict({"input": "gray_rgb:0..1", "output": "ab:lab", "size": "64x64"}).to_dict()
    assert model_stride(ModelRef("x", "onnx", metadata={"io": static, "total_stride": 1})) == 1
    dynamic = ModelIO.from_dict({"input": "l:-1..1", "output": "ab:128", "size": "dynamic:32"}).to_dict()
    assert model_stride(ModelRef("t", "onnx", metadata={"io": dynamic})) == 32
    assert model_io(ModelRef("e", "efficientnet_lite2-unet")).stride == 32  # our convention, with that stride
    with pytest.raises(ValueError, match="no stride known for architecture 'mystery'"):
        model_stride(ModelRef("q", "mystery"))
    with pytest.raises(ValueError, match="not an integer"):
        model_stride(ModelRef("q", "onnx", metadata={"total_stride": "eight"}))


def test_the_shipped_models_strides():
    from colorize.artifacts.model_ref import resolve_model
    from colorize.engine import Engine, model_stride as engine_stride

    assert engine_stride is model_stride  # the engine's name for it is the one rule
    for name, stride in (("resnet18-unet", 8), ("efficientnet_lite0-unet-photos", 32)):
        ref = resolve_model(name)
        assert model_stride(ref) == stride
        with Engine.load(name, backend="onnxruntime", precision="fp32") as eng:
            assert eng.stride == stride


def test_the_tensorrt_profile_reads_the_same_rule(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from colorize.export.trt_profile import onnx_stride

    def file(props: dict) -> str:
        graph = helper.make_graph([helper.make_node("Identity", ["l"], ["ab"])], "g",
                                  [helper.make_tensor_value_info("l", TensorProto.FLOAT, ["N", 1, "H", "W"])],
                                  [helper.make_tensor_value_info("ab", TensorProto.FLOAT, ["N", 1, "H", "W"])])
        proto = helper.make_model(graph)
        for k, v in props.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        path = tmp_path / f"m{len(list(tmp_path.iterdir()))}.onnx"
        onnx.save(proto, str(path))
        return str(path)

    static = ModelIO.from_dict({"input": "gray_rgb:0..1", "output": "ab:lab", "size": "512x512"}).to_json()
    assert onnx_stride(file({"colorize.io": static})) == 1
    assert onnx_stride(file({"colorize.total_stride": "32"})) == 32
    assert onnx_stride(file({})) is None
    with pytest.raises(ValueError, match="must be >= 1"):
        onnx_stride(file({"colorize.total_stride": "0"}))


def test_the_stride_needs_neither_torch_nor_the_engine():
    """``colorize.model_io`` (the rule and the table) imports neither torch nor ``colorize.engine``: the circle
    engine -> artifacts.onnx_io -> model_adapter -> model_io -> engine is gone."""
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch blocked")
        sys.meta_path.insert(0, Block())
        from colorize.artifacts.model_ref import ModelRef
        from colorize.model_io import model_stride
        import colorize.model_adapter
        assert model_stride(ModelRef("e", "efficientnet_lite1-unet")) == 32
        assert "colorize.engine" not in sys.modules and "torch" not in sys.modules, sorted(sys.modules)
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
