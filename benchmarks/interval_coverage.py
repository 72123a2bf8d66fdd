"""How often each 95% interval of a mean paired difference excludes 0 when there is no effect
(it should be 5%), and when there is one (power), at the seed counts a confirmation uses.

    python benchmarks/interval_coverage.py --reps 400

Compares scipy's percentile and BCa bootstrap with the studentised bootstrap that
``ganlab.study.evidence`` used before its sign test (docs/statistics.md says why neither is used
now; benchmarks/error_rates.py measures the sign test and the family).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from scipy import stats as st

from ganlab.study.evidence import _bootstrap_t


def excludes_zero(low: float, high: float) -> bool:
    return not (low <= 0.0 <= high)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 8])
    ap.add_argument("--shift", type=float, default=1.0, help="the effect, in units of the differences' sd, for power")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    warnings.simplefilter("ignore")
    # (draw n differences with mean 0, their population sd)
    draws = {"normal": (lambda n: rng.normal(size=n), 1.0),
             "skewed (lognormal)": (lambda n: rng.lognormal(size=n) - np.exp(0.5), float(np.sqrt((np.e - 1) * np.e)))}
    print(f"| differences | seeds | percentile | BCa | bootstrap-t (ganlab) | bootstrap-t power at {args.shift:g} sd |")
    print("|---|---|---|---|---|---|")
    for name, (draw, sd) in draws.items():
        for n in args.seeds:
            hits = {"percentile": 0, "BCa": 0, "t": 0, "power": 0}
            for _ in range(args.reps):
                d = draw(n)
                for method in ("percentile", "BCa"):
                    ci = st.bootstrap((d,), np.mean, n_resamples=2000, method=method, random_state=rng).confidence_interval
                    hits[method] += excludes_zero(ci.low, ci.high)
                hits["t"] += excludes_zero(*_bootstrap_t(d, rng))
                hits["power"] += excludes_zero(*_bootstrap_t(draw(n) + args.shift * sd, rng))
            r = args.reps
            print(f"| {name} | {n} | {hits['percentile'] / r:.1%} | {hits['BCa'] / r:.1%} | {hits['t'] / r:.1%} | "
                  f"{hits['power'] / r:.1%} |")


if __name__ == "__main__":
    main()
