"""Device selection shared by every CLI and the app, and the device a model lives on."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map ``"auto"`` to CUDA when available, else CPU; validate explicit choices."""
    name = str(device).lower()  # a torch.device is checked like its name: no "meta", no CUDA without a GPU
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
        return torch.device(name)
    if name in ("cpu", "cpu:0"):
        return torch.device("cpu")
    raise ValueError(f"expected device in {DEVICE_CHOICES}, got {device!r}")


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (CPU for a model without parameters)."""
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")
