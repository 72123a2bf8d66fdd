"""Input checks shared by the metrics: every image metric takes uint8 RGB ``(N, 3, H, W)``."""

from __future__ import annotations

import torch

from ganlab.errors import UsageError


def check_uint8_rgb(x: torch.Tensor, name: str) -> torch.Tensor:
    """Return ``x`` if it is a uint8 ``(N, 3, H, W)`` tensor, else raise one clear line."""
    if not isinstance(x, torch.Tensor):
        raise UsageError(f"{name} must be a torch.Tensor of uint8 RGB images (N, 3, H, W), got {type(x).__name__}")
    if x.dtype != torch.uint8:
        raise UsageError(
            f"{name} must be uint8 RGB (convert Lab -> RGB, clip and round first, e.g. ganlab.color.to_uint8), "
            f"got dtype {x.dtype}"
        )
    if x.ndim != 4 or x.shape[1] != 3:
        raise UsageError(f"{name} must have shape (N, 3, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise UsageError(f"{name} holds no images")
    return x


def check_pair(real: torch.Tensor, fake: torch.Tensor, *, same_count: bool = False) -> None:
    check_uint8_rgb(real, "real")
    check_uint8_rgb(fake, "fake")
    if real.shape[2:] != fake.shape[2:]:
        raise UsageError(f"real and fake images differ in size: {tuple(real.shape[2:])} vs {tuple(fake.shape[2:])}")
    if same_count and real.shape[0] != fake.shape[0]:
        raise UsageError(
            f"per-image metrics pair real[i] with fake[i]; got {real.shape[0]} real and {fake.shape[0]} fake images"
        )
