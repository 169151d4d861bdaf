"""Networks: the ResNet family (torchvision-compatible), EfficientNet-Lite, U-Net colorizers, the
seed U-Net baseline; a registry and a checkpoint format."""

from colorize.models._registry import create_model, list_models, model_kind, register_model
from colorize.models import resnet as _resnet  # noqa: F401  (registers the builders)
from colorize.models import efficientnet_lite as _efficientnet_lite  # noqa: F401
from colorize.models import unet as _unet  # noqa: F401
from colorize.models import seed_unet as _seed_unet  # noqa: F401

__all__ = ["create_model", "list_models", "model_kind", "register_model"]
