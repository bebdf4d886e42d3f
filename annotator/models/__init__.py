"""Networks (built from MONAI), the checkpoint format (safetensors + JSON sidecar), the registry."""

from annotator.models.card import ModelCard
from annotator.models.checkpoint import load_checkpoint, save_checkpoint
from annotator.models.networks import architecture, build_network
from annotator.models.registry import ModelRegistry

__all__ = ["architecture", "ModelCard", "ModelRegistry", "build_network", "load_checkpoint",
           "save_checkpoint"]
