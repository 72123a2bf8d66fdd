"""The stabilisers of today's GAN practice do what their official code does, under ganlab's step.

- rpgan: the relativistic pairing loss on paired (per patch) logits, in D's and G's update;
- r1/r2: zero at gamma 0, equal to a hand-computed gradient norm on a tiny D, r2 at the fakes;
- ada: p rises while D memorises a tiny set and falls when r_t < 0.6, by ADA's step size;
- diffaugment: one geometric transform for the condition and the image, and G trained through T;
- lecam: the anchors are the EMAs of D's outputs; the term is its formula;
- bcr: the consistency term with the same T for condition and image;
- feature matching: zero for identical pairs, on every scale of a multi-scale D;
- multiscale-d: its FLOPs and activations reach ganlab bench's count and the memory estimate;
- spectral norm in G.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganlab import losses
from ganlab.errors import UsageError
from ganlab.stats import StatsBus
from ganlab.testing import (
    SyntheticPairs,
    TrickConformanceTests,
    bare_context,
    build_tiny,
    check_identity,
    run_iterations,
    tiny_config,
)
from ganlab.train.flops import PassCounter, model_flops, net_flops, plan_passes, session_step_flops, step_flops
from ganlab.train.memory import estimate
from ganlab.nets import build_discriminator
from ganlab.trick import NetSpec, Phase
from ganlab.trick._registry import build_trick
from ganlab.tricks._augment import ada_pair, diffaugment_pair
from ganlab.tricks.bcr import consistency_view, per_sample
from ganlab.tricks.feature_matching import FeatureTap, feature_matching_loss
from ganlab.tricks.lecam import lecam_term
from ganlab.tricks.multiscale_d import MultiscaleDiscriminator, layers_that_fit
from ganlab.tricks._penalty import gamma_at

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one CPU thread is fastest and reproducible

NEW = ("r2", "ada", "diffaugment", "lecam", "bcr", "feature-matching", "multiscale-d")


def _same(a, b) -> bool:
    return all(torch.allclose(x, y, rtol=1e-5, atol=1e-7) for x, y in zip(a, b))


def _pair(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g) * 2 - 1, torch.rand(n, 2, size, size, generator=g) * 2 - 1


# --------------------------------------------------------------------------------------------
# rpgan: the relativistic pairing loss
# --------------------------------------------------------------------------------------------


def test_relativistic_loss_is_its_formula_on_paired_logits():
    g = torch.Generator().manual_seed(0)
    d_real, d_fake = torch.randn(3, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g)
    want = torch.log1p(torch.exp(-(d_real - d_fake))).mean()
    assert losses.relativistic(d_real, d_fake).item() == pytest.approx(want.item(), rel=1e-6)
    # pairing per patch logit, not per mean: the two differ
    unpaired = F.softplus(-(d_real.mean() - d_fake.mean()))
    assert abs(losses.relativistic(d_real, d_fake).item() - unpaired.item()) > 1e-3
    with pytest.raises(ValueError, match="pairs"):
        losses.relativistic(d_real, d_fake[:, :, :2])


def test_rpgan_trains_d_on_the_paired_difference():
    model = build_tiny(tiny_config(gan_mode="rpgan"))
    cond, real = SyntheticPairs(model.cfg)()
    with torch.no_grad():
        fake = model.step_fn.generate(cond)
    D0 = copy.deepcopy(model.D)
    model.step_fn.d_update(cond, real, fake)
    got = [p.grad.clone() for p in model.D.parameters()]
    d_fake, d_real = D0(torch.cat((cond, fake), 1)), D0(torch.cat((cond, real), 1))  # the step's order
    want = torch.autograd.grad(F.softplus(-(d_real - d_fake)).mean(), list(D0.parameters()), retain_graph=True)
    assert _same(got, want)
    halved = torch.autograd.grad(0.5 * F.softplus(-(d_real - d_fake)).mean(), list(D0.parameters()))
    assert not _same(got, halved)  # R3GAN's loss is not halved


def test_rpgan_trains_g_against_the_real_pair():
    model = build_tiny(tiny_config(gan_mode="rpgan"))
    cond, real = SyntheticPairs(model.cfg)()
    G0, D0 = copy.deepcopy(model.G), copy.deepcopy(model.D)
    torch.manual_seed(7)
    fake = model.step_fn.generate(cond)
    model.step_fn.g_update(cond, real, fake)
    got = [p.grad.clone() for p in model.G.parameters()]

    def by_hand(adv):
        torch.manual_seed(7)
        f = G0(cond)
        D0.requires_grad_(False)
        d_f = D0(torch.cat((cond, f), 1))
        d_r = D0(torch.cat((cond, real), 1))
        return torch.autograd.grad(adv(d_f, d_r) + model.cfg.lambda_l1 * losses.l1(f, real), list(G0.parameters()))

    assert _same(got, by_hand(lambda d_f, d_r: F.softplus(-(d_f - d_r)).mean()))
    assert not _same(got, by_hand(lambda d_f, d_r: losses.g_adv_term("vanilla", d_f)))


@pytest.mark.parametrize("trick, reason", [("wgan-gp", "rpgan is another loss"), ("soft-labels", "targets"),
                                           ("label-flip", "targets")])
def test_rpgan_refuses_what_it_cannot_combine_with(trick, reason):
    with pytest.raises(UsageError, match=reason):
        build_tiny(tiny_config([trick], gan_mode="rpgan"))


def test_rpgan_flops_count_the_real_pass_of_g():
    cfg = tiny_config(gan_mode="rpgan", batch_size=2)
    _counted_equals_declared(cfg, plan_passes(1, 1, 0, d_per_g_update=1))


# --------------------------------------------------------------------------------------------
# R1 and R2
# --------------------------------------------------------------------------------------------


class _SquareD(nn.Module):
    """D(cond, x) = sum over pixels of w * x^2 on the image channels: one logit per sample,
    gradient 2 w x, so the penalty is known by hand and depends on where it is taken."""

    def __init__(self, size):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1, 1, 2 * size * size).view(1, 2, size, size))

    def forward(self, both):
        return (self.w * both[:, 1:] ** 2).flatten(1).sum(1, keepdim=True)


@pytest.mark.parametrize("name, at", [("r1", "real"), ("r2", "fake")])
def test_penalty_equals_the_hand_computed_gradient_norm(name, at):
    size, gamma = 4, 0.7
    D = _SquareD(size)
    cond, real = _pair(3, size, seed=1)
    _, fake = _pair(3, size, seed=2)
    d_forward = lambda c, x: D(torch.cat((c, x), 1))  # noqa: E731
    phase = Phase(cond=cond, real=real, fake=fake, d_real=d_forward(cond, real), d_fake=d_forward(cond, fake), d_forward=d_forward)
    term = build_trick(name, {"gamma": gamma}).d_loss({"real": torch.zeros(())}, phase, bare_context(0))[name]
    x = real if at == "real" else fake
    want = 0.5 * gamma * (2 * D.w * x).flatten(1).pow(2).sum(1).mean()
    assert term.item() == pytest.approx(want.item(), rel=1e-5)
    other = fake if at == "real" else real
    assert abs(term.item() - 0.5 * gamma * (2 * D.w * other).flatten(1).pow(2).sum(1).mean().item()) > 1e-3
    (g,) = torch.autograd.grad(term, D.w)  # a double backward reaches D's weights
    assert g.abs().sum() > 0


@pytest.mark.parametrize("gan_mode", ["vanilla", "rpgan"])
def test_r1_and_r2_at_gamma_zero_are_bit_identical_to_the_plain_loss(gan_mode):
    for name in ("r1", "r2"):
        assert check_identity(name, config={"gan_mode": gan_mode})


def test_gamma_follows_r3gans_cosine_decay():
    ctx = bare_context(0, total_steps=100)
    values = []
    for step in (0, 50, 100, 200):
        ctx.step = step
        values.append(gamma_at(2.0, "cosine", 0.1, ctx))
    assert values[0] == pytest.approx(2.0)
    assert values[1] == pytest.approx(0.2 + 0.5 * 1.8 * (1 + math.cos(math.pi * 0.5)))
    assert values[2] == pytest.approx(0.2, abs=1e-3) and values[3] == pytest.approx(0.2)
    assert gamma_at(2.0, "constant", 0.1, ctx) == 2.0


def test_r1_and_r2_stack_and_r2_refuses_wgan_gp():
    model = build_tiny(tiny_config(["r1", "r2"], gan_mode="rpgan"))
    rows = run_iterations(model, SyntheticPairs(model.cfg), 0, 2)
    assert all("D/r1" in r and "D/r2" in r for _, r in rows)
    with pytest.raises(UsageError, match="r2 cannot be combined with --trick wgan-gp"):
        build_tiny(tiny_config(["r2", "wgan-gp"]))


# --------------------------------------------------------------------------------------------
# ADA
# --------------------------------------------------------------------------------------------


def _ada_phase(d_real, d_fake):
    return Phase(cond=None, real=None, fake=None, d_real=d_real, d_fake=d_fake, d_forward=None)


def test_ada_p_falls_when_r_t_is_below_the_target_by_adas_step():
    ctx = bare_context(0)
    trick = build_trick("ada", {"p_init": 0.5, "kimg": 0.1})
    step = ctx.cfg.batch_size * 4 / (0.1 * 1000)  # batch * interval / (kimg * 1000)
    confused = torch.tensor([[1.0, -1.0, -1.0, -2.0]])  # r_t = -0.5 < 0.6
    for i in range(4):
        trick.d_loss({}, _ada_phase(confused, confused), ctx)
        trick.after_d_update(ctx)
        if i < 3:
            assert trick.p == 0.5  # adjusted every 4 D updates only
    assert trick.p == pytest.approx(0.5 - step)
    sure = torch.ones(1, 4)  # r_t = 1 > 0.6
    for _ in range(4):
        trick.d_loss({}, _ada_phase(sure, sure), ctx)
        trick.after_d_update(ctx)
    assert trick.p == pytest.approx(0.5)
    for _ in range(40):  # never below 0
        trick.d_loss({}, _ada_phase(confused, confused), ctx)
        trick.after_d_update(ctx)
    assert trick.p == 0.0


def test_ada_p_rises_while_d_memorises_a_tiny_set():
    # p moves by 2 * 4 / (0.4 * 1000) = 0.02 per adjustment; a fast D learns the two images by heart
    model = build_tiny(tiny_config([("ada", {"kimg": 0.4})], batch_size=2, lr=1e-3))
    cond, real = SyntheticPairs(model.cfg)()  # two images, shown again and again
    rows = run_iterations(model, lambda: (cond, real), 0, 40)
    trick = model.stack.tricks[0]
    r_t = [r["tricks/ada_rt"] for _, r in rows if "tricks/ada_rt" in r]
    assert len(r_t) == 10
    assert sum(v > 0.6 for v in r_t) >= 6, r_t  # D is sure of the images it has learnt ...
    p = 0.0
    for v in r_t:  # ... and p follows sign(r_t - 0.6) by ADA's step
        p = max(p + math.copysign(0.02, v - 0.6), 0.0)
    assert trick.p == pytest.approx(p) and trick.p >= 0.04, (trick.p, r_t)
    assert [r["tricks/ada_p"] for _, r in rows][-1] == pytest.approx(trick.p)


def test_ada_augments_condition_and_image_with_one_geometry():
    cond, img = _pair(8, 16)
    img = torch.cat((cond, cond), 1)  # the image repeats the condition: one geometry keeps them equal
    c, x = ada_pair(cond, img, 1.0, torch.Generator().manual_seed(0), chroma=True, brightness_std=0, contrast_std=0,
                    saturation_std=0)
    assert torch.equal(c, x[:, :1]) and torch.equal(c, x[:, 1:])
    assert not torch.equal(c, cond)  # something moved
    c, x = ada_pair(cond, img, 1.0, torch.Generator().manual_seed(0), chroma=True)
    assert not torch.allclose(x[:, :1], c)  # colour changes the image channels ...
    assert torch.equal(c, ada_pair(cond, img, 1.0, torch.Generator().manual_seed(0), chroma=True, brightness_std=0,
                                   contrast_std=0, saturation_std=0)[0])  # ... and never the condition


class TestAdaWhileAugmenting(TrickConformanceTests):
    trick = "ada"
    params = {"p_init": 0.6, "kimg": 0.01}  # p moves every 4 updates; the state round trip covers it


# --------------------------------------------------------------------------------------------
# DiffAugment
# --------------------------------------------------------------------------------------------


def test_diffaugment_translates_condition_and_image_together_and_colours_the_image_only():
    cond, _ = _pair(8, 16)
    img = torch.cat((cond, cond), 1)
    c, x = diffaugment_pair(cond, img, "translation", torch.Generator().manual_seed(3))
    assert torch.equal(c, x[:, :1]) and torch.equal(c, x[:, 1:]) and not torch.equal(c, cond)
    for chroma in (False, True):
        c, x = diffaugment_pair(cond, img, "color,cutout", torch.Generator().manual_seed(3), chroma=chroma)
        assert torch.equal(c, cond) and not torch.equal(x, img)
        assert (x == 0).flatten(1).float().mean(1).min() >= 1 / 16  # every sample lost a square (clipped at a corner: 4x4)
    # a/b: no cast -- the colour operations only scale the chroma, so a grey image stays grey
    _, x = diffaugment_pair(cond, torch.zeros_like(img), "color", torch.Generator().manual_seed(3), chroma=True)
    assert torch.equal(x, torch.zeros_like(img))
    _, x = diffaugment_pair(cond, torch.zeros_like(img), "color", torch.Generator().manual_seed(3), chroma=False)
    assert not torch.equal(x, torch.zeros_like(img))  # RGB: brightness moves it


def test_diffaugment_is_in_g_update():
    model = build_tiny(tiny_config([("diffaugment", {})]))
    cond, real = SyntheticPairs(model.cfg)()
    G0, D0 = copy.deepcopy(model.G), copy.deepcopy(model.D)
    state = model.ctx.rng.get_state()
    torch.manual_seed(7)
    fake = model.step_fn.generate(cond)
    model.step_fn.g_update(cond, real, fake)
    got = [p.grad.clone() for p in model.G.parameters()]

    def by_hand(augment: bool):
        torch.manual_seed(7)
        f = G0(cond)
        c, shown = (diffaugment_pair(cond, f, "color,translation,cutout", torch.Generator().set_state(state), chroma=True)
                    if augment else (cond, f))
        D0.requires_grad_(False)
        adv = losses.g_adv_term("vanilla", D0(torch.cat((c, shown), 1)))
        return torch.autograd.grad(adv + model.cfg.lambda_l1 * losses.l1(f, real), list(G0.parameters()))

    assert _same(got, by_hand(True))
    assert not _same(got, by_hand(False))


def test_augmentations_refuse_each_other():
    with pytest.raises(UsageError, match="augment"):
        build_tiny(tiny_config(["ada", "diffaugment"]))


# --------------------------------------------------------------------------------------------
# LeCam
# --------------------------------------------------------------------------------------------


def test_lecam_anchors_are_the_emas_of_ds_outputs():
    trick = build_trick("lecam", {"lambda": 0.3, "start": 2})
    ctx = bare_context(0)
    g = torch.Generator().manual_seed(0)
    a_r = a_f = 0.0
    for step in range(6):
        ctx.step = step
        d_real, d_fake = torch.randn(2, 1, 3, 3, generator=g) + 1, torch.randn(2, 1, 3, 3, generator=g) - 1
        terms = trick.d_loss({}, _ada_phase(d_real, d_fake), ctx)
        decay = 0.99 if step >= 2 else 0.0  # lecam-gan: no averaging before start_itr
        a_r = decay * a_r + (1 - decay) * d_real.mean().item()
        a_f = decay * a_f + (1 - decay) * d_fake.mean().item()
        assert trick.anchor_real.item() == pytest.approx(a_r, rel=1e-5)
        assert trick.anchor_fake.item() == pytest.approx(a_f, rel=1e-5)
        want = (F.relu(d_real - a_f) ** 2).mean() + (F.relu(a_r - d_fake) ** 2).mean()
        assert terms["lecam"].item() == pytest.approx(0.5 * 0.3 * want.item(), rel=1e-5)


def test_lecam_term_is_zero_inside_the_anchors():
    d_real, d_fake = torch.full((2, 1, 2, 2), -1.0), torch.full((2, 1, 2, 2), 1.0)
    assert lecam_term(d_real, d_fake, torch.tensor(0.0), torch.tensor(0.0)).item() == 0.0
    assert lecam_term(d_fake, d_real, torch.tensor(0.0), torch.tensor(0.0)).item() == pytest.approx(2.0)


# --------------------------------------------------------------------------------------------
# bCR
# --------------------------------------------------------------------------------------------


def test_bcr_is_the_squared_difference_under_one_transform_of_the_pair():
    cond, _ = _pair(4, 16)
    img = torch.cat((cond, cond), 1)
    c, x = consistency_view(cond, img, 0.125, torch.Generator().manual_seed(1))
    assert torch.equal(c, x[:, :1]) and torch.equal(c, x[:, 1:])

    D = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1))
    cond, real = _pair(4, 16, seed=5)
    _, fake = _pair(4, 16, seed=6)
    d_forward = lambda c, x: D(torch.cat((c, x), 1))  # noqa: E731
    phase = Phase(cond=cond, real=real, fake=fake, d_real=d_forward(cond, real), d_fake=d_forward(cond, fake), d_forward=d_forward)
    ctx = bare_context(9)
    state = ctx.rng.get_state()
    got = build_trick("bcr", {"lambda_real": 10.0, "lambda_fake": 2.0}).d_loss({}, phase, ctx)["bcr"]
    gen = torch.Generator().set_state(state)
    want = 0.0
    for w, x, d_x in ((10.0, real, phase.d_real), (2.0, fake, phase.d_fake)):
        d_t = d_forward(*consistency_view(cond, x, 0.125, gen))
        want = want + w * (per_sample(d_x) - per_sample(d_t)).pow(2).mean()
    assert got.item() == pytest.approx(0.5 * want.item(), rel=1e-6)


def test_bcr_flops_and_memory_count_its_two_passes():
    cfg = tiny_config(["bcr"], batch_size=2)
    _counted_equals_declared(cfg, plan_passes(1, 1, 0, d_per_d_update=2))
    plain, with_bcr = estimate(tiny_config()), estimate(cfg)
    assert with_bcr.fixed_bytes == plain.fixed_bytes and with_bcr.per_image_bytes > plain.per_image_bytes


# --------------------------------------------------------------------------------------------
# Feature matching and the multi-scale D
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tricks", [["feature-matching"], ["feature-matching", "multiscale-d"]])
def test_feature_matching_is_zero_for_identical_pairs(tricks):
    model = build_tiny(tiny_config(tricks))
    D = model.D.eval()  # the same statistics for both passes
    cond, real = SyntheticPairs(model.cfg)()
    d_forward = lambda c, x: D(torch.cat((c, x), 1))  # noqa: E731
    fake = real.clone().requires_grad_(True)
    phase = Phase(cond=cond, real=real, fake=fake, d_real=None, d_fake=d_forward(cond, fake), d_forward=d_forward)
    fm = next(t for t in model.stack.tricks if t.name == "feature-matching")
    assert fm.g_loss({}, phase, model.ctx)["fm"].item() == 0.0
    other = (real + 0.3).requires_grad_(True)
    loss = fm.g_loss({}, dataclasses.replace(phase, fake=other), model.ctx)["fm"]
    assert loss.item() > 0
    (g,) = torch.autograd.grad(loss, other)  # the gradient reaches G's output
    assert g.abs().sum() > 0
    feats = FeatureTap(model.D).run(d_forward, cond, real)
    assert len(feats) == (2 if "multiscale-d" in tricks else 1)
    assert all(len(f) == model.cfg.n_layers + 1 for f in feats)  # every block but the logits


def test_feature_matching_weights_are_pix2pixhds():
    a = [[torch.ones(1, 2, 2)] * 3, [torch.ones(1, 2, 2)] * 2]
    b = [[torch.zeros(1, 2, 2)] * 3, [torch.zeros(1, 2, 2)] * 2]
    # (1/num_D) * (4/layers) per layer: 0.5 * 4/3 * 3 + 0.5 * 4/2 * 2
    assert feature_matching_loss(a, b).item() == pytest.approx(4.0)


def test_feature_matching_flops_count_its_two_passes():
    cfg = tiny_config(["feature-matching"], batch_size=2)
    _counted_equals_declared(cfg, plan_passes(1, 1, 0, d_per_g_update=2))


def test_multiscale_d_weighs_each_scale_equally_and_fits_small_inputs():
    assert layers_that_fit(32, 3) == 3 and layers_that_fit(16, 3) == 2 and layers_that_fit(8, 3) == 1
    model = build_tiny(tiny_config([("multiscale-d", {"num_d": 3})], size=64))
    D = model.D
    assert isinstance(D, MultiscaleDiscriminator) and len(D.scales) == 3
    x = torch.zeros(2, 3, 64, 64)
    out = D(x)
    assert out.shape[1] == 3  # one channel per scale, each the size of the finest map
    finest = D.scales[0](x)
    assert out.shape[2:] == finest.shape[2:]
    assert torch.equal(out[:, :1], finest)
    trick = build_trick("multiscale-d", {"num_d": 3})
    spec = trick.configure_nets(NetSpec(size=16, n_layers=2, ndf=4))
    with pytest.raises(ValueError, match="multiscale-d:num_d=3 at --size 16: discriminator 3 would see 4 px"):
        trick.configure_modules(None, build_discriminator(spec))


def test_multiscale_d_flops_and_memory_reach_bench_and_the_estimate():
    plain, multi = tiny_config(size=64), tiny_config([("multiscale-d", {"num_d": 2})], size=64)
    one, two = build_tiny(plain), build_tiny(multi)
    _, d1 = model_flops(one.G, one.D, plain.in_channels, plain.out_channels, plain.size)
    _, d2 = model_flops(two.G, two.D, multi.in_channels, multi.out_channels, multi.size)
    half = net_flops(two.D.scales[1], torch.zeros(1, 3, 32, 32))
    assert d2.forward == d1.forward + half.forward  # the second D, on the half-size pair
    assert session_step_flops(two)["total"] > session_step_flops(one)["total"]
    e1, e2 = estimate(plain), estimate(multi)
    assert e2.per_image_bytes > e1.per_image_bytes and e2.fixed_bytes > e1.fixed_bytes
    _counted_equals_declared(multi, plan_passes(1, 1, 0))


def _counted_equals_declared(cfg, predicted):
    """The passes a real step makes equal what the tricks and the loss declare, and the FLOP
    count ganlab bench reports from them equals the session's prediction."""
    model = build_tiny(cfg)
    data = SyntheticPairs(cfg)
    counter = PassCounter()
    bus = StatsBus()
    with bus.activate(), counter.attach(model.step_fn):
        model.step_fn(data)
        counter.end_step()
    assert counter.total() == predicted
    g, d = model_flops(model.G, model.D, cfg.in_channels, cfg.out_channels, cfg.size)
    assert session_step_flops(model)["total"] == step_flops(g, d, predicted, cfg.batch_size)["total"]


# --------------------------------------------------------------------------------------------
# Spectral norm in G
# --------------------------------------------------------------------------------------------


def test_spectral_norm_in_g_normalises_every_conv_of_g():
    from ganlab.tricks.spectral_norm import spectral_normalised

    model = build_tiny(tiny_config([("spectral-norm", {"g": True})]))
    convs = [m for m in model.G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert convs and set(map(id, spectral_normalised(model.G))) == set(map(id, convs))
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.G.modules())  # g_norm=keep: SPADE keeps G's norms
    model.G.eval()
    for m in convs:
        w = m.weight.detach()
        w = (w.transpose(0, 1) if isinstance(m, nn.ConvTranspose2d) else w).flatten(1)
        assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, rel=0.05)
    bare = build_tiny(tiny_config([("spectral-norm", {"g": True, "g_norm": "none"})]))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in bare.G.modules())
    assert not spectral_normalised(build_tiny(tiny_config(["spectral-norm"])).G)  # off by default


@pytest.mark.parametrize("name", NEW)
def test_new_tricks_train_with_rpgan(name):
    model = build_tiny(tiny_config([name], gan_mode="rpgan"))
    rows = run_iterations(model, SyntheticPairs(model.cfg), 0, 2)
    assert all(math.isfinite(v) for _, r in rows for v in r.values())
