"""Every ONNX backend x precision against eager FP32, with named tolerances; torch-free ONNX path.

Tolerances (max |delta ab|, normalized units, relative to the reference's max |ab| for low precisions):
* FP32_ATOL: FP32 kernels differ only in summation order and conv algorithm (Winograd in OpenVINO).
* BF16_REL: bf16 keeps 8 mantissa bits (relative step 2^-8 = 0.4%) and errors add up over ~20 convs.
* INT8_REL: 8-bit activations (a step of range/255) through ~20 quantized convs.
These bound per-pixel error; image-level quality is the guard's job (tests/engine/test_guard.py).
"""

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from colorize.backends import backend_class
from colorize.backends.base import MissingDependency
from colorize.engine import Engine
from colorize.guard import GuardData

FP32_ATOL = 1e-4
BF16_REL = 0.05
INT8_REL = 0.10

CASES = [
    ("onnxruntime", "fp32", None),
    ("onnxruntime", "int8", INT8_REL),
    ("openvino", "fp32", None),
    ("openvino", "bf16", BF16_REL),
    ("openvino", "int8", INT8_REL),
]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, make_bn_checkpoint):
    """A checkpoint, its exported ONNX (fp16 weights, as shipped), and a shared artifact cache."""
    from colorize.export.onnx_export import export_onnx

    d = tmp_path_factory.mktemp("backends")
    import torch

    ckpt, _ = make_bn_checkpoint(d / "bn", torch.float16)
    export_onnx(ckpt, d / "model.onnx")  # not next to the checkpoint: loading the checkpoint must export
    return ckpt, d / "model.onnx", d / "cache"


@pytest.fixture(autouse=True)
def _tiny_data(monkeypatch):
    """16 calibration images and 16 guard images: fast, and no dataset needed."""
    from colorize import guard
    from colorize.export import quantize

    rng = np.random.default_rng(0)
    tiny = rng.uniform(-1, 1, (16, 1, 32, 32)).astype(np.float32)
    monkeypatch.setattr(quantize, "calibration_l", lambda n=16, seed=0: tiny)
    with np.load(guard.BUNDLED) as z:
        images = z["images"][:16]
    monkeypatch.setattr(guard, "load_guard_data", lambda n=16: GuardData(images, "test-16"))


@pytest.fixture(scope="module")
def eager_reference(model_files):
    ckpt, _, _ = model_files
    with Engine.load(ckpt, "torch", "fp32") as eng:
        l = np.random.default_rng(1).uniform(-1, 1, (3, 1, 20, 27)).astype(np.float32)
        return l, eng.run(l)


@pytest.mark.parametrize("backend,precision,rel", CASES)
def test_backend_matches_eager(model_files, eager_reference, backend, precision, rel):
    missing = backend_class(backend).precision_unavailable(precision)
    if missing:  # what the CPU reports (colorize.cpu), e.g. no bf16 on an AVX2-only CPU
        pytest.skip(f"{backend} {precision}: {missing}")
    ckpt, onnx_path, cache = model_files
    l, want = eager_reference
    with Engine.load(onnx_path, backend, precision, cache_dir=cache) as eng:
        assert (eng.backend, eng.precision, eng.stride) == (backend, precision, 8)
        got = eng.run(l)
        got1 = eng.run(l[:1])  # batch 1 takes the latency path in openvino
    assert got.shape == want.shape == (3, 2, 20, 27) and got.dtype == np.float32
    err = float(np.abs(got - want).max())
    tol = FP32_ATOL if rel is None else rel * float(np.abs(want).max())
    assert err <= tol, f"{backend} {precision}: max |dab| {err:.3g} > {tol:.3g}"
    assert np.abs(got1 - got[:1]).max() <= max(tol, 1e-5)
    if precision != "fp32":
        assert eng.guard_result is not None and eng.guard_result.passed, eng.guard_result


def test_backends_run_from_checkpoint_by_exporting_into_the_cache(model_files, eager_reference, tmp_path):
    ckpt, _, _ = model_files
    l, want = eager_reference
    with Engine.load(ckpt, "onnxruntime", "fp32", cache_dir=tmp_path) as eng:
        np.testing.assert_allclose(eng.run(l), want, atol=FP32_ATOL, rtol=0)
    assert len(list(tmp_path.glob("onnx-*/model.onnx"))) == 1


def test_openvino_throughput_mode_splits_batches(model_files, eager_reference):
    _, onnx_path, cache = model_files
    l, want = eager_reference
    with Engine.load(onnx_path, "openvino", "fp32", cache_dir=cache, mode="throughput", num_threads=2) as eng:
        np.testing.assert_allclose(eng.run(np.concatenate([l, l])), np.concatenate([want, want]), atol=FP32_ATOL)


_NO_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, _Block())
"""


def test_onnx_path_never_imports_torch(model_files):
    """Both ONNX backends, every precision, in a subprocess where importing torch fails."""
    from colorize.artifacts.cache import ArtifactCache
    from colorize.artifacts.model_ref import resolve_model
    from colorize.artifacts.onnx_files import int8_onnx

    _, onnx_path, cache = model_files
    int8_onnx(resolve_model(onnx_path), ArtifactCache(cache))  # built here (tiny calibration), reused there
    code = _NO_TORCH + textwrap.dedent(f"""
        import numpy as np
        from colorize.engine import Engine
        l = np.zeros((1, 1, 16, 16), np.float32)
        for b, p in [("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "int8")]:
            with Engine.load({str(onnx_path)!r}, b, p, cache_dir={str(cache)!r}, guard=False) as e:
                assert e.run(l).shape == (1, 2, 16, 16)
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch was imported"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_no_onnx_and_no_torch_names_the_torch_extra(model_files):
    ckpt, _, _ = model_files
    code = _NO_TORCH + textwrap.dedent(f"""
        from colorize.engine import Engine
        from colorize.backends.base import MissingDependency
        try:
            Engine.load({str(ckpt)!r}, "onnxruntime", "fp32")
        except MissingDependency as e:
            print("MISSING:", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "MISSING:" in out.stdout and 'pip install ".[torch]"' in out.stdout, out.stdout + out.stderr[-2000:]


def test_missing_extra_is_named(model_files, monkeypatch):
    _, onnx_path, _ = model_files
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(MissingDependency, match=r'pip install "\.\[cpu\]"'):
        Engine.load(onnx_path, "openvino", "fp32")


def test_unknown_backend_precision_and_option(model_files):
    _, onnx_path, _ = model_files
    with pytest.raises(ValueError, match="unknown backend 'onnx'; valid: .*onnxruntime"):
        Engine.load(onnx_path, "onnx")
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        Engine.load(onnx_path, "openvino", "int4")
    with pytest.raises(ValueError, match="does not run precision 'bf16'; it runs fp32, int8"):
        Engine.load(onnx_path, "onnxruntime", "bf16")
    with pytest.raises(ValueError, match="mode must be one of"):
        Engine.load(onnx_path, "openvino", "fp32", mode="fast")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="takes no option"):
            Engine.load(onnx_path, "onnxruntime", "fp32", mode="latency")


def test_onnxruntime_cuda_fallback_to_cpu_is_detected(model_files, monkeypatch):
    """onnxruntime-gpu lists CUDA even without a GPU and silently runs on CPU: must be refused."""
    import onnxruntime as ort

    from colorize.backends.base import BackendError
    from colorize.backends.onnxruntime_backend import OnnxRuntimeCudaBackend

    _, onnx_path, cache = model_files
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a CUDA provider is installed; this test simulates its silent fallback on CPU-only onnxruntime")
    assert "CUDAExecutionProvider" in OnnxRuntimeCudaBackend.available()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert OnnxRuntimeCudaBackend.available() is None
    with pytest.raises(BackendError, match="session got .*CPUExecutionProvider"):
        Engine.load(onnx_path, "onnxruntime-cuda", "fp32", cache_dir=cache)


def test_shipped_int8_is_used_without_calibration_data(model_files, tmp_path, monkeypatch):
    import shutil

    from colorize.artifacts.onnx_metadata import OnnxMetadata, read_props
    from colorize.export import quantize

    _, onnx_path, _ = model_files
    src = shutil.copy(onnx_path, tmp_path / "m.onnx")
    quantize.quantize_int8(src, tmp_path / "m.int8.onnx", quantize.calibration_l())

    def no_data(*a, **k):
        raise FileNotFoundError("CIFAR-10 train split not found (test)")

    monkeypatch.setattr(quantize, "calibration_l", no_data)
    with Engine.load(tmp_path / "m.onnx", "openvino", "int8", cache_dir=tmp_path / "c") as eng:
        assert eng._backend.path == tmp_path / "m.int8.onnx"
    # an .int8.onnx from other weights is ignored (and here, with no data, INT8 cannot be built)
    proto = onnx_load(tmp_path / "m.int8.onnx")
    meta = OnnxMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    meta.weights_sha256 = "0" * 64
    meta.write_to(proto)
    onnx_save(proto, tmp_path / "m.int8.onnx")
    assert "colorize.quantization" in read_props(tmp_path / "m.int8.onnx")
    with pytest.raises(FileNotFoundError, match="CIFAR-10 train split not found"):
        Engine.load(tmp_path / "m.onnx", "openvino", "int8", cache_dir=tmp_path / "c2")


def onnx_load(path):
    import onnx

    return onnx.load(str(path))


def onnx_save(proto, path):
    import onnx

    onnx.save(proto, str(path))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_concurrent_calls_from_threads(model_files, backend):
    from concurrent.futures import ThreadPoolExecutor

    _, onnx_path, cache = model_files
    rng = np.random.default_rng(3)
    batches = [rng.uniform(-1, 1, (n, 1, 16, 24)).astype(np.float32) for n in (1, 4, 2, 5, 1, 3)]
    with Engine.load(onnx_path, backend, "fp32", cache_dir=cache) as eng:
        alone = [eng.run(b) for b in batches]
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(eng.run, batches))
    for a, t in zip(alone, together):
        np.testing.assert_array_equal(a, t)


def test_onnx_next_to_checkpoint_is_used_only_when_its_weights_match(model_files, tmp_path):
    import shutil

    from colorize.artifacts.onnx_metadata import OnnxMetadata

    ckpt, onnx_path, _ = model_files
    json_copy, onnx_copy = tmp_path / ckpt.name, tmp_path / ckpt.with_suffix(".onnx").name
    for suffix in (".json", ".safetensors"):
        shutil.copy(ckpt.with_suffix(suffix), tmp_path / ckpt.with_suffix(suffix).name)
    shutil.copy(onnx_path, onnx_copy)
    with Engine.load(json_copy, "onnxruntime", "fp32", cache_dir=tmp_path / "c1") as eng:
        assert eng._backend.path == onnx_copy  # matching sha256: used as shipped, no export
    proto = onnx_load(onnx_copy)
    meta = OnnxMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    meta.weights_sha256 = "f" * 64  # exported from other weights: stale
    meta.write_to(proto)
    onnx_save(proto, onnx_copy)
    with pytest.warns(UserWarning, match="ignoring the stale ONNX"):
        eng = Engine.load(json_copy, "onnxruntime", "fp32", cache_dir=tmp_path / "c2")
    assert eng._backend.path.parent.parent == tmp_path / "c2" and eng._backend.path.name == "model.onnx"
    eng.close()


def test_onnx_next_to_checkpoint_with_other_arch_kwargs_is_not_used(model_files, tmp_path):
    """Same weights, another head setting in the checkpoint (e.g. an edited bins temperature): the ONNX beside it
    was exported with the old setting, so it is not used."""
    import json
    import shutil

    ckpt, onnx_path, _ = model_files
    for suffix in (".json", ".safetensors"):
        shutil.copy(ckpt.with_suffix(suffix), tmp_path / ckpt.with_suffix(suffix).name)
    shutil.copy(onnx_path, tmp_path / ckpt.with_suffix(".onnx").name)
    json_copy = tmp_path / ckpt.name
    meta = json.loads(json_copy.read_text())
    meta["arch_kwargs"] = {**meta.get("arch_kwargs", {}), "final_channels": 16}
    json_copy.write_text(json.dumps(meta))
    from colorize.artifacts.model_ref import resolve_model
    from colorize.artifacts.onnx_files import _usable_shipped_onnx

    with pytest.warns(UserWarning, match="ignoring it and exporting from the checkpoint"):
        assert _usable_shipped_onnx(resolve_model(json_copy)) is None
