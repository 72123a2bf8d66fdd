"""Adversarial loss terms as pure functions of the discriminator's outputs, and L1.

``targets`` are the tensors D is trained towards in the label-based modes (vanilla, lsgan);
the margin and Wasserstein modes have no targets and ignore them. The relativistic pairing
loss (rpgan) is a function of a real and a fake output *together*: :func:`relativistic`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganlab.modes import GAN_MODES, L1_ONLY, LABEL_MODES, RELATIVISTIC_MODES  # noqa: F401 - the names, kept importable from here


def d_real_term(mode: str, d_real: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(d_real, target)
    if mode == "lsgan":
        return F.mse_loss(d_real, target)
    if mode == "hinge":
        return F.relu(1.0 - d_real).mean()
    if mode == "wgan":
        return -d_real.mean()
    raise ValueError(f"unknown gan mode {mode!r}")


def d_fake_term(mode: str, d_fake: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(d_fake, target)
    if mode == "lsgan":
        return F.mse_loss(d_fake, target)
    if mode == "hinge":
        return F.relu(1.0 + d_fake).mean()
    if mode == "wgan":
        return d_fake.mean()
    raise ValueError(f"unknown gan mode {mode!r}")


def g_adv_term(mode: str, d_fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss (non-saturating for vanilla)."""
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    if mode == "lsgan":
        return F.mse_loss(d_fake, torch.ones_like(d_fake))
    if mode in ("hinge", "wgan"):
        return -d_fake.mean()
    raise ValueError(f"unknown gan mode {mode!r}")


def relativistic(d_first: torch.Tensor, d_second: torch.Tensor) -> torch.Tensor:
    """The relativistic pairing loss of Huang et al. (R3GAN, NeurIPS 2024): the mean of
    softplus(-(D(first) - D(second))) over *paired* outputs, element by element. D minimises it
    with (real, fake), G with (fake, real). For a PatchGAN the pairs are per patch logit: logit
    p of a sample's real pair against logit p of its fake pair (the same condition)."""
    if d_first.shape != d_second.shape:
        raise ValueError(f"rpgan pairs D's outputs: shapes {tuple(d_first.shape)} and {tuple(d_second.shape)} differ")
    return F.softplus(d_second - d_first).mean()


def l1(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    return (fake - real).abs().mean()


def decision_threshold(mode: str) -> float:
    """The D output that separates 'real' from 'fake' (for the accuracy statistics)."""
    return 0.5 if mode == "lsgan" else 0.0
