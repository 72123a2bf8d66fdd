"""Image-quality and stability metrics for ganlab runs (see docs/metrics.md)."""

from ganlab.metrics.color_hist import ab_histogram, color_histogram_distance, histogram_distance
from ganlab.metrics.fidelity import ab_l1, colorfulness, colorfulness_stats, psnr, ssim, uiqi
from ganlab.metrics.frechet import FeatureStats, fid_from_features, fid_from_stats, frechet_distance, kid, mmd2_unbiased
from ganlab.metrics.inloop import inloop_metrics
from ganlab.metrics.swd import laplacian_pyramid, sliced_wasserstein
