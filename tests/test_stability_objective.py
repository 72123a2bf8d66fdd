"""The default stability objective reads the quality of the images over time and over seeds
(docs/metrics.md): continuous over a sweep of D's learning rate, the same for every loss type
with the same quality curve, never rewarding a flat curve at a bad level, and one number per run
in a search and in a confirmation."""

import math

import numpy as np
import pytest

from ganlab.metrics.stability import (
    SCALE,
    InstabilityReport,
    configuration_instability,
    instability_from_run,
    instability_score,
    progress_scale,
    regression,
    seed_spread,
    volatility,
)

UPDATES = 240
EVALS = 12


def sweep_run(lr_d: float, seed: int = 0) -> dict:
    """Series that mimic a 32 px, 240-step ``--trick ttur:lr_d=X`` run: D's ranking of real above
    fake (AUC) and the adversarial share of G's gradient grow smoothly with log(lr_d), from chance
    (D frozen) to a D that wins; D's loss falls from its chance level; the validation curve improves
    less and turns back up more as D grows strong. The noise is the same at every lr_d (common
    random numbers), as when only the setting moves."""
    rng = np.random.default_rng(seed)
    x = (math.log10(lr_d) + 5.0) / 1.2  # about -1.6 at 1e-7, 0 at 1e-5, 1 at 2e-4
    strength = 1.0 / (1.0 + math.exp(-3.0 * x))  # 0 .. 1
    t = np.arange(UPDATES)
    auc = np.clip(0.5 + 0.5 * strength * (1 - np.exp(-t / 40)) + 0.03 * rng.normal(size=UPDATES), 0, 1)
    d_loss = 2 * math.log(2) * (1 - 0.8 * strength * (1 - np.exp(-t / 60))) + 0.02 * rng.normal(size=UPDATES)
    share = 0.15 + 0.5 * strength + 0.02 * rng.normal(size=UPDATES // 10)
    e = np.arange(EVALS)
    q = 125 - 12 * (1 - np.exp(-e / 3)) + 40 * strength**3 * np.clip(e - 8, 0, None) / 3 + 4 * rng.normal(size=EVALS)
    return {
        "D/loss_real": [(int(i), float(v / 2)) for i, v in zip(t, d_loss)],
        "D/loss_fake": [(int(i), float(v / 2)) for i, v in zip(t, d_loss)],
        "D/auc": [(int(i), float(v)) for i, v in zip(t, auc)],
        "D/chance_loss": [(int(i), 2 * math.log(2)) for i in range(9, UPDATES, 10)],
        "G/adv": [(int(i), float(1 + 2 * strength + 0.05 * rng.normal())) for i in t],
        "D/grad_norm": [(int(i), float(1 + 0.1 * abs(rng.normal()))) for i in t],
        "G/grad_norm": [(int(i), float(2 + 0.1 * abs(rng.normal()))) for i in t],
        "G/adv_grad_share": [(int(i), float(v)) for i, v in zip(range(9, UPDATES, 10), share)],
        "val/ab_swd": [(int(19 + 20 * i), float(v)) for i, v in enumerate(q)],
    }


def _jumps(scores: list[float]) -> float:
    return float(np.abs(np.diff(scores)).max())


def _sweep(points: int, score=lambda r: r.score) -> list[float]:
    return [score(instability_score(sweep_run(lr))) for lr in np.logspace(-7, math.log10(2e-4), points)]


def test_a_sweep_of_the_discriminators_learning_rate_gives_a_score_with_no_jump():
    """Continuity: halving the grid step halves the largest step of the score (a cliff would keep
    it), and no step is more than a small part of the score's range."""
    coarse, fine = _sweep(13), _sweep(49)
    assert _jumps(fine) <= 0.6 * _jumps(coarse) * 13 / 25 * 2, (coarse, fine)
    assert _jumps(fine) <= 0.1 * (max(fine) - min(fine)), fine
    # it does rise where the images turn back up at the end
    assert fine[-1] > fine[len(fine) // 2] > fine[0]
    # the sweep crosses the degenerate rule: the label changes, the instability score does not jump there
    reps = [instability_score(sweep_run(lr)) for lr in np.logspace(-7, math.log10(2e-4), 49)]
    labels = [r.degenerate for r in reps]
    assert labels[0] is not None and labels[-1] is None
    # the loss-shape score (its own objective) keeps its documented cliff at that rule, and this
    # test sees it: its largest step does not shrink with the grid
    ls_coarse, ls_fine = _sweep(13, lambda r: r.loss_shape), _sweep(49, lambda r: r.loss_shape)
    assert _jumps(ls_fine) > 5.0 and _jumps(ls_fine) > 0.6 * _jumps(ls_coarse)
    # the adversarial share is reported as the continuous number it is
    shares = [r.adv_grad_share for r in reps]
    assert all(0 < s < 1 for s in shares) and shares[-1] > shares[0]


@pytest.mark.parametrize("mode, a, b", [("lsgan", 0.4, 0.1), ("hinge", 1.6, 0.3), ("wgan", 7.0, -40.0)])
def test_a_run_logged_as_vanilla_or_as_another_loss_type_scores_the_same(mode, a, b):
    """The same quality curve; the losses and gradient norms on another loss type's scale."""
    vanilla = sweep_run(2e-5)
    other = {k: list(v) for k, v in vanilla.items()}
    for tag in ("D/loss_real", "D/loss_fake", "G/adv"):
        other[tag] = [(s, a * v + b) for s, v in vanilla[tag]]
    for tag in ("D/grad_norm", "G/grad_norm"):
        other[tag] = [(s, a * v) for s, v in vanilla[tag]]
    if mode == "wgan":
        del other["D/chance_loss"]  # a critic has no chance level of its loss
    assert instability_score(other).score == instability_score(vanilla).score
    assert instability_score(other).components == instability_score(vanilla).components


def _curve(values) -> dict:
    return {"val/ab_swd": [(20 * (i + 1), float(v)) for i, v in enumerate(values)]}


def _frozen_d(quality) -> dict:
    """D learns nothing: flat losses at the chance level, chance AUC, a negligible adversarial share."""
    rng = np.random.default_rng(5)
    s = _curve(quality)
    s.update({
        "D/loss_real": [(i, math.log(2) + 1e-4 * rng.normal()) for i in range(UPDATES)],
        "D/loss_fake": [(i, math.log(2) + 1e-4 * rng.normal()) for i in range(UPDATES)],
        "D/auc": [(i, 0.5 + 0.02 * rng.normal()) for i in range(UPDATES)],
        "D/chance_loss": [(i, 2 * math.log(2)) for i in range(9, UPDATES, 10)],
        "G/adv": [(i, math.log(2)) for i in range(UPDATES)],
        "D/grad_norm": [(i, 1e-3) for i in range(UPDATES)],
        "G/grad_norm": [(i, 1.0) for i in range(UPDATES)],
        "G/adv_grad_share": [(i, 0.004) for i in range(9, UPDATES, 10)],
    })
    return s


@pytest.mark.parametrize("noise", [0.0, 0.005, 0.01, 0.03])
def test_a_degenerate_run_with_a_flat_bad_curve_never_scores_better_than_the_baseline(noise):
    """The baseline improves from 130 to 60 with a small final uptick and batch-to-batch noise of
    about 3 % of its level; the frozen-D run sits near 400 throughout, with relative noise from none
    to the baseline's own."""
    rng = np.random.default_rng(0)
    e = np.arange(EVALS)
    baseline = 60 + 70 * np.exp(-e / 2.5) + 60 * 0.03 * rng.normal(size=EVALS)
    baseline[-1] = baseline[:-1].min() + 4  # the small uptick at the end
    flat = 400 * (1 + noise * np.random.default_rng(1).normal(size=EVALS))
    flat[0] = 400 * (1 + 2 * noise)  # a flat curve barely improves from its first evaluation
    healthy = {k: v for k, v in sweep_run(1e-4).items() if not k.startswith("val/")}  # a D that learns
    base, frozen = instability_score({**healthy, **_curve(baseline)}), instability_score(_frozen_d(flat))
    assert frozen.degenerate is not None and base.degenerate is None
    if noise == 0.0:
        # motionless: nothing moved, so nothing regressed; equal, never better
        assert frozen.score == 0.0 <= base.score
    else:
        assert frozen.score >= base.score, (frozen.score, base.score)


def test_a_curve_made_uniformly_worse_gains_nothing():
    q = np.array([130.0, 100.0, 80.0, 85.0, 70.0, 76.0])
    for k in (2.0, 5.0, 40.0):
        assert regression(k * q) == pytest.approx(regression(q))
        assert volatility(k * q) == pytest.approx(volatility(q))
    assert progress_scale(q) == pytest.approx(60.0 + 13.0)


def test_the_score_is_continuous_where_a_curve_stops_improving():
    """From a curve that improves a little to one that goes nowhere: no step anywhere."""
    base = np.array([100.0, 99.0, 101.0, 98.0, 100.5, 99.5])
    scores = [instability_score(_curve(base - np.linspace(0, 1, 6) * d)).score for d in np.linspace(0, 20, 81)]
    assert _jumps(scores) < 0.5


def _report(score, final, progress, tag="val/ab_swd"):
    return InstabilityReport(score, quality_tag=tag, final=final, progress=progress)


def test_a_configuration_adds_the_seed_spread_on_top_of_its_runs_own_scores():
    runs = [_report(2.0, 60.0, 20.0), _report(3.0, 70.0, 20.0), _report(4.0, 80.0, 20.0)]
    value, p = configuration_instability(runs)
    assert p == pytest.approx(seed_spread([60, 70, 80], [20, 20, 20])) == pytest.approx(10.0 / 20.0)
    assert value == pytest.approx(3.0 + SCALE * p / 3)
    assert configuration_instability(runs[:1]) == (2.0, None)  # one seed: the run's own score
    assert seed_spread([60.0], [20.0]) is None
    assert seed_spread([60.0, 60.0], [20.0, 20.0]) == 0.0
    assert seed_spread([0.0, 1000.0], [1.0, 1.0]) == 1.0  # saturates


def test_each_seed_of_a_study_keeps_its_own_score_and_the_trial_adds_the_spread():
    from ganlab.study.objective import DIVERGED_INSTABILITY, seed_mean, seed_term
    from ganlab.study.spec import StudySpec

    spec = StudySpec(name="t", objectives=("ab_swd", "instability"))
    records = [{"objectives": {"ab_swd": 60.0, "instability": 2.0}}, {"objectives": {"ab_swd": 70.0, "instability": 4.0}},
               {"seed": 3, "diverged_step": 10}]
    per_seed, means = seed_mean(spec, records, seed_spread=0.3)
    assert per_seed["instability"] == [2.0, 4.0, DIVERGED_INSTABILITY]  # as a confirmation records each run
    assert means["instability"] == pytest.approx((2.0 + 4.0 + DIVERGED_INSTABILITY) / 3 + seed_term(0.3))
    assert means["ab_swd"] == pytest.approx(65.0)
    assert seed_term(None) == 0.0 and seed_term(1.0) == pytest.approx(SCALE / 3)


def test_the_report_can_say_when_a_configuration_is_indistinguishable_from_the_l1_only_control():
    from ganlab.study.evidence import paired_effect
    from ganlab.study.objective import like_l1_control

    rng = np.random.default_rng(0)
    control = {s: 400.0 + 10 * rng.normal() for s in range(8)}
    noise = [3.0, -2.5, 2.0, -3.5, 1.0, -0.5, 0.8, -0.3]  # paired differences about 0
    same = {s: v + noise[s] for s, v in control.items()}  # the images did not show the game
    better = {s: v - 60 + 3 * rng.normal() for s, v in control.items()}
    text = like_l1_control([0.16, 0.17, 0.15], paired_effect(same, control, "minimize"))
    assert text is not None and "indistinguishable from the L1-only control" in text and "0.16" in text
    assert like_l1_control([0.5, 0.6], paired_effect(better, control, "minimize")) is None
    # too few seeds for an interval: no claim either way
    few = {s: same[s] for s in range(3)}
    assert like_l1_control([0.16], paired_effect(few, control, "minimize")) is None
    assert like_l1_control([0.16], None) is None


def test_a_study_scored_with_the_earlier_formula_is_not_continued_with_this_one():
    import optuna

    from ganlab.errors import UsageError
    from ganlab.study.objective import STABILITY_FORMULA, agree_on_stability
    from ganlab.study.spec import StudySpec

    spec = StudySpec(name="s", objectives=("ab_swd", "instability"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    new = optuna.create_study(directions=["minimize", "minimize"])
    agree_on_stability(new, spec)
    assert new.user_attrs["stability_formula"] == STABILITY_FORMULA
    new.add_trial(optuna.trial.create_trial(values=[1.0, 2.0]))
    agree_on_stability(new, spec)  # the same formula: goes on
    old = optuna.create_study(directions=["minimize", "minimize"])
    old.add_trial(optuna.trial.create_trial(values=[40.0, 10.6]))  # scored before the formula was recorded
    with pytest.raises(UsageError, match="earlier instability formula.*--name NEW"):
        agree_on_stability(old, spec)
    quality_only = StudySpec(name="q", objectives=("ab_swd",))
    agree_on_stability(old, quality_only)  # no stability objective: nothing to agree on


def test_a_run_is_read_on_its_tasks_default_quality_curve(tmp_path):
    import json

    rows = [{"step": 20 * (i + 1), "val/ab_swd": a, "val/swd": s}
            for i, (a, s) in enumerate([(500, 120), (400, 100), (450, 90), (300, 130)])]
    for task, tag in (("colorize", "val/ab_swd"), ("paired", "val/swd")):
        run = tmp_path / task
        run.mkdir()
        (run / "stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (run / "config.json").write_text(json.dumps({"task": task}))
        rep = instability_from_run(run)
        assert rep.quality_tag == tag
        assert rep.score == instability_score({tag: [(r["step"], float(r[tag])) for r in rows]}).score
