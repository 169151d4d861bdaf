"""ResNet family: parameter counts and torchvision's module names/shapes.

``torchvision_resnet_keys.json`` was generated once from torchvision 0.29.1
(``state_dict()`` key -> shape for each ImageNet ResNet) in a separate venv;
torchvision is not imported here (it does not import beside the CPU torch).
``torchvision_resnet18_logits.json`` holds the logits of torchvision's
resnet18 built after ``torch.manual_seed(0)`` on a fixed input: since our
modules are created and initialised in torchvision's order, the same seed
gives the same weights and must give the same logits.
"""

import json
from pathlib import Path

import pytest
import torch

from colorize.models import create_model

FIXTURES = Path(__file__).parent / "fixtures"

PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


@pytest.mark.parametrize("name,count", PARAMS.items())
def test_parameter_count(name, count):
    m = create_model(name, num_classes=1000)
    assert sum(p.numel() for p in m.parameters()) == count


@pytest.mark.parametrize("name", PARAMS)
def test_state_dict_matches_torchvision(name):
    ref = json.loads((FIXTURES / "torchvision_resnet_keys.json").read_text())[name]
    ours = {k: list(v.shape) for k, v in create_model(name, num_classes=1000).state_dict().items()}
    assert list(ours) == list(ref)  # same names, same order
    assert ours == ref


def test_torchvision_state_dict_loads_strict_and_gives_same_logits():
    ref = json.loads((FIXTURES / "torchvision_resnet18_logits.json").read_text())
    torch.manual_seed(0)
    m = create_model("resnet18", num_classes=1000).eval()
    # A strict load of a state_dict laid out like torchvision's (ours, renamed
    # through the recorded key list) must succeed.
    keys = json.loads((FIXTURES / "torchvision_resnet_keys.json").read_text())["resnet18"]
    sd = dict(zip(keys, m.state_dict().values()))
    m.load_state_dict(sd, strict=True)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        y = m(x)
    expected = torch.tensor(ref["logits"])
    assert y.shape == expected.shape
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)
