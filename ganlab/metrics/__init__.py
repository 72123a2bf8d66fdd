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
* In the training loop -- :func:`inloop_metrics`, :func:`inloop_feature_extractor`; the names they
  report and the direction in which each is better, :data:`INLOOP_METRICS` and :func:`inloop_value`
  (torch-free).
"""

import importlib

# Each name is imported from its module on first use: importing one metric module (or the
# formula for --help) does not load every metric, nor torch.
_LAZY = {
    "ab_histogram": "ganlab.metrics.color_hist",
    "color_histogram_distance": "ganlab.metrics.color_hist",
    "histogram_distance": "ganlab.metrics.color_hist",
    "RealFeatureCache": "ganlab.metrics.fid",
    "cached_real_features": "ganlab.metrics.fid",
    "fid_kid": "ganlab.metrics.fid",
    "files_digest": "ganlab.metrics.fid",
    "stats_key": "ganlab.metrics.fid",
    "ab_l1": "ganlab.metrics.fidelity",
    "colorfulness": "ganlab.metrics.fidelity",
    "colorfulness_stats": "ganlab.metrics.fidelity",
    "psnr": "ganlab.metrics.fidelity",
    "ssim": "ganlab.metrics.fidelity",
    "uiqi": "ganlab.metrics.fidelity",
    "FeatureStats": "ganlab.metrics.frechet",
    "fid_from_features": "ganlab.metrics.frechet",
    "fid_from_stats": "ganlab.metrics.frechet",
    "frechet_distance": "ganlab.metrics.frechet",
    "kid": "ganlab.metrics.frechet",
    "mmd2_unbiased": "ganlab.metrics.frechet",
    "FeatureExtractor": "ganlab.metrics.inception",
    "WeightsUnavailable": "ganlab.metrics.inception",
    "find_inception_weights": "ganlab.metrics.inception",
    "inception_status": "ganlab.metrics.inception",
    "load_feature_network": "ganlab.metrics.inception",
    "load_inception": "ganlab.metrics.inception",
    "inloop_feature_extractor": "ganlab.metrics.inloop",
    "inloop_metrics": "ganlab.metrics.inloop",
    "INLOOP_METRICS": "ganlab.metrics.names",
    "inloop_value": "ganlab.metrics.names",
    "LPIPS": "ganlab.metrics.lpips",
    "load_lpips": "ganlab.metrics.lpips",
    "lpips_distance": "ganlab.metrics.lpips",
    "load_torchscript_features": "ganlab.metrics.scripted",
    "InstabilityReport": "ganlab.metrics.stability",
    "instability_from_run": "ganlab.metrics.stability",
    "instability_score": "ganlab.metrics.stability",
    "laplacian_pyramid": "ganlab.metrics.swd",
    "sliced_wasserstein": "ganlab.metrics.swd",
}
_ALIASES = {"INSTABILITY_FORMULA": ("ganlab.metrics.formula", "FORMULA")}


def __getattr__(name: str):
    if name in _ALIASES:
        module, attr = _ALIASES[name]
    elif name in _LAZY:
        module, attr = _LAZY[name], name
    else:
        raise AttributeError(f"module 'ganlab.metrics' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


__all__ = [
    "FeatureExtractor",
    "FeatureStats",
    "INLOOP_METRICS",
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
    "inloop_value",
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
