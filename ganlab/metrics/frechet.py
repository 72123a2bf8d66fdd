"""FID and KID mathematics on feature vectors (float64 throughout).

Fréchet distance between Gaussians N(mu1, S1) and N(mu2, S2)::

    d^2 = |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2))

``Tr((S1 S2)^(1/2))`` equals the sum of the square roots of the eigenvalues of the symmetric
positive semi-definite matrix ``S1^(1/2) S2 S1^(1/2)``, so it is computed with two symmetric
eigendecompositions (``numpy.linalg.eigh``) instead of ``scipy.linalg.sqrtm``: faster, no
complex parts, and tiny negative eigenvalues from round-off are clipped to 0.

Kernel inception distance (Binkowski et al. 2018): the unbiased estimate of the squared MMD
with the cubic polynomial kernel ``k(x, y) = (x . y / d + 1)^3``, averaged over ``subsets``
random subsets of ``subset_size`` features from each set (as torch-fidelity and torchmetrics
do; defaults 100 x 1000, or the whole set when it is smaller).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ganlab.errors import UsageError


@dataclass(frozen=True)
class FeatureStats:
    """Mean and covariance of ``n`` feature vectors (the real statistics cached per validation set)."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    @classmethod
    def from_features(cls, feats) -> "FeatureStats":
        f = np.asarray(feats, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 2:
            raise UsageError(f"need at least 2 feature vectors (n, d) for FID statistics, got shape {f.shape}")
        return cls(mu=f.mean(axis=0), sigma=np.cov(f, rowvar=False), n=f.shape[0])


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr((sigma1 sigma2)^(1/2))`` for symmetric PSD matrices, via eigendecompositions in float64."""
    s1 = np.asarray(sigma1, dtype=np.float64)
    s2 = np.asarray(sigma2, dtype=np.float64)
    r = _sqrt_psd(0.5 * (s1 + s1.T))
    m = r @ (0.5 * (s2 + s2.T)) @ r
    w = np.linalg.eigvalsh(0.5 * (m + m.T))
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet distance between two Gaussians (what 'FID' reports)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.shape[0],) * 2:
        raise UsageError(f"FID statistics do not match: mu {mu1.shape}/{mu2.shape}, sigma {s1.shape}/{s2.shape}")
    diff = mu1 - mu2
    d = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))
    return max(d, 0.0)


def fid_from_stats(real: FeatureStats, fake: FeatureStats) -> float:
    return frechet_distance(real.mu, real.sigma, fake.mu, fake.sigma)


def fid_from_features(real_feats, fake_feats) -> float:
    return fid_from_stats(FeatureStats.from_features(real_feats), FeatureStats.from_features(fake_feats))


def _poly_kernel(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef: float) -> np.ndarray:
    return (x @ y.T * gamma + coef) ** degree


def mmd2_unbiased(x, y, *, degree: int = 3, gamma: float | None = None, coef: float = 1.0) -> float:
    """Unbiased squared MMD between feature sets ``x (m, d)`` and ``y (n, d)`` with a polynomial kernel."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise UsageError(f"KID needs at least 2 feature vectors in each set, got {m} and {n}")
    g = 1.0 / x.shape[1] if gamma is None else gamma
    kxx = _poly_kernel(x, x, degree, g, coef)
    kyy = _poly_kernel(y, y, degree, g, coef)
    kxy = _poly_kernel(x, y, degree, g, coef)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kid(
    real_feats,
    fake_feats,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
) -> tuple[float, float]:
    """KID: (mean, standard deviation) of the unbiased MMD^2 over random subsets.

    When both sets are no larger than ``subset_size`` a single estimate on the full sets is
    returned with standard deviation ``nan`` (subsampling would only add noise).
    """
    x = np.asarray(real_feats, dtype=np.float64)
    y = np.asarray(fake_feats, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise UsageError(f"KID features must be (n, d) with equal d, got {x.shape} and {y.shape}")
    size = min(subset_size, x.shape[0], y.shape[0])
    if size == x.shape[0] and size == y.shape[0]:
        return mmd2_unbiased(x, y, degree=degree, gamma=gamma, coef=coef), float("nan")
    rng = np.random.default_rng(seed)
    vals = np.empty(subsets)
    for i in range(subsets):
        xi = x[rng.choice(x.shape[0], size, replace=False)]
        yi = y[rng.choice(y.shape[0], size, replace=False)]
        vals[i] = mmd2_unbiased(xi, yi, degree=degree, gamma=gamma, coef=coef)
    return float(vals.mean()), float(vals.std())
