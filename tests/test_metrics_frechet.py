"""FID and KID mathematics: the eigendecomposition route against scipy's sqrtm, and KID's bias."""

import numpy as np
import pytest

from ganlab.errors import UsageError
from ganlab.metrics.frechet import (
    FeatureStats,
    fid_from_features,
    frechet_distance,
    kid,
    mmd2_unbiased,
    trace_sqrt_product,
)


def _random_stats(rng, n, d, shift=0.0, scale=1.0):
    f = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * scale / np.sqrt(d) + shift
    return f.mean(axis=0), np.cov(f, rowvar=False)


@pytest.mark.parametrize("n,d", [(300, 16), (400, 128), (100, 256)])  # the last is rank-deficient
def test_frechet_agrees_with_scipy_sqrtm_route(n, d):
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(d)
    m1, s1 = _random_stats(rng, n, d)
    m2, s2 = _random_stats(rng, n, d, shift=0.2, scale=1.3)
    ours = frechet_distance(m1, s1, m2, s2)
    ref = calculate_frechet_distance(m1, s1, m2, s2)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_trace_sqrt_product_matches_closed_form_for_commuting_matrices():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    a, b = rng.uniform(0.1, 3, 8), rng.uniform(0.1, 3, 8)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    assert trace_sqrt_product(s1, s2) == pytest.approx(np.sqrt(a * b).sum(), rel=1e-10)


def test_frechet_of_one_dimensional_gaussians():
    # d^2 = (m1 - m2)^2 + (s1 - s2)^2 for standard deviations s1, s2.
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)


def test_fid_of_a_set_with_itself_is_zero():
    feats = np.random.default_rng(2).normal(size=(200, 32))
    assert fid_from_features(feats, feats) == pytest.approx(0.0, abs=1e-9)


def test_fid_grows_with_the_shift():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(500, 16))
    b = rng.normal(size=(500, 16))
    d = [fid_from_features(a, b + s) for s in (0.0, 0.5, 1.0)]
    assert d[0] < d[1] < d[2]


def test_mismatched_statistics_are_refused():
    with pytest.raises(UsageError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(UsageError):
        FeatureStats.from_features(np.zeros((1, 3)))


def test_kid_is_unbiased_in_expectation_on_gaussian_features():
    """Same distribution: the mean of many unbiased estimates is 0 within its standard error,
    while the biased (V-statistic) version is clearly positive."""
    rng = np.random.default_rng(4)
    d, n, trials = 8, 20, 400
    unbiased, biased = [], []
    for _ in range(trials):
        x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d))
        unbiased.append(mmd2_unbiased(x, y))
        k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
        biased.append(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())
    u, b = np.array(unbiased), np.array(biased)
    se = u.std() / np.sqrt(trials)
    assert abs(u.mean()) < 3 * se
    assert b.mean() > 10 * b.std() / np.sqrt(trials)


def test_kid_expectation_matches_the_population_mmd():
    """Different distributions: small-sample estimates average to the large-sample value."""
    rng = np.random.default_rng(5)
    d = 4
    big = mmd2_unbiased(rng.normal(size=(3000, d)), rng.normal(0.3, 1.0, size=(3000, d)))
    small = [mmd2_unbiased(rng.normal(size=(15, d)), rng.normal(0.3, 1.0, size=(15, d))) for _ in range(600)]
    se = np.std(small) / np.sqrt(len(small))
    assert big > 0
    assert abs(np.mean(small) - big) < 4 * se + 0.02 * big


def test_kid_subsets_are_deterministic_and_small_sets_use_everything():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(60, 8)), rng.normal(0.5, 1, size=(60, 8))
    a = kid(x, y, subsets=10, subset_size=20, seed=1)
    assert a == kid(x, y, subsets=10, subset_size=20, seed=1)
    assert a[0] > 0 and a[1] > 0
    whole, std = kid(x, y, subset_size=1000)
    assert whole == pytest.approx(mmd2_unbiased(x, y)) and np.isnan(std)
