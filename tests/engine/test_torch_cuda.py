"""torch-cuda backend: the CPU-checkable parts here; graph capture and parity on a GPU only."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from colorize.artifacts.model_ref import resolve_model  # noqa: E402
from colorize.backends import backend_class  # noqa: E402
from colorize.backends.base import BackendError  # noqa: E402
from colorize.backends.torch_cuda import (  # noqa: E402
    BUCKETS,
    TOLERANCES,
    TorchCudaBackend,
    batch_chunks,
    bucket_for,
    parity,
    prepare_model,
)
from colorize.models import create_model  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")

# BN folding reorders float32 sums only.
FOLD_FP32_ATOL = 1e-4


def test_registered_and_unavailable_here_with_a_reason():
    assert backend_class("torch-cuda") is TorchCudaBackend
    reason = TorchCudaBackend.available()
    if torch.cuda.is_available():
        assert reason is None
    else:
        assert "no CUDA device" in reason
        with pytest.raises(BackendError, match="torch-cuda backend unavailable: no CUDA device"):
            TorchCudaBackend(resolve_model("resnet18-unet"))


def test_buckets_and_chunks():
    assert [bucket_for(n) for n in (1, 2, 3, 5, 64, 65, 256)] == [1, 2, 4, 8, 64, 128, 256]
    assert bucket_for(1000) == max(BUCKETS)
    assert bucket_for(3, (8, 2)) == 8
    with pytest.raises(ValueError, match=">= 1"):
        bucket_for(0)
    chunks = batch_chunks(600, 256)
    assert [(s.start, s.stop) for s in chunks] == [(0, 256), (256, 512), (512, 600)]
    assert batch_chunks(3, 256) == [slice(0, 3)]


def test_parity_names_the_tolerance():
    ref = np.zeros((1, 2, 4, 4), np.float32)
    out = ref.copy()
    out[0, 0, 0, 0] = 0.5
    assert parity(ref, ref + 1e-4, TOLERANCES["fp16"], "x")["max_abs"] == pytest.approx(1e-4, rel=1e-3)
    with pytest.raises(BackendError, match=r"max 0.5 .* tolerance max 0.02 .*JND"):
        parity(ref, out, TOLERANCES["fp16"], "torch-cuda fp16")
    with pytest.raises(BackendError, match="non-finite"):
        parity(ref, ref * np.nan, TOLERANCES["fp16"], "x")


def test_prepared_model_matches_eager_on_cpu():
    torch.manual_seed(0)
    model = create_model("resnet18-unet").eval()
    for m in model.modules():  # non-trivial BN statistics so folding is tested
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    prepared = prepare_model(model, "fp32", fuse=None, device="cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.modules())
    assert prepared.encoder.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 1, 8, 16)
    with torch.inference_mode():
        torch.testing.assert_close(prepared(x.contiguous(memory_format=torch.channels_last)), model(x),
                                   atol=FOLD_FP32_ATOL, rtol=FOLD_FP32_ATOL)
    with pytest.raises(ValueError, match="precision"):
        prepare_model(model, "int8", device="cpu")
    with pytest.raises(ValueError, match="fuse"):
        prepare_model(model, "fp32", fuse="magic", device="cpu")


def test_backend_logic_on_cpu_without_graphs(monkeypatch):
    # Everything but the CUDA graph (model preparation, load-time parity, chunking, I/O) on the CPU in FP16.
    monkeypatch.setattr(TorchCudaBackend, "available", classmethod(lambda cls: None))
    ref = resolve_model("resnet18-unet")  # shipped weights, or a random init with a warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        be = TorchCudaBackend(ref, "fp16", cuda_graphs=False, device="cpu", buckets=(1, 2))
    assert be.parity is not None and be.parity["max_abs"] <= TOLERANCES["fp16"].max_abs
    x = np.random.default_rng(3).uniform(-1, 1, (3, 1, 8, 16)).astype(np.float32)  # 3 rows: chunks of 2 + 1
    y = be.run(x)
    assert y.dtype == np.float32 and y.shape == (3, 2, 8, 16) and y.flags["C_CONTIGUOUS"]
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from colorize.backends.torch_backend import build_torch_model

        expected = build_torch_model(ref)(torch.from_numpy(x)).numpy()
    report = parity(expected, y, TOLERANCES["fp16"], "torch-cuda fp16 on cpu")
    assert report["max_abs"] > 0  # it really ran in FP16
    be.close()
    with pytest.raises(BackendError, match="closed"):
        be.run(x)


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("precision,fuse", [("fp16", None), ("fp32", None), ("fp16", "epilogue"), ("fp16", "conv")])
def test_backend_matches_eager_fp32_on_gpu(precision, fuse):
    if fuse:
        pytest.importorskip("triton")
    ref = resolve_model("resnet18-unet")
    with TorchCudaBackend(ref, precision, fuse=fuse, buckets=(1, 4)) as be:
        assert be.parity["max_abs"] <= TOLERANCES[precision].max_abs
        x = np.random.default_rng(1).uniform(-1, 1, (6, 1, 16, 24)).astype(np.float32)  # 6 > 4: two chunks
        y = be.run(x)
        # the load-time probe (2 rows at 32x32) and both chunks of 6 rows (4 + 2) use bucket 4
        assert sorted(be._graphs) == [(4, 16, 24), (4, 32, 32)]
        from colorize.backends.torch_backend import build_torch_model

        with torch.inference_mode():
            expected = build_torch_model(ref).eval()(torch.from_numpy(x)).numpy()
        parity(expected, y, TOLERANCES[precision], "torch-cuda run")
