"""The statistics behind a confirmation's verdicts: the sign test and its interval, the family
(Holm), equivalence, the seed planner and diverged seeds. Fast: no training, seeded draws."""

import math

import numpy as np
import optuna
import pytest
from scipy import stats as st

from ganlab.study.evidence import (ALPHA, HELPS, HURTS, NO_EFFECT, NOT_RUN, ArmRuns, comparisons, decide_family,
                                   detectable_effect, equivalent_text, evidence_section, holm_adjusted, holm_levels,
                                   paired_effect, seeds_for_verdict, seeds_needed, sign_test_power, t_test_seeds)


def _pairs(diffs):
    return {s: 10.0 + d for s, d in enumerate(diffs)}, {s: 10.0 for s in range(len(diffs))}


def _mc_bound(rate: float, draws: int) -> float:
    """The rate plus four Monte-Carlo standard errors: a bound a correct test stays under."""
    return rate + 4 * math.sqrt(rate * (1 - rate) / draws)


# Holm ------------------------------------------------------------------------------------------

def test_holm_levels_and_adjusted_p_values_match_the_step_down_rule():
    ps = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005 <= 0.05/4, 0.01 <= 0.05/3, then 0.03 > 0.05/2: two rejected, the rest at 0.05/2
    assert holm_levels(ps) == pytest.approx([0.05 / 3, 0.05 / 2, 0.05 / 2, 0.05 / 4])
    assert holm_adjusted(ps) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = list(rng.uniform(0, 0.03, rng.integers(1, 15)))
        rejected = [pi <= lv for pi, lv in zip(p, holm_levels(p))]
        assert rejected == [a <= ALPHA for a in holm_adjusted(p)]
        assert sum(rejected) >= sum(pi <= ALPHA / len(p) for pi in p)  # at least Bonferroni's


def test_a_family_holds_thirteen_null_verdicts_to_five_percent():
    rng = np.random.default_rng(1)
    draws, any_false, any_alone = 600, 0, 0
    for _ in range(draws):
        rows = [(f"c{i}", "baseline", {"swd": paired_effect(*_pairs(rng.normal(size=12)), "minimize")})
                for i in range(13)]
        any_alone += any(by["swd"].verdict in (HELPS, HURTS) for _, _, by in rows)
        decided, family = decide_family(rows, ["swd"], ["minimize"])
        assert family.size == 13
        any_false += any(by["swd"].verdict in (HELPS, HURTS) for _, _, by in decided)
    assert any_false / draws <= _mc_bound(ALPHA, draws)
    assert any_alone / draws > 0.25  # thirteen chances uncorrected: the problem the family solves


def test_a_decided_interval_excludes_zero_exactly_when_the_verdict_is_given():
    rng = np.random.default_rng(2)
    for _ in range(400):
        n = int(rng.integers(6, 20))
        d = np.round(rng.normal(0.7, 1.0, n), 1)
        rows = [(f"c{i}", "baseline", {"swd": paired_effect(*_pairs(d + rng.normal(0, 0.5, n)), "minimize")})
                for i in range(4)]
        decided, _ = decide_family(rows, ["swd"], ["minimize"])
        for _, _, by in decided:
            e = by["swd"]
            if math.isnan(e.low):
                assert e.verdict == NO_EFFECT
                continue
            assert min(e.d) <= e.low <= e.median <= e.high <= max(e.d)  # never beyond the data
            assert (e.verdict in (HELPS, HURTS)) == (e.low > 0 or e.high < 0) == (e.p <= e.level * (1 + 1e-9))


def test_a_declared_primary_is_decided_alone_and_left_out_of_the_family():
    d = [-1.0, -0.8, -1.2, -0.3, -0.9, 0.2, -1.1, -0.7, -0.5, -0.6]  # 9 of 10 better: p = 0.021
    null = [0.3, -0.2, 0.5, -0.6, 0.1, -0.1, 0.25, -0.2, 0.4, -0.3]
    rows = [("trial-1", "baseline", {"swd": paired_effect(*_pairs(d), "minimize"),
                                     "instability": paired_effect(*_pairs(null), "minimize")})]
    rows += [(f"c{i}", "baseline", {"swd": paired_effect(*_pairs(null), "minimize"),
                                    "instability": paired_effect(*_pairs(null), "minimize")}) for i in range(6)]
    decided, family = decide_family(rows, ["swd", "instability"], ["minimize", "minimize"])
    assert family.size == 14 and decided[0][2]["swd"].verdict == NO_EFFECT  # 0.021 > 0.05 / 14
    decided, family = decide_family(rows, ["swd", "instability"], ["minimize", "minimize"], primary=True)
    e = decided[0][2]["swd"]
    assert family.size == 13 and family.primary == "trial-1: swd"
    assert e.role == "primary" and e.verdict == HELPS and e.level == ALPHA


# The test: ties, constants, too few seeds, skew --------------------------------------------------

@pytest.mark.parametrize("diffs", [[0.5] * 5, [0.5] * 12, [-2.0] * 20, [0.0] * 8, [0.5] * 11 + [0.6]])
def test_constant_or_tied_differences_give_no_verdict_and_no_interval(diffs):
    e = paired_effect(*_pairs(diffs), "minimize")
    assert e.verdict == NO_EFFECT and math.isnan(e.low) and math.isnan(e.high)
    assert "[" in e.text() and "+0.5, +0.5" not in e.text()


@pytest.mark.parametrize("diffs", [[0, 0, 0, 0, 17], [0.1, 0, -0.1, 0.05, 17], [-1, -2, -3, -4, -5]])
def test_five_seeds_never_give_a_verdict_and_no_bound_is_printed(diffs):
    e = paired_effect(*_pairs(diffs), "minimize")  # the smallest two-sided p of 5 seeds is 1/16
    assert e.verdict == NO_EFFECT and "too few seeds" in e.why and "too few seeds" in e.text()
    assert seeds_for_verdict(0.05) == 6 and seeds_for_verdict(0.05 / 13) == 10


def test_a_clear_effect_is_found_with_its_side_and_a_bounded_interval():
    rng = np.random.default_rng(0)
    diffs = -1.0 + 0.1 * rng.normal(size=8)
    e = paired_effect(*_pairs(diffs), "minimize")
    assert e.verdict == HELPS and e.low < e.median < e.high < 0 and e.low >= diffs.min()
    assert paired_effect(*_pairs(diffs), "maximize").verdict == HURTS


@pytest.mark.parametrize("name", ["lognormal", "reversed lognormal", "t3"])
def test_the_false_verdict_rate_of_skewed_or_heavy_null_differences_stays_nominal_on_each_side(name):
    # differences with median 0 (the location the sign test tests), at 12 seeds, decided alone at 5%
    rng = np.random.default_rng(3)
    draws, n = 1500, 12
    draw = {"lognormal": lambda: rng.lognormal(size=n) - 1.0, "reversed lognormal": lambda: 1.0 - rng.lognormal(size=n),
            "t3": lambda: rng.standard_t(3, size=n)}[name]
    helps = hurts = 0
    for _ in range(draws):
        v = paired_effect(*_pairs(draw()), "minimize").verdict
        helps += v == HELPS
        hurts += v == HURTS
    exact = float(st.binom.sf(9, n, 0.5))  # 10 or more of 12 on one side: the test's exact size per side
    assert exact < ALPHA / 2
    assert helps / draws <= _mc_bound(exact, draws) and hurts / draws <= _mc_bound(exact, draws)


# Equivalence -----------------------------------------------------------------------------------

def test_an_interval_inside_the_margin_is_no_effect_larger_than_it():
    rng = np.random.default_rng(4)
    diffs = 0.2 * rng.normal(size=12)
    e = paired_effect(*_pairs(diffs), "minimize", margin=1.0)
    assert e.verdict == equivalent_text(1.0) == "no effect larger than 1" and -1 < e.low and e.high < 1
    assert paired_effect(*_pairs(diffs), "minimize", margin=0.05).verdict == NO_EFFECT  # too narrow a margin
    assert paired_effect(*_pairs(diffs), "minimize").verdict == NO_EFFECT  # no margin: no equivalence verdict
    assert paired_effect(*_pairs(diffs - 3.0), "minimize", margin=1.0).verdict == HELPS
    assert paired_effect(*_pairs(diffs[:5]), "minimize", margin=1.0).verdict == NO_EFFECT  # 5 seeds: nothing


# The planner -----------------------------------------------------------------------------------

def test_the_planner_inverts_the_sign_tests_power_and_matches_a_simulation():
    level = ALPHA / 13
    for n in (10, 12, 20, 31):
        mde = detectable_effect(2.0, n, level)
        assert sign_test_power(mde, 2.0, n, level) == pytest.approx(0.8, abs=1e-6)
    assert detectable_effect(2.0, 9, level) == math.inf  # below 10 seeds no verdict at all
    rng = np.random.default_rng(5)
    n, sd, eff, draws = 14, 1.0, 1.2, 1500
    hits = sum(paired_effect(*_pairs(rng.normal(-eff, sd, n)), "minimize", level=level).verdict == HELPS
               for _ in range(draws))
    predicted = sign_test_power(eff, sd, n, level)
    assert abs(hits / draws - predicted) < 4 * math.sqrt(predicted * (1 - predicted) / draws)


def test_the_t_test_comparison_follows_the_textbook_sample_size_formula():
    # Guenther's normal approximation n = (z_a + z_b)^2 (sd/effect)^2 + z_a^2 / 2 is within a seed
    # of the exact noncentral-t answer
    for level in (0.05, 0.05 / 13):
        za, zb = st.norm.ppf(1 - level / 2), st.norm.ppf(0.8)
        for ratio in (0.5, 1.0, 2.0):
            approx = (za + zb) ** 2 / ratio ** 2 + za ** 2 / 2
            assert abs(t_test_seeds(ratio, 1.0, level) - approx) <= 1.5
    n = t_test_seeds(1.0, 1.0, 0.05)
    crit = st.t.ppf(0.975, n - 1)
    assert st.nct.sf(crit, n - 1, math.sqrt(n)) >= 0.8 > st.nct.sf(st.t.ppf(0.975, n - 2), n - 2, math.sqrt(n - 1))
    ns = seeds_needed(1.0, 1.0, 0.05)
    assert ns > n  # the sign test's price for holding its rate under skew
    assert all(sign_test_power(1.0, 1.0, k, 0.05) >= 0.8 for k in range(ns, ns + 30))


# Diverged seeds --------------------------------------------------------------------------------

def test_a_diverged_seed_is_its_arms_worst_outcome_never_dropped():
    x, y = _pairs([-1.0] * 9 + [0.5])
    del x[9]  # seed 9 of x diverged: no value
    e = paired_effect(x, y, "minimize", diverged_x=[9])
    assert e.n == 10 and e.diverged == (1, 0) and e.d[-1] == math.inf  # ranked last for a minimised objective
    e = paired_effect(x, y, "maximize", diverged_x=[9])
    assert e.d[0] == -math.inf
    del y[9]
    e = paired_effect(x, y, "minimize", diverged_x=[9], diverged_y=[9])
    assert e.n == 10 and 0.0 in e.d and e.diverged == (1, 1)  # both diverged: a tie
    # dropping it would have given 9 of 9 better; counted as a loss, 9 of 10
    assert paired_effect(*_pairs([-1.0 + 0.01 * i for i in range(10)]), "minimize").p < e.p


def test_diverging_on_the_worst_seeds_does_not_make_an_arm_look_better():
    # an arm with no effect that diverges where it would have been worst (its 3 worst of 10 seeds)
    rng = np.random.default_rng(6)
    draws, helps = 1500, 0
    for _ in range(draws):
        xs, ys = rng.normal(size=10), rng.normal(size=10)
        worst = set(np.argsort(xs)[-3:].tolist())  # swd: larger is worse
        x = {s: float(xs[s]) for s in range(10) if s not in worst}
        y = {s: float(ys[s]) for s in range(10)}
        helps += paired_effect(x, y, "minimize", diverged_x=sorted(worst)).verdict == HELPS
    assert helps / draws <= _mc_bound(float(st.binom.sf(8, 10, 0.5)), draws)


# A half-finished confirmation --------------------------------------------------------------------

def _arm(label, kind, values, diverged=(), pending=()):
    plan = {"label": label, "kind": kind, "params": {}, "tricks": [["label-flip", {"p": 0.1}]] if kind == "chosen" else []}
    return ArmRuns(plan, {"swd": dict(values), "instability": {s: 1.0 for s in values}}, list(diverged), 1.0,
                   list(pending))


def test_an_arm_with_no_finished_seed_is_not_run_yet_not_no_effect():
    base = _arm("baseline", "baseline", {s: 10.0 + s for s in range(3)})
    arms = {"trial-1": _arm("trial-1", "chosen", {}, pending=[0, 1, 2]), "baseline": base,
            "l1-only": _arm("l1-only", "control", {s: 11.0 for s in range(3)})}
    rows = comparisons(arms, ["swd", "instability"], ["minimize", "minimize"])
    decided, family = decide_family(rows, ["swd", "instability"], ["minimize", "minimize"])
    assert decided[0][2]["swd"].verdict == NOT_RUN and decided[0][2]["instability"].verdict == NOT_RUN
    assert decided[1][2]["swd"].verdict == NO_EFFECT and family.size == 3


def test_the_report_of_a_half_finished_confirmation_counts_the_runs_to_go(tmp_path):
    confirm = optuna.create_study(study_name="q-confirm", directions=["minimize", "minimize"])
    plan = [{"label": "trial-1", "kind": "chosen", "params": {}, "tricks": [["label-flip", {"p": 0.1}]]},
            {"label": "baseline", "kind": "baseline", "params": {}, "tricks": []}]
    confirm.set_user_attr("plan", plan)
    confirm.set_user_attr("settings", {"steps": 300, "size": 64, "ngf": 32, "ndf": 32, "batch_size": 1})
    dist = {}
    for s in (1000, 1001, 1002):
        confirm.add_trial(optuna.trial.create_trial(values=[10.0 + s % 7, 1.0], distributions=dist, params={},
                                                    user_attrs={"arm": {**plan[1], "seed": s}}))
        confirm.enqueue_trial({}, user_attrs={"arm": {**plan[0], "seed": s}})
    md = "\n".join(evidence_section(confirm, ["swd", "instability"], ["minimize", "minimize"], tmp_path, 20.0))
    assert "3 run(s) still to go" in md and "`ganlab confirm q` continues it" in md
    line = next(line for line in md.splitlines() if line.startswith("- **trial-1"))
    assert line.count(NOT_RUN) == 2 and NO_EFFECT not in line
    assert "300 steps per run" in md and "64 px" in md and "ngf 32" in md and "sign test" in md and "Holm" in md


# A sequential confirmation (--until-decided) --------------------------------------------------

from ganlab.study.evidence import decide_sequential, look_levels, look_schedule  # noqa: E402


def _two_arms(diffs, pending=()):
    seeds = list(range(1000, 1000 + len(diffs)))
    chosen = _arm("trial-1", "chosen", {s: 10.0 + d for s, d in zip(seeds, diffs)}, pending=pending)
    base = _arm("baseline", "baseline", {s: 10.0 for s in seeds}, pending=pending)
    return {"trial-1": chosen, "baseline": base}


def test_the_looks_spend_the_error_rate_only_where_a_verdict_is_possible():
    assert look_schedule(10, 20) == [10, 15, 20] and look_schedule(6, 7) == [6, 7]
    levels = look_levels([10, 15, 20], 13)
    assert levels == pytest.approx([0.0, 0.025, 0.025])  # 10 seeds cannot reach 0.025 / 13
    for looks in ([6, 9, 12], [10, 15, 20, 25, 30], [5, 6]):
        for m in (1, 2, 13):
            lv = look_levels(looks, m)
            assert sum(lv) <= ALPHA + 1e-12 and max(lv) > 0


def test_looking_after_every_round_keeps_the_error_rate():
    rng = np.random.default_rng(7)
    looks, draws, false = [6, 9, 12], 1500, 0
    for _ in range(draws):
        rows, family, done = decide_sequential(_two_arms(rng.normal(size=12)), ["swd", "instability"],
                                               ["minimize", "minimize"], looks)
        assert done == looks and family.size == 2
        false += any(e.verdict in (HELPS, HURTS) for _, _, by in rows for e in by.values())
    assert false / draws <= _mc_bound(ALPHA, draws)


def test_a_verdict_stands_from_the_look_that_gave_it_and_none_comes_before_the_first_look():
    diffs = [-1.0 - 0.1 * i for i in range(9)] + [0.5, 0.6, 0.7]  # decided at 9 seeds; more would undo it
    rows, _, done = decide_sequential(_two_arms(diffs), ["swd"], ["minimize"], [6, 9, 12])
    e = rows[0][2]["swd"]
    assert done == [6, 9, 12] and e.verdict == HELPS and "decided at 9 seeds" in e.why
    rows, _, done = decide_sequential(_two_arms(diffs[:7], pending=range(1007, 1012)), ["swd"], ["minimize"],
                                      [6, 9, 12])
    e = rows[0][2]["swd"]
    assert done == [6] and e.verdict == NO_EFFECT and "first look that can decide is at 9 seeds" in e.why


@pytest.mark.parametrize("args, message", [
    (["--until-decided"], "--until-decided and --max-seeds go together"),
    (["--max-seeds", "20"], "--until-decided and --max-seeds go together"),
    (["--effect", "swd=2"], "--effect sizes seeds for --plan"),
    (["--max-seeds", "0", "--until-decided"], "--max-seeds 0: must be a whole number >= 1"),
])
def test_the_sequential_and_planner_flags_refuse_bad_combinations_in_one_line(args, message, run_cli, tmp_path):
    code, _, err = run_cli("confirm", "nothing-here", "--runs", tmp_path, *args)
    assert code != 0 and message in err and "Traceback" not in err


def test_equivalence_margins_are_read_per_objective_and_bad_ones_refused():
    from types import SimpleNamespace

    from ganlab.errors import UsageError
    from ganlab.study.confirm import margins

    spec = SimpleNamespace(objectives=("swd", "instability"))
    assert margins(spec, ["2.5", "instability=0.1"]) == {"swd": 2.5, "instability": 0.1}
    for bad, words in (("fid=2", "not an objective"), ("swd=", "must be a number"), ("-1", "positive finite"),
                       ("nan", "positive finite"), ("inf", "positive finite")):
        with pytest.raises(UsageError, match=words):
            margins(spec, [bad])
    with pytest.raises(UsageError, match="^--effect swd=x"):
        margins(spec, ["swd=x"], "--effect")


def test_the_error_rate_benchmark_runs_and_prints_its_tables():
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "error_rates.py"
    res = subprocess.run([sys.executable, str(script), "--draws", "4", "--seeds", "10"], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    for row in ("| normal | 10 |", "| lognormal | 10 |", "| t3 | 10 |", "Family: 13 verdicts, Holm at 5%",
                "each diverged seed its arm's worst outcome", "--until-decided, looks at 10, 15, 20",
                "| sign test (ganlab), median 0 | 12 |"):
        assert row in res.stdout, res.stdout


def test_an_ablation_that_is_the_baseline_repeats_a_comparison_and_counts_once():
    rng = np.random.default_rng(8)
    seeds = range(1000, 1012)
    chosen = _arm("trial-1", "chosen", {s: 10.0 + rng.normal() - 1.5 for s in seeds})
    base = _arm("baseline", "baseline", {s: 10.0 + rng.normal() for s in seeds})
    arms = {"trial-1": chosen, "baseline": base, "trial-1-without-label-flip": base}  # as arm_runs resolves an alias
    rows = comparisons(arms, ["swd"], ["minimize"])
    assert [r[0] for r in rows] == ["trial-1 (label-flip:p=0.1)", "label-flip (in trial-1)"]
    decided, family = decide_family(rows, ["swd"], ["minimize"])
    assert family.size == 1
    a, b = decided[0][2]["swd"], decided[1][2]["swd"]
    assert (a.verdict, a.low, a.high, a.level) == (b.verdict, b.low, b.high, b.level)
