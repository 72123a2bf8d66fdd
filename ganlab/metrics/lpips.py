"""LPIPS (Zhang et al. 2018), version 0.1 with the AlexNet backbone, on uint8 RGB images.

    d(x, y) = sum_l mean_hw( w_l . (n(f_l(x)) - n(f_l(y)))^2 )

with f_l the activations after AlexNet's five ReLUs (torchvision's ``alexnet().features``
sliced at 2, 5, 8, 10, 12), n the unit normalisation over channels, and w_l the learned
non-negative 1x1 linear heads. Inputs are scaled to [-1, 1] and shifted/scaled per channel
as in the reference package (shift [-.030, -.088, -.188], scale [.458, .448, .450]).

Two weight files are needed, both checked by checksum, with the same offline rule as FID:

* the linear heads, ``weights/v0.1/alex.pth`` of the ``lpips`` package (6 kB; found in an
  installed ``lpips`` package, in ``$GANLAB_LPIPS_WEIGHTS``, or in the hub cache as
  ``lpips-alex-v0.1.pth``);
* the backbone, torchvision's ``alexnet-owt-7be5be79.pth`` in the torch hub cache
  (downloaded on first use where there is internet, or ``$GANLAB_LPIPS_BACKBONE``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganlab.errors import GanlabError, UsageError
from ganlab.metrics._images import check_pair
from ganlab.metrics.inception import WeightsUnavailable, try_download, hub_checkpoint_dir, verify_checksum

LIN_ENV = "GANLAB_LPIPS_WEIGHTS"
BACKBONE_ENV = "GANLAB_LPIPS_BACKBONE"
LIN_FILE = "lpips-alex-v0.1.pth"
LIN_SHA256 = "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"
BACKBONE_FILE = "alexnet-owt-7be5be79.pth"
BACKBONE_SHA256_PREFIX = "7be5be79"
BACKBONE_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
CHANNELS = (64, 192, 384, 256, 256)
_SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))
IMPLEMENTATION = "LPIPS v0.1 (AlexNet, linear heads), ganlab port of the lpips package"


def _unavailable(reason: str) -> WeightsUnavailable:
    return WeightsUnavailable(
        f"LPIPS unavailable: {reason}; it needs {BACKBONE_FILE} (sha256 starts with {BACKBONE_SHA256_PREFIX}, "
        f"from {BACKBONE_URL}) in {hub_checkpoint_dir()}/ or ${BACKBONE_ENV}, and the lpips package's "
        f"weights/v0.1/alex.pth (sha256 {LIN_SHA256[:16]}...) via 'pip install lpips', ${LIN_ENV} or "
        f"{hub_checkpoint_dir()}/{LIN_FILE}"
    )


def _lin_candidates() -> list[Path]:
    out = []
    env = os.environ.get(LIN_ENV)
    if env:
        out.append(Path(env).expanduser())
    try:
        import importlib.util

        spec = importlib.util.find_spec("lpips")
        if spec is not None and spec.origin:
            out.append(Path(spec.origin).parent / "weights" / "v0.1" / "alex.pth")
    except (ImportError, ValueError):
        pass
    out.append(hub_checkpoint_dir() / LIN_FILE)
    return out


def find_lpips_weights(*, download: bool = True, timeout: float = 10.0) -> tuple[Path, Path]:
    """``(linear_heads, backbone)`` weight files, checksummed; :class:`WeightsUnavailable` if absent."""
    lin = next((p for p in _lin_candidates() if p.is_file()), None)
    if lin is None:
        raise _unavailable("linear-head weights not found")
    verify_checksum(lin, LIN_SHA256, "LPIPS linear-head weights")
    env = os.environ.get(BACKBONE_ENV)
    if env:
        backbone = Path(env).expanduser()
        if not backbone.is_file():
            raise UsageError(f"{BACKBONE_ENV}={env}: no such file; point it at {BACKBONE_FILE} or unset it")
    else:
        backbone = hub_checkpoint_dir() / BACKBONE_FILE
        if not backbone.is_file():
            why = "AlexNet weights not found" if not download else try_download(
                backbone, BACKBONE_URL, BACKBONE_SHA256_PREFIX, timeout
            )
            if why is not None:
                raise _unavailable(f"AlexNet weights {why}" if download else why)
    verify_checksum(backbone, BACKBONE_SHA256_PREFIX, "AlexNet weights")
    return lin, backbone


def alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features`` (same layer indices, so its weights load as they are)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


class LPIPS(nn.Module):
    """LPIPS distance network; ``forward(real_uint8, fake_uint8) -> (N,)`` distances."""

    def __init__(self, lin_state: dict, backbone_state: dict):
        super().__init__()
        feats = alexnet_features()
        try:
            # Only the convolutional part is used; the classifier's weights are not needed.
            feats.load_state_dict({k[len("features.") :]: v for k, v in backbone_state.items() if k.startswith("features.")})
            heads = [lin_state[f"lin{i}.model.1.weight"] for i in range(5)]
        except (RuntimeError, KeyError) as exc:
            raise GanlabError(f"LPIPS weights do not fit the AlexNet LPIPS network: {str(exc).splitlines()[0]}") from None
        self.slices = nn.ModuleList(nn.Sequential(*feats[a:b]) for a, b in _SLICES)
        self.heads = nn.ParameterList(nn.Parameter(w.float(), requires_grad=False) for w in heads)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x.float() / 127.5 - 1.0 - self.shift) / self.scale
        out = []
        for s in self.slices:
            x = s(x)
            out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    @torch.inference_mode()
    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        check_pair(real, fake, same_count=True)
        dev = self.shift.device
        fr, ff = self._features(real.to(dev)), self._features(fake.to(dev))
        d = 0.0
        for a, b, w in zip(fr, ff, self.heads):
            d = d + F.conv2d((a - b) ** 2, w).mean(dim=(1, 2, 3))
        return d


def load_lpips(*, device: str | torch.device = "cpu", download: bool = True) -> LPIPS:
    """The LPIPS network with checked weights; raises :class:`WeightsUnavailable` when absent offline."""
    lin, backbone = find_lpips_weights(download=download)
    load = lambda p: torch.load(p, map_location="cpu", weights_only=True)  # noqa: E731
    return LPIPS(load(lin), load(backbone)).to(device)


def lpips_distance(model: LPIPS, real: torch.Tensor, fake: torch.Tensor, batch_size: int = 64) -> float:
    """Mean LPIPS distance over image pairs."""
    check_pair(real, fake, same_count=True)
    total = 0.0
    for i in range(0, real.shape[0], batch_size):
        total += float(model(real[i : i + batch_size], fake[i : i + batch_size]).sum())
    return total / real.shape[0]
