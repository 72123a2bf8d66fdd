"""The statistics of a confirmation (``ganlab confirm``): what the evidence supports.

- A configuration's value of an objective: the mean over its seeds, the sample standard deviation
  and Student's t 95% interval of the mean (descriptive; no verdict rests on it).
- An effect of arm X over reference Y on one objective: the seed-paired differences
  ``d_s = X_s - Y_s`` (the same ``--seed`` in both arms), and their **median**. The test is the exact
  **sign test**: under "the median difference is 0" each difference is positive with probability
  1/2 whatever the shape of its distribution (skewed, heavy-tailed), so the count of positive
  differences is Binomial(n, 1/2). A zero difference counts against whichever side is claimed. Its
  interval is the sign test inverted: the order statistics ``[d_(k), d_(n+1-k)]`` with ``k`` the
  largest rank whose binomial tail is within the level; it never reaches beyond the data, and
  where no ``k`` exists (too few seeds for the level) no interval is printed.
- A diverged seed is the worst outcome of its arm: for a quality objective its value is worse
  than every finished run's (``+inf`` for a minimised objective), so its pair counts as a loss for
  the arm that diverged (a tie when both did); the instability objective scores it as the study
  does (:data:`ganlab.study.objective.DIVERGED_INSTABILITY`). It is never dropped.
- The verdicts of a confirmation form **one family**: every effect on every objective (bar the
  primary comparison when one is declared). Holm's step-down rule at 5% keeps the chance of any
  false "helps" or "hurts" in the whole report at 5% or less. Each effect's interval is printed at
  the level Holm decided it at, so an interval excludes 0 exactly when the verdict is helps or
  hurts. With an equivalence margin ``D`` an interval inside ``(-D, +D)`` is the verdict
  **no effect larger than D** (two one-sided tests at the same level).
- Constant differences (every seed the same, zero included) never give a verdict or an interval;
  neither do tied ones whose interval would have no width.

Why a sign test and not a t-test, a bootstrap or a permutation test of the mean: no test of a
mean keeps its error rate at a handful of seeds when the differences are skewed (simulated with
lognormal differences of mean 0, the t-test and the sign-flip permutation test of the mean say
"helps" 15-17% of the time at 8 and 12 seeds where 2.5% is allowed; the bootstrap-t 8-10%). A median can
be tested exactly. The price is power: under normal differences the sign test needs about 1.6
times the seeds of a t-test. At 5 seeds the smallest two-sided p a sign test can give is
2/2^5 = 1/16, above 5%: **no verdict is possible at 5 seeds**; a family of 13 at 5% needs 10
seeds, all on one side. docs/statistics.md has the simulation (benchmarks/error_rates.py).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
from scipy import stats as st

from ganlab.study.record import study_record, trial_record

__all__ = ["ALPHA", "ArmRuns", "CONFIRM_SUFFIX", "Effect", "Family", "HELPS", "HURTS", "MIN_SEEDS", "NOT_RUN",
           "NO_EFFECT", "POWER", "RESAMPLES", "Summary", "arm_runs", "comparisons", "confirmation_of",
           "decide_family", "decide_sequential", "detectable_effect", "equivalent_text", "evidence_section", "holm_adjusted",
           "holm_levels", "look_levels", "look_schedule", "paired_effect", "plan_lines", "seeds_for_verdict", "seeds_needed", "sign_test_power",
           "summarise", "t_test_seeds"]

ALPHA = 0.05  # the family-wise error rate of a confirmation's verdicts (two-sided)
CONFIDENCE = 1.0 - ALPHA
POWER = 0.8  # the power the planner sizes seeds for
MIN_SEEDS = 6  # the fewest paired seeds at which a two-sided sign test can reach 5% at all (2/2^6 < 0.05)
RESAMPLES = 10_000  # kept for benchmarks/interval_coverage.py's bootstrap-t comparison
HELPS, HURTS, NO_EFFECT = "helps", "hurts", "no detectable effect at this budget"
NOT_RUN = "not run yet"
NOT_COMPARABLE = "not comparable"
TEST = "exact sign test on the seed-paired differences (the median difference), interval by inverting it"
_TOL = 1e-9  # relative slack when a binomial tail is compared with a level


def equivalent_text(margin: float) -> str:
    return f"no effect larger than {margin:g}"


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


# The sign test ---------------------------------------------------------------------------------

def _within(p: float, level: float) -> bool:
    return p <= level * (1.0 + _TOL)


@functools.lru_cache(maxsize=4096)
def _bound_rank(n: int, a: float) -> int:
    """The largest k >= 1 with P(Binomial(n, 1/2) <= k - 1) <= a (the one-sided level a), or 0 when
    even the extreme order statistic is not enough (2^-n > a: too few seeds)."""
    if n < 1:
        return 0
    cdf = st.binom.cdf(np.arange(n), n, 0.5)
    ok = np.nonzero(cdf <= a * (1.0 + _TOL))[0]
    return int(ok[-1]) + 1 if ok.size else 0


@functools.lru_cache(maxsize=65536)
def _tail(count: int, n: int) -> float:
    """P(Binomial(n, 1/2) >= count): the one-sided p of ``count`` differences on one side."""
    return 1.0 if count <= 0 else float(st.binom.sf(count - 1, n, 0.5))


def seeds_for_verdict(level: float) -> int:
    """The fewest paired seeds at which a two-sided sign test at ``level`` can give a verdict at all
    (every seed on one side: p = 2 / 2^n)."""
    return max(1, math.ceil(math.log2(2.0 / level) - _TOL))


def sign_test_power(effect: float, sd: float, n: int, level: float) -> float:
    """The chance that the two-sided sign test at ``level`` finds a median shift ``effect`` of normal
    differences with standard deviation ``sd`` over ``n`` paired seeds (on the effect's side)."""
    k = _bound_rank(int(n), float(level) / 2)
    if k == 0 or sd <= 0:
        return 0.0
    p_side = float(st.norm.cdf(abs(effect) / sd))
    return float(st.binom.sf(n - k, n, p_side))  # at least n - k + 1 of n on the effect's side


def detectable_effect(sd: float, n: int, level: float, power: float = POWER) -> float:
    """The smallest median shift of normal differences (sd ``sd``) that the sign test at ``level``
    finds with probability ``power`` over ``n`` seeds; inf where no verdict is possible."""
    k = _bound_rank(n, level / 2)
    if k == 0 or not sd > 0:
        return math.inf
    need = n - k + 1  # differences on the effect's side for a verdict
    p_side = float(st.beta.ppf(power, need, n - need + 1))  # P(Bin(n, p) >= need) = power
    return float(sd * st.norm.ppf(p_side))


def seeds_needed(effect: float, sd: float, level: float, power: float = POWER, most: int = 2000) -> int | None:
    """The fewest seeds from which on the sign test at ``level`` has at least ``power`` against a
    median shift ``effect`` of normal differences with sd ``sd`` (the test's power is a sawtooth in
    the seeds; this is the count after which it no longer drops below). None above ``most``."""
    if not (sd > 0 and abs(effect) > 0):
        return None
    first = None
    for n in range(seeds_for_verdict(level), most + 1):
        if sign_test_power(effect, sd, n, level) >= power:
            if first is None:
                first = n
            if n - first >= 8:  # a sawtooth's teeth are a few seeds apart
                return first
        else:
            first = None
    return first


def t_test_seeds(effect: float, sd: float, level: float, power: float = POWER, most: int = 2000) -> int | None:
    """The fewest seeds a two-sided paired t-test at ``level`` would need (normal differences): the
    price of the sign test's robustness, for comparison."""
    if not (sd > 0 and abs(effect) > 0):
        return None
    for n in range(2, most + 1):
        crit = st.t.ppf(1 - level / 2, n - 1)
        nc = abs(effect) / sd * math.sqrt(n)
        if st.nct.sf(crit, n - 1, nc) + st.nct.cdf(-crit, n - 1, nc) >= power:
            return n
    return None


# Effects ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Effect:
    """One effect on one objective: the paired differences, the sign test's p, and (once decided at
    a level) the interval and the verdict."""

    n: int
    median: float
    low: float
    high: float
    verdict: str
    why: str = ""
    p: float = 1.0  # two-sided, uncorrected
    level: float = ALPHA  # the two-sided level it was decided at (Holm's step, or ALPHA alone)
    d: tuple = ()  # the differences, sorted (+-inf for a diverged seed)
    diverged: tuple = (0, 0)  # diverged seeds in (the arm, the reference)
    sd: float = math.nan  # sd of the finite differences, for the planner
    role: str = ""  # "primary", "family" or "" (not tested)
    pair: tuple = ()  # (arm, reference) labels: the same pair twice is one hypothesis

    @property
    def mean(self) -> float:
        """The estimate printed: the median difference (the location the sign test tests)."""
        return self.median

    @property
    def testable(self) -> bool:
        return self.verdict not in (NOT_RUN, NOT_COMPARABLE) and self.n > 0

    def text(self) -> str:
        if self.n == 0:
            return "-"
        if math.isnan(self.low):
            return f"{_num(self.median)} [{self.why_short()}]"
        return f"{_num(self.median)} [{_num(self.low)}, {_num(self.high)}]"

    def why_short(self) -> str:
        if "too few seeds" in self.why:
            return "too few seeds"
        return "no interval"

    def detectable(self) -> float:
        return detectable_effect(self.sd, self.n, self.level)


def _num(v: float) -> str:
    if math.isinf(v):
        return "+diverged" if v > 0 else "-diverged"
    return f"{v:+.3g}"


def _differences(x: dict[int, float], y: dict[int, float], direction: str, diverged_x: Sequence[int],
                 diverged_y: Sequence[int]) -> tuple[np.ndarray, tuple[int, int]]:
    worst = math.inf if direction == "minimize" else -math.inf

    def value(v: dict[int, float], diverged: set[int], s: int) -> float | None:
        if s in v and math.isfinite(v[s]):
            return float(v[s])
        return worst if s in diverged else None

    dx, dy = set(diverged_x), set(diverged_y)
    out, div = [], [0, 0]
    for s in sorted((set(x) | dx) & (set(y) | dy)):
        a, b = value(x, dx, s), value(y, dy, s)
        if a is None or b is None:
            continue
        div[0] += math.isinf(a)
        div[1] += math.isinf(b)
        out.append(0.0 if (math.isinf(a) and a == b) else a - b)  # both diverged: a tie
    return np.sort(np.asarray(out, np.float64)), (div[0], div[1])


def paired_effect(x: dict[int, float], y: dict[int, float], direction: str, seed: int = 0, *,
                  level: float = ALPHA, diverged_x: Sequence[int] = (), diverged_y: Sequence[int] = (),
                  margin: float | None = None) -> Effect:
    """The effect of arm x over arm y on one objective, decided alone at ``level``: seed-paired
    differences x - y (a seed that diverged in an arm, listed in ``diverged_x``/``diverged_y`` and
    absent from its values, counts as that arm's worst outcome), their median, the sign test and
    its interval. ``direction`` is the objective's (``minimize``: a negative difference helps).
    ``seed`` is unused (the test is exact) and kept for callers. In a confirmation the level comes
    from the family (:func:`decide_family`)."""
    del seed
    if not (x or diverged_x) or not (y or diverged_y):
        return Effect(0, math.nan, math.nan, math.nan, NOT_RUN, "an arm has no finished seed yet")
    d, div = _differences(x, y, direction, diverged_x, diverged_y)
    if d.size == 0:
        return Effect(0, math.nan, math.nan, math.nan, NO_EFFECT, "no seed finished in both", diverged=div)
    finite = d[np.isfinite(d)]
    sd = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
    n = int(d.size)
    median = float(np.median(d))
    base = Effect(n, median, math.nan, math.nan, NO_EFFECT, "", 1.0, level, tuple(d.tolist()), div, sd)
    if d[0] == d[-1]:
        why = ("identical results on every seed" if d[0] == 0 else
               f"every seed gives the same difference ({_num(float(d[0]))}): no spread to judge it by")
        return replace(base, why=why)
    positive, negative = int((d > 0).sum()), int((d < 0).sum())
    p = min(1.0, 2.0 * min(_tail(positive, n), _tail(negative, n)))
    return _decide(replace(base, p=p), level, direction, margin)


def _decide(e: Effect, level: float, direction: str, margin: float | None = None) -> Effect:
    """``e`` decided at the two-sided ``level``: its interval at that level and the verdict."""
    if not e.testable or not e.d or e.d[0] == e.d[-1]:
        return replace(e, level=level)
    d, n = e.d, e.n
    k = _bound_rank(n, level / 2)
    if k == 0:
        need = seeds_for_verdict(level)
        return replace(e, low=math.nan, high=math.nan, level=level, verdict=NO_EFFECT,
                       why=f"too few seeds: {n} paired seeds cannot reach the level {level:.2g} (a verdict needs {need})")
    low, high = d[k - 1], d[n - k]
    if low == high:
        return replace(e, low=math.nan, high=math.nan, level=level, verdict=NO_EFFECT,
                       why="the differences are tied: an interval of no width says nothing")
    if low > 0 or high < 0:
        better = (high < 0) if direction == "minimize" else (low > 0)
        return replace(e, low=low, high=high, level=level, verdict=HELPS if better else HURTS, why="")
    if margin is not None and -margin < low and high < margin:
        return replace(e, low=low, high=high, level=level, verdict=equivalent_text(margin),
                       why=f"the interval lies inside (-{margin:g}, +{margin:g})")
    return replace(e, low=low, high=high, level=level, verdict=NO_EFFECT, why="the interval contains 0")


# Families --------------------------------------------------------------------------------------

def holm_levels(ps: Sequence[float], alpha: float = ALPHA) -> list[float]:
    """The two-sided level at which Holm's step-down rule decides each p: the k-th smallest is
    tested at alpha / (m - k + 1) while every smaller one was rejected; all those not rejected are
    decided at alpha / (m - r), r the number rejected. A p is rejected iff p <= its level."""
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    levels: list[float | None] = [None] * m
    r = 0
    for rank, i in enumerate(order):
        lv = alpha / (m - rank)
        if not _within(ps[i], lv):
            break
        levels[i] = lv
        r += 1
    rest = alpha / (m - r) if r < m else alpha
    return [lv if lv is not None else rest for lv in levels]


def holm_adjusted(ps: Sequence[float]) -> list[float]:
    """Holm's adjusted p-values: max over the smaller ones of min(1, (m - k + 1) p_(k))."""
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        out[i] = running
    return out


@dataclass(frozen=True)
class Family:
    size: int
    alpha: float = ALPHA
    method: str = "Holm"
    primary: str | None = None  # "what: objective" of the primary comparison, when declared
    rejected: int = 0
    looks: str = ""  # a sequential confirmation: how the error rate was spent over its looks

    def text(self) -> str:
        if self.size == 0:
            return "no comparison"
        return f"family of {self.size} ({self.method}, {self.alpha:.0%} family-wise{self.looks})"


def _hypotheses(rows: list, objectives: list[str]) -> dict[tuple, list[tuple[int, str]]]:
    """The distinct hypotheses of ``rows``: each effect on each objective (the control's
    instability, not comparable, is none), the same pair of arms twice counted once: an ablation
    whose stack without the trick is the baseline's configuration compares the same runs as the
    configuration against the baseline, one hypothesis."""
    groups: dict[tuple, list[tuple[int, str]]] = {}
    for i, (_, _, by) in enumerate(rows):
        for o in objectives:
            e = by.get(o)
            if e is None or e.verdict == NOT_COMPARABLE:
                continue  # not run yet stays in: in the family with p = 1, as planned
            key = ("pair", o, e.pair) if e.pair else ("own", i, o)
            groups.setdefault(key, []).append((i, o))
    return groups


def decide_family(rows: list, objectives: list[str], directions: list[str], *, alpha: float = ALPHA,
                  primary: bool = False, margins: dict[str, float] | None = None) -> tuple[list, Family]:
    """Decide every effect of ``rows`` (``(what, against, {objective: Effect})``, the first row the
    best chosen configuration against the baseline) as one family by Holm's rule at ``alpha``.
    With ``primary`` the first row's first objective is decided alone at ``alpha`` (uncorrected,
    and said so) and left out of the family. ``margins``: equivalence margins by objective."""
    margins = margins or {}
    dirs = dict(zip(objectives, directions))
    groups = list(_hypotheses(rows, objectives).values())
    prim = None
    if primary and groups and rows and rows[0][1] == "baseline":
        prim = next((g for g in groups if (0, objectives[0]) in g), None)
    members = [g for g in groups if g is not prim]
    levels = holm_levels([rows[g[0][0]][2][g[0][1]].p for g in members], alpha) if members else []
    out = [(what, ref, dict(by)) for what, ref, by in rows]
    rejected = 0
    for g, lv in zip(members, levels):
        for i, o in g:
            e = _decide(out[i][2][o], lv, dirs[o], margins.get(o))
            out[i][2][o] = replace(e, role="family")
        rejected += e.verdict in (HELPS, HURTS)
    for i, o in prim or []:
        out[i][2][o] = replace(_decide(out[i][2][o], alpha, dirs[o], margins.get(o)), role="primary")
    name = f"{rows[0][0]}: {objectives[0]}" if prim else None
    return out, Family(len(members), alpha, "Holm", name, rejected)


# The runs of a confirmation, by arm ----------------------------------------------------------

CONFIRM_SUFFIX = "-confirm"


def confirmation_of(study):
    """The sibling confirmation study of ``study`` in the same storage, or None."""
    import optuna

    from ganlab.study._optuna import storage_of

    try:
        return optuna.load_study(study_name=study.study_name + CONFIRM_SUFFIX, storage=storage_of(study))
    except KeyError:
        return None


@dataclass
class ArmRuns:
    """One arm of a confirmation: per objective, the value of each seed that has one; the seeds that
    diverged; the seeds still waiting or running."""

    plan: dict
    values: dict[str, dict[int, float]]
    diverged: list[int]
    seconds: float = 0.0
    pending: list[int] = field(default_factory=list)
    run_dir: str | None = None

    @property
    def seeds(self) -> list[int]:
        return sorted({s for v in self.values.values() for s in v} | set(self.diverged))


def arm_runs(confirm, objectives: list[str], diverged_instability: float) -> dict[str, ArmRuns]:
    """The confirmation's runs grouped by arm (in plan order; aliases resolved)."""
    from optuna.trial import TrialState

    plan = study_record(confirm).plan or []
    arms = {a["label"]: ArmRuns(a, {o: {} for o in objectives}, []) for a in plan if not a.get("alias_of")}
    for t in confirm.get_trials(deepcopy=False):
        arm = trial_record(t).arm
        if not isinstance(arm, dict) or arm.get("label") not in arms or trial_record(t).discarded:
            continue
        runs, seed = arms[arm["label"]], int(arm["seed"])
        if t.state == TrialState.COMPLETE and t.values and len(t.values) == len(objectives):
            for o, v in zip(objectives, t.values):
                runs.values[o].setdefault(seed, float(v))
            runs.seconds += float(trial_record(t).seconds or 0.0)
            runs.run_dir = runs.run_dir or trial_record(t).run_dir
        elif t.state == TrialState.FAIL and trial_record(t).diverged_step is not None and seed not in runs.diverged:
            runs.diverged.append(seed)
            runs.seconds += float(trial_record(t).seconds or 0.0)
            if "instability" in runs.values:
                runs.values["instability"].setdefault(seed, diverged_instability)
        elif t.state in (TrialState.WAITING, TrialState.RUNNING) and seed not in runs.pending:
            runs.pending.append(seed)
    for runs in arms.values():
        runs.pending = sorted(s for s in runs.pending if s not in runs.seeds)
    for a in plan:
        if a.get("alias_of") in arms:
            arms[a["label"]] = arms[a["alias_of"]]
    return arms


def _tricks_text(plan: dict) -> str:
    tricks = plan.get("tricks") or []
    if not tricks:
        return "none"
    return ", ".join(n + (":" + ",".join(f"{k}={_short(v)}" for k, v in p.items()) if p else "") for n, p in tricks)


def _short(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _effect(x: ArmRuns, y: ArmRuns, objective: str, direction: str) -> Effect:
    e = paired_effect(x.values[objective], y.values[objective], direction, diverged_x=x.diverged, diverged_y=y.diverged)
    return replace(e, pair=(x.plan.get("label"), y.plan.get("label")))


def comparisons(arms: dict[str, ArmRuns], objectives: list[str], directions: list[str]) -> list:
    """(what, reference, {objective: Effect}) for each chosen configuration and the control against
    the baseline (the best chosen first), and each trick of the best configuration against that
    stack without it; each effect tested alone (:func:`decide_family` decides them together)."""
    out = []
    base = arms.get("baseline")
    for label, runs in arms.items():
        kind = runs.plan.get("kind")
        if base is not None and kind in ("chosen", "control") and label == runs.plan["label"]:
            by = {o: _effect(runs, base, o, d) for o, d in zip(objectives, directions)}
            if kind == "control" and "instability" in by:  # kept out of the family (its size is planned without it)
                by["instability"] = Effect(0, math.nan, math.nan, math.nan, NOT_COMPARABLE,
                                           "the L1-only control is compared on quality only; its instability is "
                                           "shown in the table, outside the family")
            out.append((f"{label} ({_tricks_text(runs.plan)})" if kind == "chosen" else label, "baseline", by))
    for label in list(arms):
        if "-without-" not in label:
            continue
        without = label.split("-without-", 1)[1]
        best = arms.get(label.split("-without-", 1)[0])
        if best is None:
            continue
        ref = arms[label]
        out.append((f"{without} (in {best.plan['label']})", f"{best.plan['label']} without it",
                    {o: _effect(best, ref, o, d) for o, d in zip(objectives, directions)}))
    return out


_effects = comparisons  # the name older code used


def _plot(arms: dict[str, ArmRuns], objectives: list[str], path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    own = [(label, r) for label, r in arms.items() if r.plan.get("label") == label]
    if not own:
        return False
    fig, axes = plt.subplots(1, len(objectives), figsize=(max(5.0, 1.1 * len(own) + 2) * len(objectives), 4.2),
                             dpi=110, squeeze=False)
    rng = np.random.default_rng(0)
    for ax, o in zip(axes[0], objectives):
        for i, (label, r) in enumerate(own):
            v = np.asarray(list(r.values[o].values()), np.float64)
            if v.size:
                ax.scatter(i + rng.uniform(-0.12, 0.12, v.size), v, s=14, c="#7f7f7f", zorder=2)
            s = summarise(v.tolist())
            if s.n >= 2:
                ax.errorbar([i], [s.mean], yerr=[[s.mean - s.low], [s.high - s.mean]], fmt="o", c="#d62728",
                            capsize=4, zorder=3)
            elif s.n == 1:
                ax.plot([i], [s.mean], "o", c="#d62728", zorder=3)
        ax.set_xticks(range(len(own)), [label for label, _ in own], rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{o}: seeds (grey), mean and 95% interval (red)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


# A sequential confirmation (``ganlab confirm --until-decided``) ------------------------------------

def look_schedule(first: int, most: int) -> list[int]:
    """The seed counts at which a sequential confirmation looks: ``first``, then every
    max(2, first / 2) more seeds, and ``most``."""
    step = max(2, math.ceil(first / 2))
    looks = list(range(first, most, step)) + [most]
    return sorted(set(looks))


def look_levels(looks: Sequence[int], m: int, alpha: float = ALPHA) -> list[float]:
    """The family-wise error rate spent at each look: alpha split equally over the looks at which a
    family of ``m`` can give a verdict at all with its share (Bonferroni over the looks: whatever
    the data decide, the chance of any false verdict at any look is at most alpha). Fixed by the
    schedule and the family's size alone, never by the data."""
    active = list(range(len(looks)))
    while True:
        share = alpha / max(1, len(active))
        keep = [j for j in active if seeds_for_verdict(share / max(1, m)) <= looks[j]]
        if keep == active or not keep:
            break
        active = keep
    if not keep:  # no look can reach a verdict: all on the last one (which says "too few seeds")
        active = [len(looks) - 1]
    share = alpha / len(active)
    return [share if j in active else 0.0 for j in range(len(looks))]


def _first_seeds(arms: dict[str, ArmRuns], n: int) -> dict[str, ArmRuns] | None:
    """The arms restricted to the first ``n`` seeds of the confirmation, or None while any arm has
    not finished all of them."""
    seeds = sorted({s for r in arms.values() for s in r.seeds + r.pending})[:n]
    if len(seeds) < n or any(not set(seeds) <= set(r.seeds) for r in arms.values()):
        return None
    keep = set(seeds)
    return {label: ArmRuns(r.plan, {o: {s: v for s, v in vals.items() if s in keep} for o, vals in r.values.items()},
                           [s for s in r.diverged if s in keep], r.seconds, [], r.run_dir)
            for label, r in arms.items()}


def decide_sequential(arms: dict[str, ArmRuns], objectives: list[str], directions: list[str], looks: Sequence[int], *,
                      alpha: float = ALPHA, primary: bool = False,
                      margins: dict[str, float] | None = None) -> tuple[list, Family, list[int]]:
    """Decide a sequential confirmation: at each finished look the family (Holm) at that look's
    share of ``alpha`` (:func:`look_levels`) on the first seeds; a helps, hurts or equivalence
    verdict stands from the look that gave it; the rest are as the latest finished look left them.
    Returns the rows, the family and the looks finished. Before the first look finishes, the runs
    so far are decided at the first look's share (provisional)."""
    rows_now = comparisons(arms, objectives, directions)
    m = _family_size(rows_now, objectives, primary)
    levels = look_levels(looks, m, alpha)
    done = []
    decided: dict[tuple[int, str], Effect] = {}
    latest = None
    for n, level in zip(looks, levels):
        sub = _first_seeds(arms, n)
        if sub is None:
            break
        done.append(n)
        if level <= 0:
            continue
        latest, family = decide_family(comparisons(sub, objectives, directions), objectives, directions, alpha=level,
                                       primary=primary, margins=margins)
        for i, (_, _, by) in enumerate(latest):
            for o, e in by.items():
                if (i, o) not in decided and (e.verdict in (HELPS, HURTS) or e.verdict.startswith("no effect larger")):
                    decided[(i, o)] = replace(e, why=(e.why + "; " if e.why else "") + f"decided at {n} seeds")
    first = next(((n, lv) for n, lv in zip(looks, levels) if lv > 0), (looks[-1], alpha))
    if latest is None:  # no look that spends error has finished: nothing is decided yet
        latest, family = decide_family(rows_now, objectives, directions, alpha=first[1], primary=primary,
                                       margins=margins)
        wait = f"the first look that can decide is at {first[0]} seeds"
        latest = [(what, ref, {o: (replace(e, verdict=NO_EFFECT, low=math.nan, high=math.nan, why=wait)
                                   if e.role and e.verdict != NO_EFFECT and e.verdict != NOT_RUN else e)
                               for o, e in by.items()}) for what, ref, by in latest]
    out = [(what, ref, {o: decided.get((i, o), e) for o, e in by.items()}) for i, (what, ref, by) in enumerate(latest)]
    spent = ", ".join(f"{n} ({lv:.2%})" for n, lv in zip(looks, levels) if lv > 0)
    family = replace(family, size=m, alpha=alpha, looks=f", spent over looks at {spent} seeds",
                     rejected=sum(e.verdict in (HELPS, HURTS) for _, _, by in out for e in by.values()))
    return out, family, done


# The planner -----------------------------------------------------------------------------------

def _family_size(rows: list, objectives: list[str], primary: bool) -> int:
    m = len(_hypotheses(rows, objectives))
    return max(1, m - (1 if primary and rows else 0))


def plan_lines(rows: list, objectives: list[str], *, primary: bool = False, effects: dict[str, float] | None = None,
               alpha: float = ALPHA, power: float = POWER) -> list[str]:
    """Markdown lines: per objective, the paired spread, the smallest effect the current seeds
    detect with ``power`` at the family's first Holm level, and the seeds an effect needs."""
    effects = effects or {}
    m = _family_size(rows, objectives, primary)
    level = alpha / m
    need = seeds_for_verdict(level)
    lines = [f"A family of {m} comparisons at {alpha:.0%} (Holm): an effect found on its own must reach "
             f"{level:.2g} (two-sided), which the sign test can do from {need} seeds (all on one side). The spread is "
             f"the median over the comparisons of the sd of their paired differences; the power assumes normal "
             f"differences of that sd (docs/statistics.md).", "",
             "| objective | seeds now | paired sd | smallest effect detected now (80% power) | effect | seeds it needs "
             "(sign test) | a t-test would need |",
             "|---|---|---|---|---|---|---|"]
    for o in objectives:
        es = [by[o] for _, _, by in rows if o in by and by[o].testable and math.isfinite(by[o].sd) and by[o].sd > 0]
        if not es:
            lines.append(f"| {o} | - | - | no paired spread yet | - | - | - |")
            continue
        n = int(np.median([e.n for e in es]))
        sd = float(np.median([e.sd for e in es]))
        now = detectable_effect(sd, n, level, power)
        now_text = f"{now:.3g} ({now / sd:.2g} sd)" if math.isfinite(now) else f"none (needs {need} seeds)"
        asked = [effects[o]] if o in effects else [0.5 * sd, sd, 2 * sd]
        for j, eff in enumerate(asked):
            ns = seeds_needed(eff, sd, level, power)
            nt = t_test_seeds(eff, sd, level, power)
            first = (f"{o} | {n} | {sd:.3g} | {now_text}") if j == 0 else " | | | "
            lines.append(f"| {first} | {eff:.3g} ({eff / sd:.2g} sd) | {ns if ns else '> 2000'} | "
                         f"{nt if nt else '> 2000'} |")
    return lines


# The report's section --------------------------------------------------------------------------

def _settings(confirm, arms: dict[str, ArmRuns]) -> dict:
    settings = dict(study_record(confirm).settings or {})
    if settings:
        return settings
    import json
    from pathlib import Path

    for r in arms.values():  # a confirmation planned before the settings were recorded: its runs' config
        if r.run_dir and (Path(r.run_dir) / "config.json").is_file():
            try:
                cfg = json.loads((Path(r.run_dir) / "config.json").read_text())
            except (OSError, ValueError):
                continue
            return {k: cfg.get(k) for k in ("steps", "size", "ngf", "ndf", "batch_size") if k in cfg}
    return {}


def _rests_on(settings: dict, seeds: list[int], family: Family) -> str:
    parts = []
    if settings.get("steps") is not None:
        parts.append(f"{settings['steps']} steps per run")
    if settings.get("size") is not None:
        parts.append(f"{settings['size']} px images")
    if settings.get("ngf") is not None:
        parts.append(f"widths ngf {settings['ngf']}, ndf {settings.get('ndf')}")
    if settings.get("batch_size") is not None:
        parts.append(f"batch {settings['batch_size']}")
    parts.append(f"{len(seeds)} seeds per arm")
    parts.append(f"the {TEST}")
    parts.append(f"one {family.text()}" + (f", the primary comparison ({family.primary}) alone at "
                                          f"{family.alpha:.0%}, uncorrected" if family.primary else ""))
    return "What the verdicts rest on: " + "; ".join(parts) + "."


def _seeds_cell(e: Effect) -> str:
    cell = str(e.n)
    if any(e.diverged):
        cell += f" ({e.diverged[0]}/{e.diverged[1]} diverged)"
    return cell


def _verdict_cell(e: Effect) -> str:
    tag = " (primary)" if e.role == "primary" else ""
    if e.verdict == NO_EFFECT and e.testable and e.n > 0:
        dt = e.detectable()
        return e.verdict + tag + (f"; smallest detectable {dt:.3g}" if math.isfinite(dt) else "; too few seeds")
    return e.verdict + tag


def evidence_section(confirm, objectives: list[str], directions: list[str], out, diverged_instability: float,
                     searched: bool = True) -> list[str]:
    """The report's opening section: what the confirmation's runs support, with a figure (and,
    where a search chose the configurations, what the search's sections below it are)."""
    arms = arm_runs(confirm, objectives, diverged_instability)
    own = {label: r for label, r in arms.items() if r.plan.get("label") == label}
    seeds = sorted({s for r in own.values() for s in r.seeds})
    pending = sum(len(r.pending) for r in own.values())
    name = confirm.study_name[: -len(CONFIRM_SUFFIX)] if confirm.study_name.endswith(CONFIRM_SUFFIX) else confirm.study_name
    to_go = (f" {pending} run(s) still to go (`ganlab confirm {name}` continues it); the verdicts below are "
             f"provisional." if pending else "")
    if not seeds:
        return ["## What the evidence supports", "", f"The confirmation `{confirm.study_name}` has no finished run yet;"
                + (to_go or f" continue it with `ganlab confirm {name}`."), ""]
    n_runs = sum(len(r.seeds) for r in own.values())
    seconds = sum(r.seconds for r in own.values())
    planned_seeds = sorted({s for r in own.values() for s in r.seeds + r.pending})
    diverged = {label: len(r.diverged) for label, r in own.items() if r.diverged}
    md = ["## What the evidence supports", "",
          f"From the confirmation `{confirm.study_name}`: {n_runs} runs of {len(own)} configurations over "
          f"{len(seeds)} seeds ({', '.join(map(str, seeds))}; the same seeds in every configuration, so that runs "
          f"pair by seed), {seconds:.0f} s of training"
          + (f"; {n_runs + pending} runs planned over {len(planned_seeds)} seeds." if pending else ".") + to_go
          + (" Diverged: " + ", ".join(f"{k} {v}" for k, v in diverged.items())
             + f" (for quality each counts as its arm's worst outcome, for instability as {diverged_instability:g})."
             if diverged else " No run diverged."), "",
          "Each configuration: mean ± sd [95% interval of the mean, Student's t] over its finished seeds "
          "(descriptive; the verdicts below test the paired differences).", ""]
    md.append("| configuration | tricks | settings | " + " | ".join(objectives) + " | seeds |")
    md.append("|---|---|---|" + "---|" * len(objectives) + "---|")
    for label, r in own.items():
        settings = ", ".join(f"{k}={_short(v)}" for k, v in r.plan.get("params", {}).items()) or "-"
        cells = [summarise(list(r.values[o].values())).text() if r.seeds else NOT_RUN for o in objectives]
        seeds_cell = f"{len(r.seeds)}{f' ({len(r.diverged)} diverged)' if r.diverged else ''}"
        if r.pending:
            seeds_cell += f", {len(r.pending)} to go"
        md.append(f"| {label} | {_tricks_text(r.plan)} | {settings} | " + " | ".join(cells) + f" | {seeds_cell} |")
    primary = bool(study_record(confirm).primary)
    margins = {k: float(v) for k, v in (study_record(confirm).equivalence or {}).items()}
    looks = [int(n) for n in study_record(confirm).looks or []]
    if looks:
        rows, family, _ = decide_sequential(arms, objectives, directions, looks, primary=primary, margins=margins)
    else:
        rows, family = decide_family(comparisons(arms, objectives, directions), objectives, directions,
                                     primary=primary, margins=margins)
    if rows:
        md += ["", "### Verdicts", "", _rests_on(_settings(confirm, arms), seeds, family), "",
               f"An effect is the median of the seed-paired differences (the first minus the reference; a diverged "
               f"seed is its arm's worst outcome). Its interval inverts the sign test at the level Holm's rule decided "
               f"it at (the {family.text()}: the chance that any verdict below is a false helps or hurts is at most "
               f"{family.alpha:.0%}), so it excludes 0 exactly when the verdict is **{HELPS}** (on the objective's "
               f"better side) or **{HURTS}**; else **{NO_EFFECT}**, with the smallest effect these seeds would "
               f"detect (80% power, normal differences of the observed spread)."
               + (" With an equivalence margin D, an interval inside (-D, +D) is **no effect larger than D**: "
                  + ", ".join(f"{o} D = {v:g}" for o, v in margins.items()) + "." if margins else "")
               + (f" The primary comparison ({family.primary}) is decided alone at {family.alpha:.0%} (uncorrected); "
                  f"with it the chance of any false verdict in the report is at most {2 * family.alpha:.0%}."
                  if family.primary else ""), ""]
        md.append("| effect of | against | " + " | ".join(f"{o}: median difference [interval] | verdict" for o in objectives)
                  + " | seeds (diverged in it/reference) |")
        md.append("|---|---|" + "---|---|" * len(objectives) + "---|")
        for what, ref, by in rows:
            n = max(by, key=lambda o: by[o].n)
            md.append(f"| {what} | {ref} | " + " | ".join(f"{by[o].text()} | {_verdict_cell(by[o])}" for o in objectives)
                      + f" | {_seeds_cell(by[n])} |")
        md += ["", "In words:", ""]
        for what, ref, by in rows:
            parts = []
            for o in objectives:
                e = by[o]
                if e.verdict in (NOT_COMPARABLE, NOT_RUN):
                    parts.append(f"{o} {e.verdict} ({e.why})")
                    continue
                level = f"at {1 - e.level:.2%}" if e.role else ""
                extra = f"; {e.why}" if e.why and e.verdict != HELPS and e.verdict != HURTS else ""
                if e.verdict == NO_EFFECT and e.n > 0 and math.isfinite(e.detectable()):
                    extra += f"; the smallest effect these seeds detect is {e.detectable():.3g}"
                div = f", diverged {e.diverged[0]} in it and {e.diverged[1]} in the reference" if any(e.diverged) else ""
                parts.append(f"{o} **{e.verdict}**{' (primary, uncorrected)' if e.role == 'primary' else ''} "
                             f"({e.text()} {level}, {e.n} seeds{div}{extra})")
            md.append(f"- **{what}** against {ref}: " + "; ".join(parts) + ".")
        md += ["", "### How many seeds", ""] + plan_lines(rows, objectives, primary=primary)
        md += like_l1_control_lines(confirm, arms, objectives, directions)
    if _plot(arms, objectives, out / "evidence.png"):
        md += ["", "![evidence](evidence.png)"]
    if searched:
        md += ["", "The sections below come from the search: each trial one run per seed of its configuration, each "
               "trick on together with other, randomly drawn tricks. They screen; only the verdicts above, with their "
               "family and its error rate, are evidence.", ""]
    return md


QUALITY_FREE = ("instability", "loss_shape")  # objectives that are not image quality


def like_l1_control_lines(confirm, arms: dict[str, ArmRuns], objectives: list[str], directions: list[str]) -> list[str]:
    """Which configurations cannot be told from the L1-only control in image quality: each one's
    seed-paired effect against the control on the first quality objective, decided alone at 5%
    (descriptive, outside the verdicts' family), with the share of G's gradient that came from
    the adversarial term (a continuous number, never a label). Empty without a control arm, a
    quality objective, or a configuration whose interval against the control contains 0."""
    from ganlab.study.objective import like_l1_control

    control = next((r for label, r in arms.items() if r.plan.get("kind") == "control"
                    and r.plan.get("label") == label), None)
    quality = next((o for o in objectives if o not in QUALITY_FREE), None)
    if control is None or not control.seeds or quality is None:
        return []
    direction = directions[objectives.index(quality)]
    shares: dict[str, list[float]] = {}
    for t in confirm.get_trials(deepcopy=False):
        rec = trial_record(t)
        if isinstance(rec.arm, dict) and isinstance(rec.adv_grad_share, (int, float)):
            shares.setdefault(rec.arm.get("label"), []).append(float(rec.adv_grad_share))
    lines = []
    for label, r in arms.items():
        if r is control or r.plan.get("label") != label or not r.seeds:
            continue
        sentence = like_l1_control(shares.get(label, []), _effect(r, control, quality, direction))
        if sentence:
            lines.append(f"- **{label}**: {sentence}.")
    if not lines:
        return []
    return ["", "### Like the L1-only control", "",
            f"Configurations whose {quality} cannot be told from the L1-only control's (each compared with the "
            f"control alone at 5%, outside the family above: a description, not a verdict):", ""] + lines


def _bootstrap_t(d: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """The studentised bootstrap 95% interval of a mean that ganlab used before the sign test
    (kept for benchmarks/interval_coverage.py, which compares it)."""
    n = d.size
    mean, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:
        return mean, mean
    x = d[rng.integers(0, n, (RESAMPLES, n))]
    se_star = x.std(axis=1, ddof=1) / math.sqrt(n)
    keep = se_star > 0
    t_star = (x.mean(axis=1)[keep] - mean) / se_star[keep]
    q_low, q_high = np.quantile(t_star, [0.025, 0.975])
    return mean - float(q_high) * se, mean - float(q_low) * se
