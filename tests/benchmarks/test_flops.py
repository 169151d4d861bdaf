import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from colorize.benchmarks import flops  # noqa: E402
from colorize.artifacts.model_ref import ModelRef  # noqa: E402


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
        self.up = nn.ConvTranspose2d(8, 2, 2, stride=2)

    def forward(self, x):
        return self.up(self.down(self.conv(x)))


# conv: 4*8*8 outputs x 9 MACs; down: 8*4*4 outputs x (4/2)*9 MACs; up: 8*4*4 inputs x 2*2*2 MACs
TINY_8X8 = 2 * (4 * 64 * 9 + 8 * 16 * 18 + 8 * 16 * 8)


def test_count_torch_by_hand():
    assert flops.count_torch(Tiny(), 8, 8) == TINY_8X8


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_count_onnx_matches_torch(tmp_path):
    pytest.importorskip("onnx")
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(Tiny().eval(), (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False,
                      input_names=["l"], dynamic_axes={"l": {0: "n", 2: "h", 3: "w"}})
    assert flops.count_onnx(path, 8, 8) == TINY_8X8
    assert flops.count_onnx(path, 16, 8) == 2 * TINY_8X8


def test_gflop_per_image_is_cached(monkeypatch):
    ref = ModelRef(name="resnet18-unet", arch="resnet18-unet", random_init=True)
    g = flops.gflop_per_image(ref, 32, 32)
    assert 1.5 < g < 3.0  # ~2.07 GFLOP at 32x32 (conv MACs x 2)
    assert flops.gflop_per_image(ref, 64, 64) == pytest.approx(4 * g, rel=1e-6)  # fully convolutional

    def boom(*a):
        raise AssertionError("should come from the cache")

    monkeypatch.setattr(flops, "count_torch", boom)
    assert flops.gflop_per_image(ref, 32, 32) == g
