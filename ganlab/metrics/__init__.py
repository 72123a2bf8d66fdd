"""Image-quality and stability metrics for ganlab runs (formulas in docs/metrics.md).

Every image metric takes uint8 RGB tensors ``(N, 3, H, W)``: convert Lab -> RGB, clip and
round first (``ganlab.color.to_uint8``), exactly as the metrics' reference implementations
expect. Distribution distances compare sets; per-image metrics pair ``real[i]`` with ``fake[i]``.

* FID / KID -- :func:`load_inception` (pytorch-fid's Inception-v3, weights checked by checksum,
  :class:`WeightsUnavailable` offline), :func:`fid_kid`, :func:`frechet_distance`, :func:`kid`,
  :func:`cached_real_features` (real statistics cached per validation set);
  :func:`load_torchscript_features` for a feature network of one's own (``--fid-features``).
* Weight-free distances -- :func:`sliced_wasserstein` (Laplacian-pyramid SWD),
  :func:`color_histogram_distance` (ab histograms).
* Per-image fidelity -- :func:`psnr`, :func:`ssim`, :func:`uiqi`, :func:`ab_l1`,
  :func:`colorfulness`, :func:`colorfulness_stats`; LPIPS via :func:`load_lpips`.
* Stability -- :func:`instability_score` / :func:`instability_from_run` (:data:`INSTABILITY_FORMULA`).
* In the training loop -- :func:`inloop_metrics`, :func:`inloop_feature_extractor`.
"""

from ganlab.metrics.color_hist import ab_histogram, color_histogram_distance, histogram_distance
from ganlab.metrics.fid import RealFeatureCache, cached_real_features, fid_kid, files_digest, stats_key
from ganlab.metrics.fidelity import ab_l1, colorfulness, colorfulness_stats, psnr, ssim, uiqi
from ganlab.metrics.frechet import FeatureStats, fid_from_features, fid_from_stats, frechet_distance, kid, mmd2_unbiased
from ganlab.metrics.inception import (
    FeatureExtractor,
    WeightsUnavailable,
    find_inception_weights,
    inception_status,
    load_feature_network,
    load_inception,
)
from ganlab.metrics.inloop import inloop_feature_extractor, inloop_metrics
from ganlab.metrics.lpips import LPIPS, load_lpips, lpips_distance
from ganlab.metrics.scripted import load_torchscript_features
from ganlab.metrics.stability import FORMULA as INSTABILITY_FORMULA
from ganlab.metrics.stability import InstabilityReport, instability_from_run, instability_score
from ganlab.metrics.swd import laplacian_pyramid, sliced_wasserstein

__all__ = [
    "FeatureExtractor",
    "FeatureStats",
    "INSTABILITY_FORMULA",
    "InstabilityReport",
    "LPIPS",
    "RealFeatureCache",
    "WeightsUnavailable",
    "ab_histogram",
    "ab_l1",
    "cached_real_features",
    "color_histogram_distance",
    "colorfulness",
    "colorfulness_stats",
    "fid_from_features",
    "fid_from_stats",
    "fid_kid",
    "files_digest",
    "find_inception_weights",
    "frechet_distance",
    "histogram_distance",
    "inception_status",
    "inloop_feature_extractor",
    "inloop_metrics",
    "instability_from_run",
    "instability_score",
    "kid",
    "laplacian_pyramid",
    "load_feature_network",
    "load_inception",
    "load_lpips",
    "load_torchscript_features",
    "lpips_distance",
    "mmd2_unbiased",
    "psnr",
    "sliced_wasserstein",
    "ssim",
    "stats_key",
    "uiqi",
]
