"""The Inception-v3 feature network for FID and KID: finding, checking and loading its weights.

The network is pytorch-fid's ``InceptionV3`` (the TensorFlow FID graph ported to PyTorch, the
one pytorch-fid, torch-fidelity and torchmetrics share), returning the 2048-d pool3 features.
Its weights file is looked for, in this order:

1. a path given explicitly (``--inception-weights PATH``),
2. the ``GANLAB_INCEPTION_WEIGHTS`` environment variable,
3. the torch hub cache, ``torch.hub.get_dir()/checkpoints/pt_inception-2015-12-05-6726825d.pth``,
4. a download from pytorch-fid's release page into the hub cache (where there is internet).

Every file is checked by checksum before use: the SHA-256 of the file must start with the
8 hex digits in the official file name (the check ``torch.hub`` applies to this file).
When the weights are absent and cannot be fetched, :func:`find_inception_weights` raises
:class:`WeightsUnavailable` with a single line that names the file, its checksum, where to
put it and the weight-free metrics that remain -- before any work is done.

Images enter as uint8 RGB ``(N, 3, H, W)`` on any device. They are converted to float [0, 1]
on the network's device and handed to pytorch-fid's module, which resizes bilinearly to
299x299 (``align_corners=False``, no antialiasing) and scales to [-1, 1] -- the same numbers
as pytorch-fid's own file-based route on the same pixels.
"""

from __future__ import annotations

import hashlib
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from ganlab.errors import GanlabError, UsageError

ENV_VAR = "GANLAB_INCEPTION_WEIGHTS"
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
FEATURE_DIMS = 2048
RESIZE_MODE = "bilinear to 299x299, align_corners=False, no antialias"
WEIGHT_FREE = "SWD, ab-histogram distance, PSNR, SSIM, UIQI, ab-L1, colourfulness"


class WeightsUnavailable(GanlabError):
    """Pretrained weights are missing and cannot be downloaded; the message is one line."""


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def unavailable_message(reason: str = "not found") -> str:
    """The one line shown when the Inception weights cannot be had."""
    return (
        f"FID/KID unavailable: Inception weights {reason}: {FID_WEIGHTS_FILE} (sha256 starts with "
        f"{FID_WEIGHTS_SHA256_PREFIX}, from {FID_WEIGHTS_URL}); put it in {hub_checkpoint_dir()}/ or pass "
        f"--inception-weights PATH or set {ENV_VAR}; the weight-free metrics still work: {WEIGHT_FREE}"
    )


_VERIFIED: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_checksum(path: str | os.PathLike, expected: str, what: str = "weights") -> str:
    """SHA-256 of ``path``; raise one line unless it starts with ``expected`` (a prefix or the full digest)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    digest = _VERIFIED.get(key) or sha256_file(p)
    if not digest.startswith(expected.lower()):
        raise GanlabError(
            f"{what} file {p} fails its checksum: sha256 {digest[:16]}... does not start with {expected}; "
            f"the file is corrupt or a different file -- replace it with {FID_WEIGHTS_FILE} from {FID_WEIGHTS_URL}"
        )
    _VERIFIED[key] = digest
    return digest


def try_download(dst: Path, url: str, prefix: str, timeout: float) -> str | None:
    """Download ``url`` to ``dst`` (torch hub checks the hash prefix); return None or why it failed."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(dst), hash_prefix=prefix, progress=False)
        return None
    except Exception as exc:  # offline, DNS failure, HTTP error, hash mismatch
        return f"not found and the download failed ({type(exc).__name__})"
    finally:
        socket.setdefaulttimeout(old)


def find_inception_weights(path: str | os.PathLike | None = None, *, download: bool = True, timeout: float = 10.0) -> Path:
    """Locate and checksum the FID Inception weights (see the module docstring for the order)."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise UsageError(
                f"--inception-weights {path}: no such file; give the path of {FID_WEIGHTS_FILE} "
                f"(sha256 starts with {FID_WEIGHTS_SHA256_PREFIX})"
            )
        verify_checksum(p, FID_WEIGHTS_SHA256_PREFIX, "Inception weights")
        return p
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise UsageError(f"{ENV_VAR}={env}: no such file; point it at {FID_WEIGHTS_FILE} or unset it")
        verify_checksum(p, FID_WEIGHTS_SHA256_PREFIX, "Inception weights")
        return p
    p = hub_checkpoint_dir() / FID_WEIGHTS_FILE
    if not p.is_file():
        if not download:
            raise WeightsUnavailable(unavailable_message())
        why = try_download(p, FID_WEIGHTS_URL, FID_WEIGHTS_SHA256_PREFIX, timeout)
        if why is not None:
            raise WeightsUnavailable(unavailable_message(why))
    verify_checksum(p, FID_WEIGHTS_SHA256_PREFIX, "Inception weights")
    return p


def inception_status(path: str | os.PathLike | None = None, *, download: bool = True) -> tuple[Path | None, str | None]:
    """``(weights_path, None)`` when usable, else ``(None, one-line reason)``; never raises for absence."""
    try:
        return find_inception_weights(path, download=download), None
    except WeightsUnavailable as exc:
        return None, str(exc)


class FeatureExtractor(nn.Module):
    """uint8 RGB ``(N, 3, H, W)`` -> float32 features ``(N, D)``, in batches, on the network's device.

    ``net`` takes float RGB in [0, 1] (``net_input="float01"``) or the uint8 images themselves
    (``net_input="uint8"``, the contract of a ``--fid-features`` TorchScript network) and returns
    a tensor or a list of tensors (the last is used), flattened per image. ``implementation`` is
    the text recorded next to every number; ``sha256`` the digest of the file the network came
    from (part of the real-feature cache key).
    """

    def __init__(self, net: nn.Module, *, implementation: str, batch_size: int = 64, channels_last: bool = True,
                 net_input: str = "float01", sha256: str | None = None, device: str | torch.device | None = None):
        super().__init__()
        if net_input not in ("float01", "uint8"):
            raise ValueError(f"net_input must be 'float01' or 'uint8', got {net_input!r}")
        self.net = net.eval()
        self.implementation = implementation
        self.batch_size = batch_size
        self.channels_last = channels_last
        self.net_input = net_input
        self.sha256 = sha256
        self._device = torch.device(device) if device is not None else None
        for p in self.net.parameters():
            p.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        if self._device is not None:
            return self._device
        for p in self.net.parameters():
            return p.device
        return torch.device("cpu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise UsageError(f"the feature network takes uint8 RGB (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        out = []
        dev = self.device
        with torch.inference_mode():
            for i in range(0, images.shape[0], self.batch_size):
                x = images[i : i + self.batch_size].to(dev, non_blocking=True)
                if self.net_input == "float01":
                    x = x.float().div_(255.0)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                f = self.net(x)
                if isinstance(f, (list, tuple)):
                    f = f[-1]
                if not isinstance(f, torch.Tensor) or f.ndim == 0 or f.shape[0] != x.shape[0]:
                    got = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
                    raise UsageError(f"the feature network ({self.implementation}) returned {got} for a batch of "
                                     f"{x.shape[0]} images; it must return one feature vector per image")
                out.append(f.reshape(f.shape[0], -1).float())
        return torch.cat(out)

    def features(self, batches: Iterable[torch.Tensor]) -> np.ndarray:
        """Features of a stream of uint8 batches, as one float32 ``(N, D)`` array on the host."""
        chunks = [self(b).cpu().numpy() for b in batches]
        if not chunks:
            raise UsageError("no images to compute features of")
        return np.concatenate(chunks)


@contextmanager
def _state_dict_as_download(state: dict) -> Iterator[None]:
    """Let pytorch-fid's constructor take ``state`` where it would download its weights."""
    import pytorch_fid.inception as pfi

    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *args, **kwargs: state
    try:
        yield
    finally:
        pfi.load_state_dict_from_url = original


def pytorch_fid_inception(state: dict) -> nn.Module:
    """pytorch-fid's ``InceptionV3`` (FID variant, pool3 output) with the given weights."""
    from pytorch_fid.inception import InceptionV3

    with _state_dict_as_download(state):
        return InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIMS]], resize_input=True, normalize_input=True)


def load_feature_network(
    path: str | os.PathLike,
    *,
    build: Callable[[dict], nn.Module],
    expected_sha256: str,
    implementation: str,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> FeatureExtractor:
    """Checksum ``path``, load its state dict, build the network with it and wrap it for uint8 input."""
    digest = verify_checksum(path, expected_sha256, "feature-network weights")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GanlabError(f"cannot read weights {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    net = build(state).to(device)
    return FeatureExtractor(net, implementation=stamp(implementation, digest), batch_size=batch_size, sha256=digest)


def stamp(implementation: str, digest: str) -> str:
    """The implementation text of a network built from a weights file with SHA-256 ``digest``."""
    return f"{implementation}, weights sha256 {digest[:12]}"


def inception_identity(weights: str | os.PathLike | None = None, *, download: bool = True) -> tuple[str, str]:
    """``(implementation, sha256)`` of the Inception network FID would use, without building it;
    raises :class:`WeightsUnavailable` where the weights cannot be had."""
    path = find_inception_weights(weights, download=download)
    digest = verify_checksum(path, FID_WEIGHTS_SHA256_PREFIX, "Inception weights")
    return stamp(implementation_name(), digest), digest


def implementation_name() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("pytorch-fid")
    except PackageNotFoundError:  # pragma: no cover
        v = "?"
    return f"pytorch-fid {v} InceptionV3 pool3 ({FEATURE_DIMS}-d, FID weights), {RESIZE_MODE}"


def load_inception(
    weights: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "cpu",
    download: bool = True,
    batch_size: int = 64,
) -> FeatureExtractor:
    """The FID feature network, ready for uint8 images; raises :class:`WeightsUnavailable` offline."""
    path = find_inception_weights(weights, download=download)
    return load_feature_network(
        path,
        build=pytorch_fid_inception,
        expected_sha256=FID_WEIGHTS_SHA256_PREFIX,
        implementation=implementation_name(),
        device=device,
        batch_size=batch_size,
    )
