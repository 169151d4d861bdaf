"""BN folding: no BatchNorm left, same outputs within float32 rounding."""

import pytest
import torch

from colorize.export.fold_bn import count_batchnorms, fold_bn
from colorize.models import create_model

# Folding reorders float32 arithmetic; differences are rounding-level.
ATOL = 1e-4


def _randomize_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
    return model.eval()


@pytest.mark.parametrize("name,kw,shape", [
    ("resnet18-unet", {}, (2, 1, 32, 40)),
    ("resnet50-unet", {"stem": "imagenet"}, (1, 1, 64, 64)),
    ("resnet18", {"num_classes": 10}, (2, 3, 64, 64)),
])
def test_fold_bn_equivalent(name, kw, shape):
    torch.manual_seed(0)
    m = _randomize_bn(create_model(name, **kw))
    folded = fold_bn(m)
    assert count_batchnorms(m) > 0 and count_batchnorms(folded) == 0
    assert "layer1.0.conv1.bias" in folded.state_dict() or "encoder.layer1.0.conv1.bias" in folded.state_dict()
    x = torch.randn(*shape)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), m(x), atol=ATOL, rtol=1e-4)
