"""FID and KID of generated images against a validation set, with cached real features.

The real images' Inception features depend only on the validation files and the settings
(task, crop size, sample count, network and weights), so they are computed once per
validation set and cached under ``$GANLAB_CACHE/fid/`` (default ``~/.cache/ganlab/fid/``),
keyed by a SHA-256 of the file names and contents plus those settings. A study that
evaluates many runs on one validation set pays for the real features once. Cache files are
written atomically (temporary file, then rename), so concurrent trials never read half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from ganlab.metrics.frechet import FeatureStats, fid_from_stats, kid

CACHE_ENV = "GANLAB_CACHE"


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "ganlab"
    return base / "fid"


def files_digest(files: Iterable[str | os.PathLike], chunk: int = 1 << 20) -> str:
    """SHA-256 over the files' names and contents, in the given order."""
    h = hashlib.sha256()
    for f in files:
        p = Path(f)
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def stats_key(data_digest: str, settings: Mapping) -> str:
    """Cache key of the real features: the data digest plus every setting that changes them."""
    payload = json.dumps({"data": data_digest, "settings": dict(settings)}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class RealFeatureCache:
    """Real-image features and their statistics in ``.npz`` files named by key."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else cache_dir()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def load(self, key: str) -> tuple[np.ndarray, FeatureStats] | None:
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            with np.load(p) as z:
                feats = z["features"]
                stats = FeatureStats(mu=z["mu"], sigma=z["sigma"], n=int(z["n"]))
        except Exception:  # a damaged cache file is recomputed, never trusted
            return None
        return feats, stats

    def save(self, key: str, feats: np.ndarray, stats: FeatureStats, meta: Mapping | None = None) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".npz", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    features=np.asarray(feats, np.float32),
                    mu=stats.mu,
                    sigma=stats.sigma,
                    n=np.int64(stats.n),
                    meta=np.array(json.dumps(dict(meta or {}), default=str)),
                )
            os.replace(tmp, self.path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path(key)


def cached_real_features(
    compute: Callable[[], np.ndarray], *, key: str, cache: RealFeatureCache | None = None, meta: Mapping | None = None
) -> tuple[np.ndarray, FeatureStats, bool]:
    """``(features, stats, hit)``: from the cache when present, else ``compute()`` and store."""
    cache = cache or RealFeatureCache()
    got = cache.load(key)
    if got is not None:
        return got[0], got[1], True
    feats = np.asarray(compute(), dtype=np.float32)
    stats = FeatureStats.from_features(feats)
    cache.save(key, feats, stats, meta)
    return feats, stats, False


def fid_kid(
    real_feats: np.ndarray,
    fake_feats: np.ndarray,
    *,
    real_stats: FeatureStats | None = None,
    seed: int = 0,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
) -> dict[str, float]:
    """FID and KID (mean, std) from real and generated features, with the counts used."""
    real_stats = real_stats or FeatureStats.from_features(real_feats)
    fake_stats = FeatureStats.from_features(fake_feats)
    k, k_std = kid(real_feats, fake_feats, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    return {
        "fid": fid_from_stats(real_stats, fake_stats),
        "kid": k,
        "kid_std": k_std,
        "n_real": int(real_stats.n),
        "n_fake": int(fake_stats.n),
        "kid_subset_size": int(min(kid_subset_size, len(real_feats), len(fake_feats))),
    }
