"""Checkpoints: weights as safetensors, a JSON sidecar beside them, nothing unpickled.

``NAME.safetensors`` holds the tensors; ``NAME.json`` (a :class:`ModelCard`) says what
they are and carries their SHA-256, so a truncated, swapped or edited weights file is
refused before any tensor is used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from typing import TYPE_CHECKING

from safetensors import SafetensorError

from annotator.errors import ModelError
from annotator.io.atomic import atomic_path, atomic_write_text
from annotator.models.card import ModelCard, check_name
from annotator.models.networks import build_network

if TYPE_CHECKING:  # torch is imported where weights are read or written
    import torch


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def weights_path(sidecar: Path) -> Path:
    return sidecar.with_suffix(".safetensors")


def save_checkpoint(model: torch.nn.Module, card: ModelCard, sidecar: str | os.PathLike) -> Path:
    """Write ``model``'s weights and ``card`` (with the weights' hash) atomically; returns the sidecar."""
    sidecar = Path(sidecar)
    if sidecar.suffix != ".json":
        raise ModelError(f"{sidecar}: the sidecar of a checkpoint ends in .json")
    check_name(card.name)
    from safetensors.torch import save_file

    target = weights_path(sidecar)
    aliases = _aliases(model)  # a tensor that two layers share is written once
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k not in aliases}
    with atomic_path(target) as tmp:
        save_file(state, str(tmp), metadata={"name": card.name, "method": card.method})
    card.weights_sha256 = _sha256(target)
    return save_card(card, sidecar)


def save_card(card: ModelCard, sidecar: str | os.PathLike) -> Path:
    """Rewrite a checkpoint's sidecar atomically, its weights as they are (the card's hash
    must still be theirs); returns the sidecar."""
    atomic_write_text(Path(sidecar), card.to_json())
    return Path(sidecar)


def load_card(sidecar: str | os.PathLike) -> ModelCard:
    sidecar = Path(sidecar)
    try:
        text = sidecar.read_text("utf-8")
    except OSError as exc:
        raise ModelError(f"{sidecar}: cannot read the sidecar ({exc.strerror or exc})") from exc
    return ModelCard.from_json(text, str(sidecar))


def _aliases(model) -> dict[str, str]:
    """State-dict keys whose tensor is an earlier key's (DynUNet reaches its layers by two
    paths): alias -> the first key."""
    first: dict[tuple, str] = {}
    aliases = {}
    for key, value in model.state_dict().items():
        ident = (value.data_ptr(), tuple(value.shape), value.dtype) if value.numel() else (key,)
        if ident in first:
            aliases[key] = first[ident]
        else:
            first[ident] = key
    return aliases


def load_checkpoint(sidecar: str | os.PathLike, device: str | torch.device = "cpu"
                    ) -> tuple[torch.nn.Module, ModelCard]:
    """The network described by ``sidecar`` with its verified weights, in eval mode."""
    sidecar = Path(sidecar)
    card = load_card(sidecar)
    weights = weights_path(sidecar)
    if not weights.exists():
        raise ModelError(f"{weights}: weights file is missing")
    if _sha256(weights) != card.weights_sha256:
        raise ModelError(f"{weights}: weights do not match their sidecar (changed, truncated or swapped)")
    model = build_network(card.architecture)  # first: it loads torch, one thread at a time
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{weights}: not a readable safetensors file ({exc})") from exc
    for alias, source in _aliases(model).items():
        if alias not in state and source in state:
            state[alias] = state[source]
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        detail = "; ".join(part for part in (
            f"missing {', '.join(missing[:3])}" if missing else "",
            f"unexpected {', '.join(unexpected[:3])}" if unexpected else "",
            f"wrong shape {', '.join(wrong[:3])}" if wrong else "") if part)
        raise ModelError(f"{weights}: weights do not fit the architecture in the sidecar ({detail})")
    import torch

    broken = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if broken:
        raise ModelError(f"{weights}: weights hold NaN or infinity ({', '.join(broken[:3])})")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), card
