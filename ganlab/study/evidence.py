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

from ganlab.study.record import study_record, trial_record

__all__ = ["ArmRuns", "CONFIRM_SUFFIX", "arm_runs", "confirmation_of", "evidence_section", "Effect", "HELPS", "HURTS", "MIN_SEEDS", "NO_EFFECT", "RESAMPLES", "Summary", "paired_effect", "summarise"]

RESAMPLES = 10_000
MIN_SEEDS = 5
CONFIDENCE = 0.95
HELPS, HURTS, NO_EFFECT = "helps", "hurts", "no detectable effect at this budget"
NOT_COMPARABLE = "not comparable"


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
        ci = f"[{self.low:+.3g}, {self.high:+.3g}]" if math.isfinite(self.low) else f"[no interval at n={self.n}]"
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
    if d.size < MIN_SEEDS:  # no interval either: below 5 seeds a bootstrap-t one is wild, the others too narrow
        return Effect(int(d.size), float(d.mean()), math.nan, math.nan, NO_EFFECT,
                      f"{d.size} paired seeds; an interval and a verdict need {MIN_SEEDS}")
    low, high = _bootstrap_t(d, np.random.default_rng(seed))
    if not d.any():
        return Effect(int(d.size), 0.0, 0.0, 0.0, NO_EFFECT, "identical results on every seed")
    if low <= 0.0 <= high:
        return Effect(int(d.size), float(d.mean()), low, high, NO_EFFECT, "the interval contains 0")
    better = (high < 0.0) if direction == "minimize" else (low > 0.0)
    return Effect(int(d.size), float(d.mean()), low, high, HELPS if better else HURTS)


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
    """One arm of a confirmation: per objective, the value of each seed that has one."""

    plan: dict
    values: dict[str, dict[int, float]]
    diverged: list[int]
    seconds: float = 0.0

    @property
    def seeds(self) -> list[int]:
        return sorted({s for v in self.values.values() for s in v} | set(self.diverged))


def arm_runs(confirm, objectives: list[str], diverged_instability: float) -> dict[str, ArmRuns]:
    """The confirmation's finished runs grouped by arm (in plan order; aliases resolved)."""
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
        elif t.state == TrialState.FAIL and trial_record(t).diverged_step is not None and seed not in runs.diverged:
            runs.diverged.append(seed)
            runs.seconds += float(trial_record(t).seconds or 0.0)
            if "instability" in runs.values:
                runs.values["instability"].setdefault(seed, diverged_instability)
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


def _effects(arms: dict[str, ArmRuns], objectives: list[str], directions: list[str]):
    """(what, reference, {objective: Effect}) for each chosen configuration and the control against
    the baseline, and each trick of the best configuration against that stack without it."""
    out = []
    base = arms.get("baseline")
    for label, runs in arms.items():
        kind = runs.plan.get("kind")
        if base is not None and kind in ("chosen", "control") and label == runs.plan["label"]:
            by = {o: paired_effect(runs.values[o], base.values[o], d) for o, d in zip(objectives, directions)}
            if kind == "control" and "instability" in by:  # no D, no game: scored degenerate by design
                by["instability"] = Effect(0, math.nan, math.nan, math.nan, NOT_COMPARABLE,
                                           "the L1-only control has no adversarial game to be stable or not")
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
                    {o: paired_effect(best.values[o], ref.values[o], d) for o, d in zip(objectives, directions)}))
    return out


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


def evidence_section(confirm, objectives: list[str], directions: list[str], out, diverged_instability: float) -> list[str]:
    """The report's opening section: what the confirmation's runs support, with a figure."""
    arms = arm_runs(confirm, objectives, diverged_instability)
    own = {label: r for label, r in arms.items() if r.plan.get("label") == label}
    seeds = sorted({s for r in own.values() for s in r.seeds})
    if not seeds:
        return ["## What the evidence supports", "", f"The confirmation `{confirm.study_name}` has no finished run yet; "
                "continue it with `ganlab confirm`.", ""]
    n_runs = sum(len(r.seeds) for r in own.values())
    diverged = sum(len(r.diverged) for r in own.values())
    seconds = sum(r.seconds for r in own.values())
    md = ["## What the evidence supports", "",
          f"From the confirmation `{confirm.study_name}`: {n_runs} runs of {len(own)} configurations over "
          f"{len(seeds)} seeds ({', '.join(map(str, seeds))}; the same seeds in every configuration, so that runs "
          f"pair by seed), {seconds:.0f} s of training"
          + (f"; {diverged} run(s) diverged (their instability counts as {diverged_instability:g})" if diverged else "")
          + ".", "",
          "Each configuration: mean ± sd [95% interval of the mean, Student's t] over its seeds.", ""]
    md.append("| configuration | tricks | settings | " + " | ".join(objectives) + " | seeds |")
    md.append("|---|---|---|" + "---|" * len(objectives) + "---|")
    for label, r in own.items():
        settings = ", ".join(f"{k}={_short(v)}" for k, v in r.plan.get("params", {}).items()) or "-"
        cells = [summarise(list(r.values[o].values())).text() for o in objectives]
        md.append(f"| {label} | {_tricks_text(r.plan)} | {settings} | " + " | ".join(cells)
                  + f" | {len(r.seeds)}{f' ({len(r.diverged)} diverged)' if r.diverged else ''} |")
    effects = _effects(arms, objectives, directions)
    if effects:
        md += ["", "### Verdicts", "",
               f"An effect is the mean of the seed-paired differences (the first minus the reference) with a "
               f"studentised bootstrap 95% interval ({RESAMPLES:,} resamples of the seeds); **{HELPS}** or **{HURTS}** "
               f"when the interval excludes 0 on the objective's better or worse side, else **{NO_EFFECT}**. A verdict "
               f"needs at least {MIN_SEEDS} paired seeds (docs/statistics.md).", ""]
        md.append("| effect of | against | " + " | ".join(f"{o}: difference [95% CI] | verdict" for o in objectives) + " | seeds |")
        md.append("|---|---|" + "---|---|" * len(objectives) + "---|")
        for what, ref, by in effects:
            n = max(e.n for e in by.values())
            md.append(f"| {what} | {ref} | " + " | ".join(f"{by[o].text()} | {by[o].verdict}" for o in objectives)
                      + f" | {n} |")
        md += ["", "In words:", ""]
        for what, ref, by in effects:
            parts = []
            for o in objectives:
                e = by[o]
                if e.verdict == NOT_COMPARABLE:
                    parts.append(f"{o} {e.verdict} ({e.why})")
                    continue
                why = f"; {e.why}" if e.why and e.verdict == NO_EFFECT else ""
                parts.append(f"{o} **{e.verdict}** ({e.text()}, {e.n} seeds{why})")
            md.append(f"- **{what}** against {ref}: " + "; ".join(parts) + ".")
    if _plot(arms, objectives, out / "evidence.png"):
        md += ["", "![evidence](evidence.png)"]
    md += ["", "The sections below come from the search: each trial one run per seed of its configuration, each trick "
           "on together with other, randomly drawn tricks. They screen; the verdicts above are the evidence.", ""]
    return md
