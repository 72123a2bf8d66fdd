"""What the instability score must survive (docs/metrics.md): a shift or scale of a loss, a series
that was never logged, several updates inside one logged step, and a discriminator that learns
nothing -- the last one on real tiny training runs."""

import copy
import json
import math

import numpy as np
import pytest
import torch

from ganlab.metrics.stability import (
    DEGENERATE,
    SCALE,
    WEIGHTS,
    StabilityWindow,
    degenerate_run,
    instability_from_run,
    instability_score,
    seed_spread,
    separation_auc,
    window_terms,
)
from ganlab.stats import JsonlSink, StatsBus, read_series

N = 600  # updates


def per_update_values(seed: int = 0) -> dict[str, np.ndarray]:
    """One value per update of every tag a D and a G update report: a run that swings, with
    gradient spikes, a D that learns (AUC well above chance) and now and then wins outright."""
    rng = np.random.default_rng(seed)
    t = np.arange(N)
    wave = np.sin(2 * np.pi * t / 40)
    gd = 1.0 + 0.1 * rng.normal(size=N) ** 2
    gd[60::20] = 25.0
    return {
        "D/loss_real": 0.5 + 0.15 * wave + 0.03 * rng.normal(size=N),
        "D/loss_fake": 0.45 + 0.15 * wave + 0.03 * rng.normal(size=N),
        "D/auc": np.clip(0.85 + 0.14 * wave + 0.02 * rng.normal(size=N), 0, 1),
        "D/out_real": 1.0 + 0.3 * wave,
        "D/out_fake": -1.0 - 0.3 * wave,
        "D/grad_norm": gd,
        "G/adv": 1.5 - 0.4 * wave + 0.05 * rng.normal(size=N),
        "G/grad_norm": 3.0 + 0.2 * np.abs(rng.normal(size=N)),
        "G/L1": 0.2 * np.exp(-t / 300) + 0.05 + 0.002 * rng.normal(size=N),
        "G/adv_grad_share": np.clip(0.3 + 0.05 * rng.normal(size=N), 0, 1),
    }


QUALITY = [130.0, 112.0, 104.0, 109.0, 101.0, 118.0]  # val/swd at six evaluations


def as_series(values: dict[str, np.ndarray]) -> dict:
    series = {k: [(i, float(v)) for i, v in enumerate(x)] for k, x in values.items()}
    series["val/swd"] = [(99 + 100 * i, q) for i, q in enumerate(QUALITY)]
    series["val/L1"] = [(99 + 100 * i, 0.08) for i in range(len(QUALITY))]
    return series


# --- a shift or a positive scale of any loss series leaves the score unchanged ------------------


@pytest.mark.parametrize("loss, a, b", [("G", 1.0, 5.0), ("G", 3.0, 0.0), ("D", 0.2, -7.0), ("D", 10.0, 2.0)])
def test_a_shift_or_scale_of_a_loss_leaves_the_score_unchanged(loss, a, b):
    """G's adversarial loss, or D's (its real and fake terms together), times a > 0 plus b;
    their gradient norms scale with a."""
    values = per_update_values()
    base = instability_score(as_series(values))
    if loss == "G":
        values["G/adv"] = a * values["G/adv"] + b
    else:
        values["D/loss_real"] = a * values["D/loss_real"] + b
        values["D/loss_fake"] = a * values["D/loss_fake"]
        values["D/grad_norm"] = a * values["D/grad_norm"]
    moved = instability_score(as_series(values))
    assert moved.score == pytest.approx(base.score, abs=1e-9)
    assert moved.components == pytest.approx(base.components, abs=1e-9)


def test_a_wasserstein_critic_shifted_by_a_constant_scores_the_same():
    """A critic's output + c changes its accuracy at a fixed threshold and both of its loss
    terms, not its loss, its gradients or its ranking of real above fake."""
    values = per_update_values()
    base = instability_score(as_series(values))
    c = 50.0
    values["D/out_real"] = values["D/out_real"] + c
    values["D/out_fake"] = values["D/out_fake"] + c
    values["D/acc_real"] = np.ones(N)  # everything is "real" now at threshold 0
    values["D/acc_fake"] = np.zeros(N)
    values["D/loss_real"] = values["D/loss_real"] - c  # -E[D(real)]
    values["D/loss_fake"] = values["D/loss_fake"] + c  # +E[D(fake)]
    assert instability_score(as_series(values)).score == pytest.approx(base.score, abs=1e-9)
    # AUC, what the collapse term reads, is unchanged by any shift or positive scale of D's output
    r, f = torch.randn(64), torch.randn(64) + 0.5
    assert float(separation_auc(r, f)) == pytest.approx(float(separation_auc(3 * r + c, 3 * f + c)))


@pytest.mark.parametrize("mode, a, b", [("vanilla", 1.0, 0.0), ("lsgan", 0.4, 0.1), ("hinge", 1.6, 0.3), ("wgan", 7.0, -40.0)])
def test_switching_the_loss_type_with_the_same_trajectory_leaves_the_score_unchanged(mode, a, b):
    """The same run seen through each loss type: its losses and D's outputs on that loss's own
    scale (an affine map of the same shape), the same ranking of real above fake, the same
    quality curve. The stability objective must not rank loss types by their units."""
    values = per_update_values()
    base = instability_score(as_series(values))
    for tag in ("D/loss_real", "D/loss_fake", "G/adv", "D/out_real", "D/out_fake"):
        values[tag] = a * values[tag] + b
    for tag in ("D/grad_norm", "G/grad_norm"):
        values[tag] = a * values[tag]
    other = instability_score(as_series(values))
    assert not other.degenerate and not base.degenerate
    assert other.score == pytest.approx(base.score, abs=1e-9)


# --- a series that was not logged is unknown, never 0 ---------------------------------------------


def test_a_term_whose_series_was_not_logged_is_unknown_not_zero():
    values = per_update_values()
    full = instability_score(as_series(values))
    assert full.components["grad_spikes"] > 0.2
    del values["D/grad_norm"], values["G/grad_norm"]
    rep = instability_score(as_series(values))
    assert "grad_spikes" in rep.unknown and "grad_spikes" not in rep.components
    known = rep.components
    assert rep.score == pytest.approx(SCALE * sum(WEIGHTS[k] * v for k, v in known.items()) / sum(WEIGHTS[k] for k in known))


def test_a_run_without_an_adversarial_phase_is_never_perfectly_stable():
    """L1 only (or pre-training only): no D update was logged. It was 0, the calmest score."""
    values = per_update_values()
    calm = {k: v for k, v in values.items() if k in ("G/L1",)}
    rep = instability_score(as_series(calm))
    assert rep.degenerate == DEGENERATE
    assert {"collapse", "oscillation", "grad_spikes"} <= set(rep.unknown)
    assert rep.score > instability_score(as_series(values)).score


# --- several updates inside one logged step -------------------------------------------------------


def _through_the_bus(values: dict[str, np.ndarray], updates_per_step: int, path) -> dict:
    """Report the per-update values as a trainer would with ``updates_per_step`` D and G updates
    per step, flush into stats.jsonl, and read it back."""
    sink = JsonlSink(path)
    bus = StatsBus([sink])
    with bus.activate():
        for step in range(N // updates_per_step):
            bus.step = step
            for j in range(updates_per_step):
                i = step * updates_per_step + j
                for tag, x in values.items():
                    bus.add(tag, torch.tensor(x[i], dtype=torch.float64))
            done = (step + 1) * updates_per_step
            if done % 100 == 0:  # an evaluation after every 100 updates, as in as_series
                bus.add("val/swd", QUALITY[done // 100 - 1])
                bus.add("val/L1", 0.08)
            if (step + 1) % 10 == 0:
                bus.flush()
    bus.flush()
    sink.close()
    return read_series(path)


def test_spikes_inside_a_step_with_several_updates_are_not_averaged_away(tmp_path):
    values = per_update_values()
    one = instability_score(_through_the_bus(values, 1, tmp_path / "one.jsonl"))
    five_series = _through_the_bus(values, 5, tmp_path / "five.jsonl")
    five = instability_score(five_series)
    assert one.components["grad_spikes"] > 0.2
    assert five.score == pytest.approx(one.score, abs=1e-6)
    assert five.components == pytest.approx(one.components, abs=1e-6)
    # TensorBoard and the console still get the mean per step, and the largest update beside it
    row = dict(five_series["D/grad_norm@max"])
    assert row[120 // 5] == pytest.approx(25.0)


# --- the adversarial gradient share is measured without touching the update -----------------------


def _step(measure: bool):
    from ganlab.trick._stack import TrickStack
    from ganlab.trick import NetSpec, StepContext
    from ganlab.nets import build_discriminator, build_generator
    from ganlab.train.step import Pix2PixStep

    torch.manual_seed(0)
    spec = NetSpec(size=32, ngf=8, ndf=8)
    G, D = build_generator(spec), build_discriminator(spec)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ctx = StepContext(cfg=None, G=G, D=D, opt_g=opt_g, opt_d=opt_d, rng=torch.Generator().manual_seed(1),
                      device=torch.device("cpu"), gan_mode="vanilla")
    step = Pix2PixStep(G, D, opt_g, opt_d, gan_mode="vanilla", lambda_l1=100.0, stack=TrickStack([], "vanilla"), ctx=ctx)
    step.measure = measure
    return step


def test_measuring_the_gradient_share_leaves_the_weights_identical():
    torch.manual_seed(3)
    batches = [(torch.rand(4, 1, 32, 32) * 2 - 1, torch.rand(4, 2, 32, 32) * 2 - 1) for _ in range(3)]
    results = []
    for measure in (False, True):
        step = _step(measure)
        bus = StatsBus()
        torch.manual_seed(7)  # dropout draws
        with bus.activate():
            for i, batch in enumerate(batches):
                bus.step = step.ctx.step = i
                step(lambda b=batch: b)
        rows = dict(bus.flush())
        results.append((copy.deepcopy(step.G.state_dict()), copy.deepcopy(step.D.state_dict()), rows))
    (g0, d0, rows0), (g1, d1, rows1) = results
    for a, b in ((g0, g1), (d0, d1)):
        for k in a:
            assert torch.equal(a[k], b[k]), k
    assert "G/adv_grad_share" not in rows0[2]
    share = rows1[2]["G/adv_grad_share"]
    assert 0.0 < share < 1.0
    assert rows1[2]["D/chance_loss"] == pytest.approx(2 * math.log(2))
    assert 0.0 <= rows0[2]["D/auc"] <= 1.0  # every update


# --- degenerate runs ------------------------------------------------------------------------------


def _chance_series(mode_chance: float | None, auc: float, loss: float) -> dict:
    rng = np.random.default_rng(1)
    s = {
        "D/loss_real": [(i, loss / 2 + 0.01 * rng.normal()) for i in range(300)],
        "D/loss_fake": [(i, loss / 2 + 0.01 * rng.normal()) for i in range(300)],
        "D/auc": [(i, auc + 0.08 * rng.normal()) for i in range(300)],
        "G/adv_grad_share": [(i, 0.2) for i in range(9, 300, 10)],
    }
    if mode_chance is not None:
        s["D/chance_loss"] = [(i, mode_chance) for i in range(9, 300, 10)]
    return s


def test_a_discriminator_at_chance_is_named_in_every_loss_type():
    two_ln2 = 2 * math.log(2)
    assert degenerate_run(_chance_series(two_ln2, 0.5, two_ln2))[0] == DEGENERATE  # vanilla
    assert degenerate_run(_chance_series(0.5, 0.48, 0.52))[0] == DEGENERATE  # lsgan, loss above chance
    assert degenerate_run(_chance_series(None, 0.5, -30.0))[0] == DEGENERATE  # a critic: no chance level of its loss
    assert degenerate_run(_chance_series(two_ln2, 0.9, 0.9))[0] is None  # D learns
    # D's loss well below chance while its AUC is low: it learnt something; not labelled by this rule
    assert degenerate_run(_chance_series(two_ln2, 0.55, 0.9))[0] is None
    # G ignores D: the adversarial term's share of G's gradient is negligible
    s = _chance_series(two_ln2, 0.9, 0.9)
    s["G/adv_grad_share"] = [(i, 0.002) for i in range(9, 300, 10)]
    assert degenerate_run(s)[0] == DEGENERATE


def test_a_degenerate_run_ranks_below_every_healthy_one():
    calm = _chance_series(2 * math.log(2), 0.5, 2 * math.log(2))
    rep = instability_score(calm)
    assert rep.degenerate == DEGENERATE and rep.score >= SCALE >= rep.base_score
    assert instability_score(as_series(per_update_values())).score < SCALE


def test_seed_spread_is_a_relative_spread_and_unknown_for_one_seed():
    assert seed_spread([100.0]) is None
    assert seed_spread([100.0, 100.0, 100.0]) == 0.0
    assert seed_spread([90.0, 100.0, 110.0]) == pytest.approx(0.1 / 0.2)
    assert seed_spread([1.0, 2.0]) == seed_spread([10.0, 20.0]) == 1.0
    rep = instability_score(as_series(per_update_values()), seed_finals=[90.0, 100.0, 110.0])
    assert rep.components["seed_spread"] == pytest.approx(0.5) and "seed_spread" not in rep.unknown


def test_the_moving_window_gives_the_terms_of_the_last_updates():
    values = per_update_values()
    series = as_series(values)
    window = StabilityWindow(window=200)
    for start in range(0, N, 10):  # rows as a flush hands them over
        rows = [(i, {k: float(x[i]) for k, x in values.items()}) for i in range(start, start + 10)]
        got = window.update(rows)
    assert got == pytest.approx(window_terms(series, window=200))
    assert {"collapse", "oscillation", "grad_spikes", "auc", "adv_grad_share"} <= set(got)


# --- end to end: real tiny runs on the sample set --------------------------------------------------

TINY = ["--size", "32", "--batch-size", "4", "--ngf", "8", "--ndf", "8", "--steps", "120", "--precision", "fp32",
        "--device", "cpu", "--no-progress", "--seed", "0", "--eval-every", "40", "--save-every", "0"]
RUNS = {"baseline": [], "frozen D": ["--trick", "ttur:lr_d=1e-7"], "weak D": ["--trick", "weak-d:width=0.05,dropout=0.9"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from ganlab.cli import main

    root = tmp_path_factory.mktemp("trust")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for name, extra in RUNS.items():
            folder = root / name.replace(" ", "-")
            assert main(["train", *TINY, "--out", str(folder), *extra]) == 0
            (out[name],) = [p for p in folder.iterdir() if p.is_dir()]
    finally:
        torch.set_num_threads(before)
    return out


def test_a_discriminator_that_learns_nothing_is_never_rated_calmer_than_the_baseline(runs):
    reps = {name: instability_from_run(run) for name, run in runs.items()}
    base = reps["baseline"]
    assert base.degenerate is None and math.isfinite(base.score)
    assert "degenerate" not in json.loads((runs["baseline"] / "status.json").read_text())
    for name in ("frozen D", "weak D"):
        rep = reps[name]
        assert rep.degenerate == DEGENERATE or rep.score > base.score, (name, rep)
        assert rep.score > base.score, (name, rep.score, base.score)
        if rep.degenerate:
            assert json.loads((runs[name] / "status.json").read_text())["degenerate"] == DEGENERATE


def test_eval_shows_the_label_in_its_table_and_metrics_json(runs):
    from ganlab.cli import main

    run = runs["frozen D"]
    assert main(["eval", str(run), "--no-download", "--device", "cpu", "--n", "4"]) == 0
    inst = json.loads((run / "metrics.json").read_text())["metrics"]["instability"]
    assert inst["degenerate"] == DEGENERATE and "D/auc" in inst["degenerate_reason"]
    assert inst["value"] >= SCALE and "seed_spread" in inst["unknown"]
    import io

    from rich.console import Console

    from ganlab.evaluate import print_table

    buf = io.StringIO()
    print_table(json.loads((run / "metrics.json").read_text()), Console(file=buf, width=300))
    (row,) = [line for line in buf.getvalue().splitlines() if "degenerate run" in line]
    assert DEGENERATE in row and "D/auc" in row
