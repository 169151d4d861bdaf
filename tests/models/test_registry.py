"""Registry sweep: every model builds, runs forward at two resolutions, backprops."""

import pytest
import torch

from colorize.models import create_model, list_models, model_kind

ALL = list_models()
COLORIZERS = list_models("colorizer")
CLASSIFIERS = list_models("classifier")


def test_expected_models_registered():
    for name in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                 "resnet18-unet", "resnet34-unet", "resnet50-unet", "seed-unet"]:
        assert name in ALL


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="resnet18-unet") as e:
        create_model("resnet19")
    assert "resnet19" in str(e.value)


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("size", [32, 64])
def test_classifier_forward_backward(name, size):
    torch.manual_seed(0)
    stem = {"stem": "cifar" if size == 32 else "imagenet"} if name.startswith("resnet") else {}  # ResNets' option
    m = create_model(name, num_classes=10, **stem)
    x = torch.randn(2, 3, size, size)
    y = m(x)
    assert y.shape == (2, 10)
    y.square().mean().backward()
    assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("name", COLORIZERS)
@pytest.mark.parametrize("size", [(32, 32), (48, 80)])
def test_colorizer_forward_backward(name, size):
    torch.manual_seed(0)
    m = create_model(name)
    assert model_kind(name) == "colorizer"
    x = torch.randn(2, 1, *size)
    y = m(x)
    assert y.shape == (2, 2, *size)
    y.square().mean().backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_in_chans_option():
    m = create_model("resnet18", in_chans=1, num_classes=5)
    assert m.conv1.weight.shape[1] == 1
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 5)


def test_bad_stem_rejected():
    with pytest.raises(ValueError, match="stem"):
        create_model("resnet18", stem="tiny")
