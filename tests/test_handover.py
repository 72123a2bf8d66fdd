"""The hand-over from L1 pre-training (--pretrain-steps) to the adversarial stage, and the two
tricks that soften it (d-warmup, adv-ramp)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganlab.trick._registry import build_trick

from ganlab.trick._stack import TrickStack

from ganlab.trick import StepPlan, Trick
from ganlab.stats import StatsBus
from ganlab.testing import SyntheticPairs, TrickConformanceTests, bare_context, build_tiny, check_determinism, tiny_config
from ganlab.tricks.adv_ramp import ramp_weight


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def _run(model, data, start: int, stop: int) -> None:
    """Iterations ``start..stop-1`` as the trainer runs them: pre-training steps, then the step."""
    bus = StatsBus()
    with bus.activate():
        for step in range(start, stop):
            bus.step = step
            model.iterate(step, data)


# --------------------------------------------------------------------------------------------
# The hand-over in the core
# --------------------------------------------------------------------------------------------


def test_pretraining_trains_g_on_the_adversarial_stages_l1_term():
    """G's gradient in pre-training is lambda_l1 times the L1 gradient, as in the adversarial
    stage, so the Adam moments carried over are sized for that stage."""
    grads = {}
    for lam in (1.0, 100.0):
        cfg = tiny_config(pretrain_steps=1, steps=1, lambda_l1=lam)
        model = build_tiny(cfg)
        model.opt_g.step = lambda: None  # keep the gradient, change nothing
        _run(model, SyntheticPairs(cfg), 0, 1)
        grads[lam] = torch.cat([p.grad.flatten() for p in model.G.parameters() if p.grad is not None])
    assert ((grads[100.0] - 100.0 * grads[1.0]).norm() / grads[100.0].norm()).item() < 1e-5  # rounding only


def test_pretraining_with_lambda_zero_still_trains_on_l1():
    cfg = tiny_config(pretrain_steps=2, steps=1, lambda_l1=0.0)
    model = build_tiny(cfg)
    before = _flat(model.G)
    _run(model, SyntheticPairs(cfg), 0, 2)
    assert not torch.equal(before, _flat(model.G))


def test_the_first_adversarial_update_of_g_is_an_ordinary_one():
    """The size of G's first adversarial update against its last pre-training update: about 1
    when the moments match (on unscaled L1 pre-training it was about 15 with lambda_l1 = 100)."""
    P = 60
    cfg = tiny_config(pretrain_steps=P, steps=2)
    model, data = build_tiny(cfg), SyntheticPairs(cfg)
    _run(model, data, 0, P - 1)
    before = _flat(model.G)
    _run(model, data, P - 1, P)
    last_pretrain = (_flat(model.G) - before).norm()
    before = _flat(model.G)
    _run(model, data, P, P + 1)
    first_adversarial = (_flat(model.G) - before).norm()
    assert first_adversarial / last_pretrain < 3.0


def _learnable_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth texture whose colour is a function of its luminance: something a tiny G learns
    well in a few hundred steps (the conftest's random colour fields cannot be learnt from grey)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    b = np.zeros((size, size))
    for _ in range(3):
        fx, fy, ph = rng.uniform(0.5, 3), rng.uniform(0.5, 3), rng.uniform(0, 2 * np.pi)
        b += np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
    b = 0.5 + 0.45 * np.tanh(b)
    return (np.stack([b, b**2, 1 - b], -1) * 255).astype(np.uint8)


@pytest.fixture
def learnable_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "learnable"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(_learnable_image(rng, 48)).save(folder / f"img{i:02d}.png")
    return folder


# Margins over the pre-trained values after 10 adversarial steps, with the defaults (no trick).
# Measured on this set (seeds 0-2): val L1 moves by -1.5..+1.2 % and SWD by -2.5..+10 %; with
# pre-training on unscaled L1 (G's Adam moments 100x too small) L1 rose by 53-69 %, SWD by 41-127 %.
L1_MARGIN, SWD_MARGIN = 1.10, 1.25


def test_ten_adversarial_steps_keep_what_pretraining_learnt(tmp_path, learnable_dir):
    """``ganlab train --pretrain-steps 300 --steps 10``: validation L1 and SWD right after
    pre-training and 10 adversarial steps later. --lr 1e-3 brings the tiny G to the noise floor
    of its L1 training within 300 steps, the regime in which a real run's hand-over happens."""
    from rich.console import Console

    from ganlab.config import TrainConfig
    from ganlab.train import train

    P = 300
    cfg = TrainConfig(data=str(learnable_dir), size=32, batch_size=4, ngf=8, ndf=8, n_layers=2, lr=1e-3,
                      pretrain_steps=P, steps=10, eval_every=P, save_every=0, device="cpu", precision="fp32",
                      seed=0, out=str(tmp_path / "runs")).validate()
    got: dict[int, dict[str, float]] = {}
    train(cfg, on_eval=lambda step, m: got.__setitem__(step, m), progress=False, console=Console(quiet=True))
    pre, after = got[P], got[P + 10]
    assert after["val/L1"] <= L1_MARGIN * pre["val/L1"], (pre["val/L1"], after["val/L1"])
    assert after["val/swd"] <= SWD_MARGIN * pre["val/swd"], (pre["val/swd"], after["val/swd"])


# --------------------------------------------------------------------------------------------
# d-warmup
# --------------------------------------------------------------------------------------------


class TestDWarmupConformance(TrickConformanceTests):
    trick = "d-warmup"
    params = {"steps": 2}  # the 3 checked iterations cross the end of the warm-up


def test_d_warmup_updates_only_d_then_both():
    P, W = 3, 2
    cfg = tiny_config([("d-warmup", {"steps": W})], pretrain_steps=P, steps=W + 2)
    model, data = build_tiny(cfg), SyntheticPairs(cfg)
    _run(model, data, 0, P)
    g0, d0 = _flat(model.G), _flat(model.D)
    g_steps = [s["step"] for s in model.opt_g.state.values()][0].clone()
    _run(model, data, P, P + W)  # the warm-up: D learns, G stays the pre-trained one
    assert torch.equal(_flat(model.G), g0)
    assert not torch.equal(_flat(model.D), d0)
    assert torch.equal([s["step"] for s in model.opt_g.state.values()][0], g_steps)  # no G update at all
    _run(model, data, P + W, P + W + 1)
    assert not torch.equal(_flat(model.G), g0)


def test_d_warmup_plan_keeps_the_d_updates_of_tricks_before_it():
    trick = build_trick("d-warmup", {"steps": 5})
    cfg = tiny_config(pretrain_steps=10, steps=20)
    assert trick.plan(StepPlan(d_steps=3, g_steps=1), bare_context(step=10, cfg=cfg)) == StepPlan(3, 0)
    assert trick.plan(StepPlan(d_steps=3, g_steps=1), bare_context(step=14, cfg=cfg)) == StepPlan(3, 0)
    assert trick.plan(StepPlan(d_steps=3, g_steps=1), bare_context(step=15, cfg=cfg)) == StepPlan(3, 1)
    assert trick.plan(StepPlan(), bare_context(step=0, cfg=tiny_config(steps=20))) == StepPlan(1, 0)  # no pre-training
    stacked = build_tiny(tiny_config([("step-ratio", {"k": 2}), ("d-warmup", {"steps": 1})]))
    assert stacked.stack.plan(StepPlan(), stacked.ctx) == StepPlan(2, 0)


# --------------------------------------------------------------------------------------------
# adv-ramp
# --------------------------------------------------------------------------------------------


class TestAdvRampConformance(TrickConformanceTests):
    trick = "adv-ramp"
    params = {"steps": 2}  # the weight reaches 1 inside the checked iterations


def test_adv_ramp_cosine_is_deterministic():
    check_determinism("adv-ramp", {"steps": 4, "shape": "cosine", "start": 0.1})


def test_adv_ramp_weights():
    assert [ramp_weight(t, 4) for t in (0, 1, 2, 4, 9)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert ramp_weight(0, 4, start=0.2) == pytest.approx(0.2)
    assert ramp_weight(2, 4, start=0.2) == pytest.approx(0.6)
    assert ramp_weight(1, 4, shape="cosine") == pytest.approx(0.5 - 0.5 * np.cos(np.pi / 4))
    assert ramp_weight(2, 4, shape="cosine") == pytest.approx(0.5)
    assert ramp_weight(0, 0) == 1.0


def test_adv_ramp_scales_only_the_adversarial_term_from_the_hand_over():
    trick = build_trick("adv-ramp", {"steps": 10})
    cfg = tiny_config(pretrain_steps=20, steps=30)
    terms = {"adv": torch.tensor(2.0), "l1": torch.tensor(3.0), "fm": torch.tensor(4.0)}
    for step, weight in ((20, 0.0), (25, 0.5), (29, 0.9)):
        out = trick.g_loss(terms, None, bare_context(step=step, cfg=cfg))
        assert out["adv"].item() == pytest.approx(2.0 * weight)
        assert out["l1"] is terms["l1"] and out["fm"] is terms["fm"]
    assert trick.g_loss(terms, None, bare_context(step=30, cfg=cfg)) is terms  # ramp done: the step's own terms


class _L1Only(Trick):
    name = "_l1-only"

    def g_loss(self, terms, phase, ctx):
        return {k: v for k, v in terms.items() if k != "adv"}


def test_adv_ramp_makes_the_first_adversarial_update_of_g_an_l1_one():
    """At the hand-over (weight 0) G's update is exactly the lambda*L1 update, D's the plain one."""
    states = {}
    for name in ("ramp", "l1-only", "plain"):
        tricks = [("adv-ramp", {"steps": 10})] if name == "ramp" else []
        cfg = tiny_config(tricks, pretrain_steps=2, steps=3)
        model, data = build_tiny(cfg), SyntheticPairs(cfg)
        if name == "l1-only":
            model.step_fn.stack = TrickStack([_L1Only()], cfg.gan_mode)
        _run(model, data, 0, 3)
        states[name] = (_flat(model.G), _flat(model.D))
    assert torch.equal(states["ramp"][0], states["l1-only"][0])
    assert torch.equal(states["ramp"][1], states["plain"][1])
    assert not torch.equal(states["ramp"][0], states["plain"][0])
