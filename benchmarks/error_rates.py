"""How often a confirmation's verdicts are wrong when nothing has an effect, and how often they
find an effect that is there: null confirmations of the default shape simulated through ganlab's
own evidence functions (``comparisons`` and ``decide_family``, as ``ganlab report`` calls them).

    python benchmarks/error_rates.py                  # the table in docs/statistics.md (about 3 min)
    python benchmarks/error_rates.py --draws 200      # a quick look

The default shape: 3 chosen configurations, the baseline, the L1-only control and the 3-trick
leave-one-out ablation of the best configuration; 2 objectives (swd and instability, both
minimised): 13 verdicts (the control's instability is not comparable). Every arm shares a seed
effect (each seed moves every arm alike, as in real runs); each compared arm differs from its
reference by a draw of the paired-difference distribution with median 0 (normal, lognormal - 1,
Student's t with 3 degrees of freedom). "Alone" decides each verdict by itself at 5%, as before the
family; "family" is ganlab's: one Holm family at 5%. Power: the best configuration (and its
ablation arms with it) moved by ``--effect`` standard deviations of the differences on swd, found
as "helps" (the effect toward the better side) or "hurts" (toward the worse side), in the family.
Then the diverged-seed scenario: an arm with no effect whose 3 worst of 10 seeds diverge.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from ganlab.study.evidence import (ALPHA, HELPS, HURTS, ArmRuns, comparisons, decide_family, decide_sequential,
                                   look_levels, paired_effect, seeds_for_verdict)

OBJECTIVES = ["swd", "instability"]
DIRECTIONS = ["minimize", "minimize"]
CHOSEN = ["trial-1", "trial-2", "trial-3"]
TRICKS = ["label-flip", "instance-noise", "ttur"]

# (draw n differences with median 0, the distribution's standard deviation)
DISTRIBUTIONS = {
    "normal": (lambda rng, size: rng.normal(size=size), 1.0),
    "lognormal": (lambda rng, size: rng.lognormal(size=size) - 1.0, math.sqrt((math.e - 1) * math.e)),
    "t3": (lambda rng, size: rng.standard_t(3, size=size), math.sqrt(3.0)),
}
SCALE = {"swd": 4.0, "instability": 0.3}  # the differences' scale per objective (any: the test is scale-free)


def _arm(label: str, kind: str, values: dict[str, np.ndarray], seeds: list[int]) -> ArmRuns:
    plan = {"label": label, "kind": kind, "params": {},
            "tricks": [[t, {}] for t in TRICKS] if kind == "chosen" else []}
    return ArmRuns(plan, {o: dict(zip(seeds, map(float, values[o]))) for o in OBJECTIVES}, [])


def confirmation(rng: np.random.Generator, draw, n: int, shift: float = 0.0) -> dict[str, ArmRuns]:
    """One simulated confirmation: ``shift`` moves the best configuration's swd (and its ablation
    arms with it: the stack's effect, not a trick's)."""
    seeds = list(range(1000, 1000 + n))
    seed_effect = {"swd": rng.normal(0.0, 10.0, n), "instability": rng.normal(0.0, 0.5, n)}
    base = {"swd": 60.0 + seed_effect["swd"], "instability": 3.0 + seed_effect["instability"]}
    arms = {}
    values = {}
    for label in CHOSEN + ["l1-only"]:
        values[label] = {o: base[o] + SCALE[o] * draw(rng, n) for o in OBJECTIVES}
    values["trial-1"]["swd"] = values["trial-1"]["swd"] + shift * SCALE["swd"]
    for label in CHOSEN:
        arms[label] = _arm(label, "chosen", values[label], seeds)
    arms["baseline"] = _arm("baseline", "baseline", base, seeds)
    arms["l1-only"] = _arm("l1-only", "control", values["l1-only"], seeds)
    for trick in TRICKS:  # best - (best without T) is a fresh draw of the distribution
        without = {o: values["trial-1"][o] - SCALE[o] * draw(rng, n) for o in OBJECTIVES}
        arms[f"trial-1-without-{trick}"] = _arm(f"trial-1-without-{trick}", "ablation", without, seeds)
    return arms


def null_rates(rng, draw, n: int, draws: int) -> dict[str, float]:
    counts = dict.fromkeys(["alone_helps", "alone_hurts", "alone_any", "fam_helps", "fam_hurts", "fam_any_helps",
                            "fam_any_hurts", "fam_any"], 0)
    m = 0
    for _ in range(draws):
        rows = comparisons(confirmation(rng, draw, n), OBJECTIVES, DIRECTIONS)
        alone = [by[o].verdict for _, _, by in rows for o in OBJECTIVES if by[o].testable]
        decided, family = decide_family(rows, OBJECTIVES, DIRECTIONS)
        fam = [by[o].verdict for _, _, by in decided for o in OBJECTIVES if by[o].role == "family"]
        m = family.size
        counts["alone_helps"] += alone.count(HELPS)
        counts["alone_hurts"] += alone.count(HURTS)
        counts["alone_any"] += HELPS in alone or HURTS in alone
        counts["fam_helps"] += fam.count(HELPS)
        counts["fam_hurts"] += fam.count(HURTS)
        counts["fam_any_helps"] += HELPS in fam
        counts["fam_any_hurts"] += HURTS in fam
        counts["fam_any"] += HELPS in fam or HURTS in fam
    out = {k: v / draws for k, v in counts.items()}
    for k in ("alone_helps", "alone_hurts", "fam_helps", "fam_hurts"):
        out[k] /= m
    out["m"] = m
    return out


def power(rng, draw, sd: float, n: int, draws: int, effect: float) -> tuple[float, float]:
    """The share of confirmations whose family calls trial-1's swd effect of ``effect`` sd helps
    (moved to the better side) and hurts (moved to the worse side)."""
    found = []
    for sign, want in ((-1.0, HELPS), (1.0, HURTS)):
        hits = 0
        for _ in range(draws):
            rows = comparisons(confirmation(rng, draw, n, shift=sign * effect * sd), OBJECTIVES, DIRECTIONS)
            decided, _ = decide_family(rows, OBJECTIVES, DIRECTIONS)
            hits += decided[0][2]["swd"].verdict == want
        found.append(hits / draws)
    return found[0], found[1]


def diverged_scenario(rng, draws: int, n: int = 10, worst: int = 3) -> tuple[float, float, float]:
    """An arm with no effect that diverges on what would have been its ``worst`` worst seeds, against
    a reference, decided alone at 5%: the false "helps" rate when the diverged seeds are dropped
    (ganlab before) and when each is its arm's worst outcome (ganlab now), and the "hurts" rate now."""
    dropped = counted = hurts = 0
    for _ in range(draws):
        xs, ys = rng.normal(size=n), rng.normal(size=n)
        gone = set(np.argsort(xs)[-worst:].tolist())
        x = {s: float(xs[s]) for s in range(n) if s not in gone}
        y = {s: float(ys[s]) for s in range(n)}
        dropped += paired_effect(x, y, "minimize").verdict == HELPS
        e = paired_effect(x, y, "minimize", diverged_x=sorted(gone))
        counted += e.verdict == HELPS
        hurts += e.verdict == HURTS
    return dropped / draws, counted / draws, hurts / draws


def sequential(rng, draw, sd: float, looks: list[int], draws: int, effect: float) -> tuple[float, float]:
    """``--until-decided`` with these looks: the share of null confirmations with any false verdict
    at any look, and the power for ``effect`` sd on trial-1's swd (toward the better side)."""
    false = hits = 0
    for _ in range(draws):
        rows, _, _ = decide_sequential(confirmation(rng, draw, looks[-1]), OBJECTIVES, DIRECTIONS, looks)
        false += any(e.verdict in (HELPS, HURTS) for _, _, by in rows for e in by.values())
        rows, _, _ = decide_sequential(confirmation(rng, draw, looks[-1], shift=-effect * sd), OBJECTIVES, DIRECTIONS,
                                       looks)
        hits += rows[0][2]["swd"].verdict == HELPS
    return false / draws, hits / draws


def location_tests(rng, n: int, draws: int) -> dict[str, tuple[float, float]]:
    """Why ganlab tests a median: per side, at 2.5% one-sided, how often a test says the location
    is below or above 0 when lognormal differences are centred on the location that test claims to
    test. Vectorised: the t-test (mean), the exact sign-flip permutation test of the mean (every
    one of the 2^n sign patterns), and the sign test (median)."""
    from scipy import stats as st

    a = ALPHA / 2
    x = rng.lognormal(size=(draws, n))
    out = {}
    d = x - math.exp(0.5)  # mean 0
    t = st.ttest_1samp(d, 0.0, axis=1)
    out["t-test, mean 0"] = (float(((t.pvalue / 2 <= a) & (t.statistic < 0)).mean()),
                             float(((t.pvalue / 2 <= a) & (t.statistic > 0)).mean()))
    masks = ((np.arange(1, 2 ** n)[:, None] >> np.arange(n)) & 1).astype(np.float64)
    subset_means = (d @ masks.T) / masks.sum(1)  # a flipped sum beats the observed one iff its subset mean <= 0
    p_above = (1 + (subset_means <= 0).sum(1)) / 2 ** n
    p_below = (1 + (subset_means >= 0).sum(1)) / 2 ** n
    out["sign-flip permutation, mean 0"] = (float((p_below <= a).mean()), float((p_above <= a).mean()))
    d = x - 1.0  # median 0
    pos, neg = (d > 0).sum(1), (d < 0).sum(1)
    out["sign test (ganlab), median 0"] = (float((st.binom.sf(neg - 1, n, 0.5) <= a).mean()),
                                           float((st.binom.sf(pos - 1, n, 0.5) <= a).mean()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=1000, help="null confirmations per cell (default 1000)")
    ap.add_argument("--power-draws", type=int, default=None, help="confirmations per power cell (default --draws / 2)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[5, 8, 10, 12, 20])
    ap.add_argument("--effect", type=float, default=1.0, help="the effect for power, in sds of the differences")
    ap.add_argument("--seed", type=int, default=0, help="the simulation's random seed")
    args = ap.parse_args()
    if args.draws < 1 or any(n < 2 for n in args.seeds):
        ap.error("--draws must be >= 1 and every --seeds >= 2")
    power_draws = args.power_draws or max(1, args.draws // 2)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    mc = math.sqrt(ALPHA * (1 - ALPHA) / args.draws)
    print(f"{args.draws} null confirmations per row ({power_draws} per power cell); Monte-Carlo standard error of a "
          f"5% family-wise rate: {mc:.1%}")
    print()
    print("| differences | seeds | alone: helps | alone: hurts | alone: any false | family: helps | family: hurts | "
          f"family: any false helps | any false hurts | any false | power at {args.effect:g} sd: helps | hurts |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    m = 13
    for name, (draw, sd) in DISTRIBUTIONS.items():
        for n in args.seeds:
            r = null_rates(rng, draw, n, args.draws)
            m = r["m"]
            p_helps, p_hurts = power(rng, draw, sd, n, power_draws, args.effect)
            print(f"| {name} | {n} | {r['alone_helps']:.2%} | {r['alone_hurts']:.2%} | {r['alone_any']:.1%} | "
                  f"{r['fam_helps']:.2%} | {r['fam_hurts']:.2%} | {r['fam_any_helps']:.1%} | {r['fam_any_hurts']:.1%} | "
                  f"{r['fam_any']:.1%} | {p_helps:.1%} | {p_hurts:.1%} |", flush=True)
    print()
    print(f"Family: {m} verdicts, Holm at {ALPHA:.0%}; no verdict is possible below {seeds_for_verdict(ALPHA / m)} "
          f"seeds (alone: below {seeds_for_verdict(ALPHA)}).")
    dropped, counted, hurts = diverged_scenario(rng, args.draws)
    print()
    print("| 3 worst of 10 seeds diverge, no effect, alone at 5% | false helps | hurts |")
    print("|---|---|---|")
    print(f"| diverged seeds dropped, as before (the sign test on the 7 pairs left) | {dropped:.1%} | - |")
    print(f"| each diverged seed its arm's worst outcome (ganlab) | {counted:.1%} | {hurts:.1%} |")
    looks = [10, 15, 20]
    shares = ", ".join(f"{lv:.2%}" for lv in look_levels(looks, m))
    print()
    print(f"| --until-decided, looks at {', '.join(map(str, looks))} seeds (5% spent as {shares}) | any false verdict "
          f"| power at {args.effect:g} sd: helps (stops by 20 seeds) |")
    print("|---|---|---|")
    for name, (draw, sd) in DISTRIBUTIONS.items():
        false, hits = sequential(rng, draw, sd, looks, max(1, args.draws // 2), args.effect)
        print(f"| {name} | {false:.1%} | {hits:.1%} |", flush=True)
    print()
    print("| lognormal differences centred on the tested location, one-sided 2.5% a side | seeds | says below 0 | "
          "says above 0 |")
    print("|---|---|---|---|")
    for n in (8, 12):
        for name, (below, above) in location_tests(rng, n, max(args.draws, 2000) * 2).items():
            print(f"| {name} | {n} | {below:.1%} | {above:.1%} |")
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
