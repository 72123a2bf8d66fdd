"""A feature network of the user's choosing for FID and KID (``--fid-features FILE``).

Where Inception's weights are absent, FID and KID can still be computed at equal N with any
feature network saved as TorchScript (``torch.jit.save(torch.jit.script(net), FILE)``). The
contract is the one :class:`~ganlab.metrics.inception.FeatureExtractor` enforces for Inception,
minus the preprocessing: the network takes uint8 RGB ``(N, 3, H, W)`` exactly as cropped (any
conversion, scaling or resizing is its own) and returns float features ``(N, D)``.

The file is checked on a tiny probe batch when it is loaded, so a wrong file fails with one
line before any work. Its SHA-256 goes into the implementation text of every number it
produces and into the real-feature cache key, so FIDs from different networks never compare
silently -- and never with Inception FIDs.

A TorchScript file is a program: ganlab runs the network inside it. Only use files you trust.
"""

from __future__ import annotations

import os
import threading
import warnings
import zipfile
from pathlib import Path

import torch

from ganlab.errors import UsageError
from ganlab.metrics.inception import FeatureExtractor, sha256_file

__all__ = ["FLAG", "PROBE_BATCH", "TRUST_NOTE", "implementation_text", "load_torchscript_features"]

FLAG = "--fid-features"
PROBE_BATCH = 2
TRUST_NOTE = "a TorchScript file is a program: ganlab runs the network inside it, so only use files you trust"
SAVE_HINT = "save one with torch.jit.save(torch.jit.script(net), FILE)"

_LOADED: dict[tuple, FeatureExtractor] = {}
_LOCK = threading.Lock()


def implementation_text(digest: str, name: str, dims: int) -> str:
    """What every number made with the network records: its digest, file name and feature size."""
    return (f"torchscript feature network sha256:{digest[:16]} ({name}, {dims}-d features of the uint8 RGB crops; "
            f"any resizing is the network's own)")


def _first_line(exc: BaseException) -> str:
    """The exception's first sentence (torch's loader errors run on for several)."""
    text = str(exc).strip().splitlines()
    first = text[0].split(". ")[0].rstrip(".") if text else ""
    return f"{type(exc).__name__}: {first}".rstrip(": ")


def _looks_like_torch_save(path: Path) -> bool:
    """A ``torch.save`` archive (a state dict or a pickled module) rather than TorchScript."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(n.endswith("/data.pkl") for n in names) and not any(n.endswith("/constants.pkl") for n in names)


def _probe(net, path: Path, size: int, device: torch.device) -> int:
    """Run ``net`` on a tiny uint8 batch; return the feature size or raise one line."""
    n = PROBE_BATCH
    # a deterministic, non-constant pattern: different images, every channel varying
    x = (torch.arange(n * 3 * size * size, dtype=torch.int64).reshape(n, 3, size, size) * 37 % 256).to(torch.uint8)
    where = f"{FLAG} {path}"
    want = f"it must map uint8 RGB ({n}, 3, {size}, {size}) to float features ({n}, D)"
    try:
        with torch.inference_mode():
            out = net(x.to(device))
    except Exception as exc:
        raise UsageError(f"{where}: the network fails on a probe batch: {_first_line(exc)}; {want}") from None
    if not isinstance(out, torch.Tensor):
        raise UsageError(f"{where}: the network returned {type(out).__name__}, not a tensor; {want}")
    if not out.is_floating_point():
        raise UsageError(f"{where}: the network returned {out.dtype} {tuple(out.shape)}; {want}")
    if out.ndim != 2 or out.shape[0] != n or out.shape[1] < 1:
        raise UsageError(f"{where}: the network returned shape {tuple(out.shape)}; {want}")
    if not torch.isfinite(out).all():
        raise UsageError(f"{where}: the network returned NaN/Inf features on a probe batch; {want}")
    return int(out.shape[1])


def load_torchscript_features(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    probe_size: int = 64,
) -> FeatureExtractor:
    """Load, check and wrap a TorchScript feature network; one-line :class:`UsageError` when it is wrong.

    ``probe_size`` is the side of the probe images (the crop size the network will see).
    Loaded once per process for the same file, device and probe size."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UsageError(f"{FLAG} {path}: no such file; give a TorchScript feature network ({SAVE_HINT})")
    device = torch.device(device)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, str(device), int(probe_size), int(batch_size))
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
    digest = sha256_file(p)
    try:
        with warnings.catch_warnings():  # torch marks TorchScript as deprecated; the file still loads
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(str(p), map_location=device)
    except Exception as exc:
        what = "a torch.save file (weights or a pickled module), " if _looks_like_torch_save(p) else ""
        raise UsageError(f"{FLAG} {path}: {what}not a TorchScript file ({_first_line(exc)}); {SAVE_HINT}") from None
    net.eval()
    dims = _probe(net, p, int(probe_size), device)
    extractor = FeatureExtractor(net, implementation=implementation_text(digest, p.name, dims), batch_size=batch_size,
                                 channels_last=False, net_input="uint8", sha256=digest, device=device)
    with _LOCK:
        _LOADED[key] = extractor
    return extractor
