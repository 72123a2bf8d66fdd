"""The statistics of a confirmation (``ganlab confirm``): what the evidence supports.

- A configuration's value of an objective: the mean over its seeds, the sample standard deviation
  and Student's t 95% interval of the mean.
- An effect: the seed-paired differences ``x_s - y_s`` (the same ``--seed`` in both arms: the same
  data order and the same random draws where the two networks consume them alike), their mean and
  a studentised bootstrap (bootstrap-t) 95% confidence interval: :data:`RESAMPLES` resamples of
  the seeds with replacement, each giving ``t* = (mean* - mean) / se*``; the interval is
  ``[mean - t*_0.975 se, mean - t*_0.025 se]``. Resamples whose differences are all equal
  (``se* = 0``) carry no t and are left out. The resampling generator is seeded, so a report is
  reproducible.
- A verdict per effect and objective: **helps** or **hurts** when the interval excludes 0 (on the
  objective's better or worse side), else **no detectable effect at this budget**; always the
  latter below :data:`MIN_SEEDS` pairs, or when every difference is exactly 0.

Why bootstrap-t and not the percentile or BCa bootstrap: a study confirms with few seeds (5 by
default), and at n = 5 a percentile or BCa interval treats the five seeds as the whole population:
simulated under no effect (normal differences) it excludes 0 in about 18% of cases instead of 5%,
so every fifth "helps" would be noise. The studentised interval keeps that rate at about 5% from
n = 5 (about 9% for strongly skewed differences); at n = 3 no interval does, hence the minimum.
docs/statistics.md has the simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as st

__all__ = ["Effect", "HELPS", "HURTS", "MIN_SEEDS", "NO_EFFECT", "RESAMPLES", "Summary", "paired_effect", "summarise"]

RESAMPLES = 10_000
MIN_SEEDS = 5
CONFIDENCE = 0.95
HELPS, HURTS, NO_EFFECT = "helps", "hurts", "no detectable effect at this budget"


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    sd: float
    low: float
    high: float

    def text(self) -> str:
        if self.n == 0:
            return "-"
        if self.n == 1:
            return f"{self.mean:.4g} (1 seed)"
        return f"{self.mean:.4g} ± {self.sd:.3g} [{self.low:.4g}, {self.high:.4g}]"


def summarise(values: Sequence[float]) -> Summary:
    """Mean, sample sd and the t 95% interval of the mean of finite ``values``."""
    x = np.asarray([v for v in values if math.isfinite(v)], np.float64)
    if x.size == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    sd = float(x.std(ddof=1))
    half = float(st.t.ppf(0.5 + CONFIDENCE / 2, x.size - 1)) * sd / math.sqrt(x.size)
    return Summary(int(x.size), mean, sd, mean - half, mean + half)


@dataclass(frozen=True)
class Effect:
    n: int
    mean: float
    low: float
    high: float
    verdict: str
    why: str = ""

    def text(self) -> str:
        if self.n == 0:
            return "-"
        ci = f"[{self.low:+.3g}, {self.high:+.3g}]" if math.isfinite(self.low) else "[-]"
        return f"{self.mean:+.3g} {ci}"


def _bootstrap_t(d: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    n = d.size
    mean, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:
        return mean, mean
    x = d[rng.integers(0, n, (RESAMPLES, n))]
    se_star = x.std(axis=1, ddof=1) / math.sqrt(n)
    keep = se_star > 0
    t_star = (x.mean(axis=1)[keep] - mean) / se_star[keep]
    alpha = 1.0 - CONFIDENCE
    q_low, q_high = np.quantile(t_star, [alpha / 2, 1 - alpha / 2])
    return mean - float(q_high) * se, mean - float(q_low) * se


def paired_effect(x: dict[int, float], y: dict[int, float], direction: str, seed: int = 0) -> Effect:
    """The effect of arm x over arm y on one objective: seed-paired differences x - y (seeds in
    both with finite values), their bootstrap-t interval and the verdict; ``direction`` is the
    objective's (``minimize``: a negative difference helps)."""
    seeds = sorted(s for s in set(x) & set(y) if math.isfinite(x[s]) and math.isfinite(y[s]))
    d = np.asarray([x[s] - y[s] for s in seeds], np.float64)
    if d.size == 0:
        return Effect(0, math.nan, math.nan, math.nan, NO_EFFECT, "no seed finished in both")
    if d.size < 2:
        return Effect(int(d.size), float(d.mean()), math.nan, math.nan, NO_EFFECT, f"{d.size} paired seed")
    low, high = _bootstrap_t(d, np.random.default_rng(seed))
    if d.size < MIN_SEEDS:
        return Effect(int(d.size), float(d.mean()), low, high, NO_EFFECT,
                      f"{d.size} paired seeds; a verdict needs {MIN_SEEDS}")
    if not d.any():
        return Effect(int(d.size), 0.0, 0.0, 0.0, NO_EFFECT, "identical results on every seed")
    if low <= 0.0 <= high:
        return Effect(int(d.size), float(d.mean()), low, high, NO_EFFECT, "the interval contains 0")
    better = (high < 0.0) if direction == "minimize" else (low > 0.0)
    return Effect(int(d.size), float(d.mean()), low, high, HELPS if better else HURTS)
