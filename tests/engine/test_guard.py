"""Quality guard: PSNR against FP32, tolerances per precision, rejection of a broken artifact."""

import numpy as np
import pytest

from colorize.guard import BUNDLED, TOLERANCE_DB, GuardData, check_quality, guard_source, load_guard_data, mean_psnr


@pytest.fixture(scope="module")
def data():
    with np.load(BUNDLED) as z:
        return GuardData(z["images"][:16], "test-16")


def _model(l):
    """A stand-in colorizer: a smooth, input-dependent ab (normalized units)."""
    return np.concatenate([0.2 * l, -0.1 * l], axis=1).astype(np.float32)


def test_psnr_is_infinite_like_for_identical_and_drops_with_noise():
    rgb = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3))
    assert mean_psnr(rgb, rgb) == pytest.approx(120.0)
    noisy = np.clip(rgb + 0.01, 0, 1)
    assert 35 < mean_psnr(noisy, rgb) < 45


def test_identical_candidate_passes_with_zero_drop(data):
    r = check_quality(_model, _model, "int8", data)
    assert r.passed and r.drop_db == pytest.approx(0.0, abs=1e-9) and r.images == 16 and r.source == "test-16"


def test_small_perturbation_passes_large_fails(data):
    rng = np.random.default_rng(0)
    slight = lambda l: _model(l) + rng.normal(0, 1e-4, (len(l), 2) + l.shape[2:]).astype(np.float32)
    broken = lambda l: _model(l) * 4.0 + 0.3  # what a bad quantization scale looks like
    assert check_quality(slight, _model, "bf16", data).passed
    r = check_quality(broken, _model, "int8", data)
    assert not r.passed and r.drop_db > TOLERANCE_DB["int8"]
    assert "FAILED for int8" in r.describe() and f"allowed {TOLERANCE_DB['int8']} dB" in r.describe()


def test_tolerances_are_the_issue_s():
    assert TOLERANCE_DB == {"bf16": 0.1, "fp16": 0.1, "int8": 0.2}
    with pytest.raises(ValueError, match="no guard tolerance for precision 'fp32'"):
        check_quality(_model, _model, "fp32", GuardData(np.zeros((1, 8, 8, 3), np.uint8), "x"))


def test_guard_data_falls_back_to_the_bundled_set(monkeypatch, tmp_path):
    monkeypatch.setenv("COLORIZE_CIFAR10", str(tmp_path / "nowhere"))
    d = load_guard_data(32)
    assert d.source == "bundled-cifar10-test-32" and d.images.shape == (32, 32, 32, 3)
    assert guard_source(32) == d.source and guard_source(1000) == load_guard_data(1000).source  # 128 bundled
    with pytest.raises(ValueError, match="uint8"):
        GuardData(np.zeros((2, 8, 8, 3), np.float32), "bad")


def test_guard_source_is_the_loaded_data_s_source():
    try:
        from colorize.data.cifar10 import resolve_data_dir
    except ImportError:
        pytest.skip("no training package")
    if not (resolve_data_dir() / "test.zip").is_file():
        pytest.skip("CIFAR-10 test split not on this machine (the bundled case is tested above)")
    assert guard_source() == load_guard_data().source == "cifar10-test-256-seed0"
