"""ONNX export: BN folded, opset, dynamic axes, metadata, checker, parity, atomic failure, CLI."""

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from colorize.artifacts.model_ref import resolve_model
from colorize.artifacts.onnx_metadata import read_onnx_metadata
from colorize.export import onnx_export
from colorize.export.onnx_export import PARITY_ATOL, ExportError, export_onnx


@pytest.fixture(scope="module")
def exported(tmp_path_factory, make_bn_checkpoint):
    d = tmp_path_factory.mktemp("export")
    ckpt, model = make_bn_checkpoint(d / "bn")
    report = export_onnx(ckpt, d / "bn.onnx")
    return report, ckpt, model, d / "bn.onnx"


def test_export_folds_bn_has_metadata_and_passes_checker(exported):
    report, ckpt, _, path = exported
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    ops = {n.op_type for n in proto.graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops
    meta = read_onnx_metadata(path)
    ref = resolve_model(ckpt)
    assert meta.weights_sha256 == ref.sha256 and meta.total_stride == 8 and meta.arch == "resnet18-unet"
    assert meta.normalization == ref.normalization.to_dict() and meta.weights_dtype == "fp32"
    from colorize.model_io import ModelIO

    assert ModelIO.from_dict(meta.io) == ModelIO.native(ref.normalization, 8)  # our convention, stated
    assert report.max_abs <= PARITY_ATOL
    # an .onnx ModelRef takes its identity from the metadata, without torch
    oref = resolve_model(path)
    assert (oref.sha256, oref.metadata["total_stride"], oref.normalization) == (ref.sha256, 8, ref.normalization)


@pytest.mark.parametrize("shape", [(1, 1, 8, 8), (3, 1, 24, 40), (2, 1, 64, 16)])
def test_dynamic_axes_match_eager(exported, shape):
    _, _, model, path = exported
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    l = np.random.default_rng(sum(shape)).uniform(-1, 1, shape).astype(np.float32)
    (got,) = sess.run(None, {"l": l})
    with torch.no_grad():
        want = model(torch.from_numpy(l)).numpy()
    np.testing.assert_allclose(got, want, atol=PARITY_ATOL, rtol=0)


def test_fp16_weights_halve_the_file_and_keep_parity(exported, tmp_path):
    _, ckpt, model, path32 = exported
    report = export_onnx(ckpt, tmp_path / "half.onnx", weights="fp16")
    size16, size32 = (tmp_path / "half.onnx").stat().st_size, path32.stat().st_size
    assert size16 < 0.55 * size32
    assert report.max_abs <= PARITY_ATOL  # vs eager on the same fp16-rounded weights
    assert report.max_abs_vs_unrounded < 1e-2  # what the rounding itself costs
    assert read_onnx_metadata(tmp_path / "half.onnx").weights_dtype == "fp16"


def test_parity_failure_raises_and_writes_nothing(exported, tmp_path, monkeypatch):
    _, ckpt, _, _ = exported

    def broken_reference(model):  # the eager reference no longer matches the exported graph
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.5)

    monkeypatch.setattr(onnx_export, "_round_params_fp16", broken_reference)
    with pytest.raises(ExportError, match="parity failed"):
        export_onnx(ckpt, tmp_path / "bad.onnx", weights="fp16")
    assert not (tmp_path / "bad.onnx").exists()


def test_export_rejects_bad_arguments(exported, tmp_path):
    _, ckpt, _, path = exported
    with pytest.raises(ValueError, match="opset must be >= 17"):
        export_onnx(ckpt, tmp_path / "x.onnx", opset=13)
    with pytest.raises(ValueError, match="already an ONNX model"):
        export_onnx(path, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="weights must be"):
        export_onnx(ckpt, tmp_path / "x.onnx", weights="int4")


def test_cli_export(tmp_path, capsys):
    from colorize.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["export", "--model", "resnet18-unet", "-o", str(tmp_path / "r.onnx")]) == 0
    assert "parity with eager FP32" in capsys.readouterr().out
    meta, ref = read_onnx_metadata(tmp_path / "r.onnx"), resolve_model("resnet18-unet")  # shipped or random init
    assert meta.random_init == ref.random_init and meta.name == "resnet18-unet"
    assert main(["export", "--model", "resnet18-unet", "-o", str(tmp_path / "r.txt")]) == 2
