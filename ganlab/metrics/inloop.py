"""Cheap metrics for evaluation inside the training loop (every ``--eval-every`` steps).

The trainer hands a fixed validation subset (uint8 RGB, real and generated) to
:func:`inloop_metrics`, writes the result to TensorBoard and passes it to ``on_eval(step,
metrics)``, on which a study can prune. Everything here is weight-free except ``val/kid``,
computed only when a feature extractor (the Inception network, when its weights exist) is
given. The real features of the subset are cached, so only the fakes go through the network.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Callable

import numpy as np
import torch

from ganlab.color import rgb_to_lab
from ganlab.metrics._images import check_pair
from ganlab.metrics.color_hist import color_histogram_distance
from ganlab.metrics.fidelity import psnr_per_image, ssim_per_image, colorfulness
from ganlab.metrics.frechet import kid
from ganlab.metrics import inception
from ganlab.metrics.swd import ab_sliced_wasserstein, sliced_wasserstein

FeatureExtractor = Callable[[torch.Tensor], "torch.Tensor | np.ndarray"]

_REAL_FEATS: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_CACHE_SIZE = 4


def _digest(x: torch.Tensor) -> str:
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _features(extractor: FeatureExtractor, images: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        f = extractor(images)
    if isinstance(f, torch.Tensor):
        f = f.detach().float().cpu().numpy()
    return np.asarray(f, dtype=np.float64).reshape(images.shape[0], -1)


def _real_features(extractor: FeatureExtractor, real: torch.Tensor) -> np.ndarray:
    key = (id(extractor), tuple(real.shape), _digest(real))
    if key in _REAL_FEATS:
        _REAL_FEATS.move_to_end(key)
        return _REAL_FEATS[key]
    feats = _features(extractor, real)
    _REAL_FEATS[key] = feats
    while len(_REAL_FEATS) > _CACHE_SIZE:
        _REAL_FEATS.popitem(last=False)
    return feats


_EXTRACTORS: dict[tuple[str, str], object] = {}


def inloop_feature_extractor(weights: str | None = None, device: str | torch.device = "cpu", batch_size: int = 32):
    """The Inception feature network for ``val/kid`` when its weights are already here, else None.

    Never downloads (a training run must not stall on the network); loaded once per process.
    """
    path, _ = inception.inception_status(weights, download=False)
    if path is None:
        return None
    key = (str(path), str(device))
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = inception.load_inception(path, device=device, download=False, batch_size=batch_size)
    return _EXTRACTORS[key]


def inloop_metrics(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    seed: int,
    feature_extractor: FeatureExtractor | None = None,
) -> dict[str, float]:
    """Cheap metrics of ``fake`` against ``real`` (uint8 RGB ``(N, 3, H, W)``, paired by index).

    Returns ``val/swd`` (SWD x 1e3, Laplacian-pyramid patches), ``val/color_hist`` (sliced W1
    between ab histograms, Lab units), ``val/psnr`` (dB), ``val/ssim``, ``val/ab_l1`` (Lab
    units), ``val/colorfulness_gap`` (real - fake Hasler-Suesstrunk colourfulness), and
    ``val/kid`` (unbiased, whole subset) when ``feature_extractor`` maps uint8 images to
    ``(N, D)`` features. Deterministic for a given ``seed``.
    """
    check_pair(real, fake, same_count=True)
    fake = fake.to(real.device)
    out: dict[str, float] = {}
    if min(real.shape[2:]) >= 16:
        out["val/swd"] = sliced_wasserstein(real, fake, seed=seed, patches_per_image=64, dirs_per_repeat=64)
        out["val/ab_swd"] = ab_sliced_wasserstein(real, fake, seed=seed, patches_per_image=64, dirs_per_repeat=64)
    out["val/color_hist"] = color_histogram_distance(real, fake)
    out["val/psnr"] = float(psnr_per_image(real, fake).clamp(max=100.0).mean())
    if min(real.shape[2:]) >= 11:
        out["val/ssim"] = float(ssim_per_image(real, fake).mean())
    ab_r = rgb_to_lab(real.float() / 255.0)[:, 1:]
    ab_f = rgb_to_lab(fake.float() / 255.0)[:, 1:]
    out["val/ab_l1"] = float((ab_r - ab_f).abs().mean())
    out["val/colorfulness_gap"] = float(colorfulness(real).mean() - colorfulness(fake).mean())
    if feature_extractor is not None and real.shape[0] >= 2:
        fr = _real_features(feature_extractor, real)
        ff = _features(feature_extractor, fake)
        out["val/kid"] = kid(fr, ff, seed=seed)[0]
    return out
