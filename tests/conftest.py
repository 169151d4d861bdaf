import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--run-data", action="store_true", help="run tests that read the full shared datasets")


def pytest_configure(config):
    # ``auto`` takes the first candidate in AUTO_ORDER rather than timing them all on each fresh cache: the suite
    # loads many models, each test with its own cache. tests/engine/test_auto_speed.py measures.
    os.environ.setdefault("COLORIZE_AUTO", "order")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-data") or os.environ.get("COLORIZE_RUN_DATA") == "1":
        return
    skip = pytest.mark.skip(reason="reads the full shared datasets; opt in with --run-data or COLORIZE_RUN_DATA=1")
    for item in items:
        if "data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own artifact cache so tests never share state."""
    monkeypatch.setenv("COLORIZE_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def make_bn_checkpoint():
    """Factory: ``make(path, dtype=None) -> (checkpoint json path, eval model)`` for a resnet18-unet whose BN
    statistics are randomized (so BN folding matters)."""

    def make(path, dtype=None):
        import torch

        from colorize.models import create_model
        from colorize.models.checkpoint import save_checkpoint

        torch.manual_seed(0)
        model = create_model("resnet18-unet")
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.normal_(0, 0.1, generator=g)
                    m.running_var.uniform_(0.5, 1.5, generator=g)
                    m.weight.uniform_(0.8, 1.2, generator=g)
                    m.bias.normal_(0, 0.1, generator=g)
        model.eval()
        return save_checkpoint(model, path, arch="resnet18-unet", dtype=dtype), model

    return make


#: CPUs that the project runs on, as ``colorize.cpu`` would see them (cpuinfo flags; OpenVINO's capabilities)
FAKE_CPUS = {
    # AMD EPYC Zen 3 (family 25, model 1): AVX2 and FMA only
    "zen3": dict(bf16=False, vnni=False, flags=frozenset({"avx", "avx2", "fma"}),
                 openvino=("WINOGRAD", "FP32", "INT8", "BIN", "EXPORT_IMPORT")),
    # an AVX-512 CPU with VNNI but without bf16 (e.g. Intel Cascade Lake)
    "avx512-vnni": dict(bf16=False, vnni=True, flags=frozenset({"avx2", "fma", "avx512f", "avx512_vnni"}),
                        openvino=("WINOGRAD", "FP32", "INT8", "BIN", "EXPORT_IMPORT")),
}


@pytest.fixture
def fake_cpu(monkeypatch):
    """``fake_cpu("zen3")``: every caller of ``colorize.cpu.features()`` sees that CPU for this test."""
    from colorize import cpu

    def use(kind: str):
        fake = cpu.CpuFeatures(**FAKE_CPUS[kind])
        monkeypatch.setattr(cpu, "features", lambda: fake)
        return fake

    return use
