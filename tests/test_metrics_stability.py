"""The stability scores on made-up series: the loss-shape score orders calm < oscillating < collapsing;
the instability score reads the quality curve; NaN means diverged."""

import json
import math

import numpy as np
import pytest

from ganlab.errors import UsageError
from ganlab.metrics.stability import (
    FORMULA,
    LOSS_WEIGHTS,
    RUN_WEIGHTS,
    SCALE,
    collapse_share,
    instability_from_run,
    instability_score,
    spike_share,
    swing,
)

STEPS = 400


def run_series(kind: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(STEPS)
    noise = lambda s: rng.normal(0, s, STEPS)  # noqa: E731
    if kind == "calm":
        d_real, d_fake = 0.35 + noise(0.01), 0.35 + noise(0.01)
        g_adv = 0.9 + noise(0.02)
        acc_r, acc_f = 0.6 + noise(0.02), 0.6 + noise(0.02)
        auc = 0.7 + noise(0.03)
        gd, gg = 1.0 + noise(0.05), 2.0 + noise(0.1)
    elif kind == "oscillating":
        wave = np.sin(2 * np.pi * t / 12)
        d_real, d_fake = 0.4 + 0.3 * wave + noise(0.02), 0.4 + 0.3 * wave + noise(0.02)
        g_adv = 1.2 - 0.9 * wave + noise(0.05)
        acc_r, acc_f = 0.7 + 0.2 * wave, 0.7 + 0.2 * wave
        auc = 0.75 + 0.2 * wave
        gd, gg = 1.0 + 0.5 * np.abs(wave) + noise(0.05), 2.0 + noise(0.1)
    elif kind == "collapsing":
        ramp = np.clip((t - 80) / 40, 0, 1)
        d_real = np.abs(0.35 * (1 - ramp) + 1e-3 + noise(5e-4))
        d_fake = np.abs(0.35 * (1 - ramp) + 1e-3 + noise(5e-4))
        g_adv = 0.9 + 7 * ramp + noise(0.1)
        acc_r, acc_f = np.minimum(1, 0.6 + 0.4 * ramp), np.minimum(1, 0.6 + 0.4 * ramp)
        auc = np.minimum(1, 0.7 + 0.3 * ramp)
        gd, gg = 1.0 * (1 - ramp) + 1e-3 + np.abs(noise(1e-4)), 2.0 + noise(0.1)
    else:
        raise ValueError(kind)
    series = {
        "D/loss_real": d_real,
        "D/loss_fake": d_fake,
        "G/adv": g_adv,
        "D/acc_real": acc_r,
        "D/acc_fake": acc_f,
        "D/auc": auc,
        "D/grad_norm": np.abs(gd),
        "G/grad_norm": np.abs(gg),
        "G/L1": 0.1 + noise(0.005),
    }
    out = {k: [(int(s), float(v)) for s, v in zip(t, vals)] for k, vals in series.items()}
    out["val/L1"] = [(s, 0.105) for s in range(99, STEPS, 100)]
    return out


def test_the_loss_shape_score_orders_calm_below_oscillating_below_collapsing():
    calm, osc, col = (instability_score(run_series(k)) for k in ("calm", "oscillating", "collapsing"))
    assert calm.loss_shape < osc.loss_shape < col.loss_shape
    assert not (calm.diverged or osc.diverged or col.diverged)
    assert calm.loss_shape < 0.5  # on the scale 0..10
    assert osc.diagnostics["oscillation"] > 3 * calm.diagnostics["oscillation"]
    assert col.diagnostics["collapse"] > 0.6
    assert calm.diagnostics["collapse"] == 0.0
    # the same flat quality curve in all three: the instability score does not read the losses
    assert calm.score == osc.score == col.score


def test_the_scores_are_the_documented_weighted_means_of_the_known_terms():
    s = run_series("oscillating")
    s["val/L1"] = [(99, 0.2), (199, 0.1), (299, 0.14), (399, 0.12)]
    rep = instability_score(s)
    c = rep.components
    assert set(c) == set(RUN_WEIGHTS) and not rep.unknown
    assert rep.score == pytest.approx(SCALE * sum(RUN_WEIGHTS[k] * v for k, v in c.items()) / sum(RUN_WEIGHTS.values()))
    scale = (0.2 - 0.1) + 0.1 * 0.2
    assert c["regression"] == pytest.approx((0.12 - 0.1) / scale)
    assert c["volatility"] == pytest.approx(min(1.0, (0.1 + 0.04 + 0.02 - 0.08) / (3 * scale) / 0.5))
    d = rep.diagnostics
    assert rep.loss_shape == pytest.approx(SCALE * sum(LOSS_WEIGHTS[k] * d[k] for k in LOSS_WEIGHTS) / sum(LOSS_WEIGHTS.values()))
    assert "I = 10 * (2 R + V) / 3" in FORMULA


def test_nan_anywhere_means_diverged_at_its_step():
    s = run_series("calm")
    s["G/grad_norm"][137] = (137, math.nan)
    s["D/loss_real"][250] = (250, math.inf)
    rep = instability_score(s)
    assert rep.diverged and math.isinf(rep.score)
    assert rep.diverged_step == 137 and rep.diverged_tag == "G/grad_norm"
    assert rep.to_dict()["score"] == "inf"


def test_stats_jsonl_with_nan_strings_is_read_and_diverges(tmp_path):
    rows = [{"step": i, "D/loss_real": 0.3, "D/loss_fake": 0.3, "G/adv": 1.0} for i in range(30)]
    rows[21]["G/adv"] = "nan"
    (tmp_path / "stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = instability_from_run(tmp_path)
    assert rep.diverged and rep.diverged_step == 21 and rep.diverged_tag == "G/adv"


def test_a_run_folder_without_stats_is_one_clear_line(tmp_path):
    with pytest.raises(UsageError, match="stats.jsonl"):
        instability_from_run(tmp_path)


def test_gradient_spikes_raise_the_score():
    s = run_series("calm")
    spiky = {k: list(v) for k, v in s.items()}
    for i in range(60, STEPS, 25):
        spiky["D/grad_norm"][i] = (i, 40.0)
    a, b = instability_score(s), instability_score(spiky)
    assert b.diagnostics["grad_spikes"] > 0.1 > a.diagnostics["grad_spikes"]
    assert b.loss_shape > a.loss_shape


def test_spike_share_counts_exceedances_of_the_running_median():
    x = np.ones(100)
    x[[20, 50, 80]] = 10.0
    assert spike_share(x) == pytest.approx(3 / 90)  # judged from the 10th value on


def test_train_validation_gap_counts():
    s = run_series("calm")
    s["val/L1"] = [(399, 0.15)]  # 50 % above the training L1 of 0.1
    rep = instability_score(s)
    assert rep.diagnostics["val_gap"] == pytest.approx(0.5, abs=0.05)


def test_swing_is_bounded_and_free_of_shift_and_scale():
    rng = np.random.default_rng(0)
    x = 1 + 0.1 * rng.normal(size=200)
    assert swing(x) == pytest.approx(swing(10 * x - 3), abs=1e-9)
    assert 0.0 <= swing(rng.normal(size=200) * 100) <= 1.0
    assert swing(x) < 0.2 < 0.8 < swing(np.sin(np.arange(200) * 2 * np.pi / 12))


def test_wasserstein_losses_do_not_trigger_the_collapse_rule():
    s = run_series("calm")
    s["D/loss_real"] = [(i, -0.5) for i, _ in s["D/loss_real"]]  # a critic's losses can be negative
    s["D/loss_fake"] = [(i, 0.5) for i, _ in s["D/loss_fake"]]
    assert collapse_share(s) == 0.0


def test_missing_series_are_listed_as_unknown_and_never_score_calm():
    rep = instability_score({"G/adv": [(i, 1.0) for i in range(50)]})
    assert set(rep.missing) == {"regression", "volatility"}
    assert rep.score == SCALE  # no quality curve: the worst score, never a calm 0
    assert {"collapse", "grad_spikes", "val_gap"} <= set(rep.diagnostics_unknown)
    assert "collapse" not in rep.diagnostics
    # no D update was logged: no adversarial game, so the loss-shape score never rates it calm
    assert rep.degenerate == "no adversarial signal" and rep.loss_shape >= SCALE
