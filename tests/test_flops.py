"""The analytic FLOP count against torch.utils.flop_counter on the same networks and steps."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ganlab.train.flops import PassCounter, model_flops, session_step_flops, net_flops, penalty_passes, plan_passes, step_flops
from ganlab.trick import NetSpec, StepPlan
from ganlab.nets import build_discriminator, build_generator
from ganlab.testing import build_tiny, tiny_config


def counted(fn) -> int:
    with FlopCounterMode(display=False) as mode:
        fn()
    return mode.get_total_flops()


def nets(**spec):
    torch.manual_seed(0)
    s = NetSpec(**spec)
    return s, build_generator(s), build_discriminator(s)


SPECS = [
    dict(size=32, ngf=8, ndf=8),
    dict(size=64, ngf=4, ndf=4, n_layers=2, in_channels=3, out_channels=3),
    dict(size=64, ngf=4, ndf=4, discriminator="pixel", upsample="nearest-conv", downsample="avgpool"),
    dict(size=64, generator="resnet18-unet", ndf=4, d_norm="none"),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.get('generator', 'unet')}-{s.get('discriminator', 'patch')}-{s['size']}")
def test_every_pass_matches_the_flop_counter(spec):
    s, G, D = nets(**spec)
    g, d = model_flops(G, D, s.in_channels, s.out_channels, s.size)
    B = 3
    cond = torch.randn(B, s.in_channels, s.size, s.size)
    x = torch.randn(B, s.out_channels, s.size, s.size)

    # G forward, and its backward to the weights (the condition needs no gradient).
    assert counted(lambda: G(cond)) == B * g.forward
    out = G(cond)
    assert counted(lambda: out.square().mean().backward()) == B * g.backward(input_grad=False, weight_grad=True)

    # A D pass of a D update: the detached pair in, gradients to D's weights.
    pair = torch.cat((cond, x), 1)
    assert counted(lambda: D(pair).mean().backward()) == B * (d.forward + d.backward(input_grad=False, weight_grad=True))

    # The D pass of a G update: D frozen, the gradient goes to the generated image.
    D.requires_grad_(False)
    xg = x.clone().requires_grad_(True)
    assert counted(lambda: D(torch.cat((cond, xg), 1)).mean().backward()) == B * (d.forward + d.backward(input_grad=True, weight_grad=False))
    D.requires_grad_(True)

    # A gradient-penalty pass: forward, input gradient with a graph, double backward.
    def penalty():
        xh = x.clone().requires_grad_(True)
        score = D(torch.cat((cond, xh), 1)).flatten(1).mean(1)
        (grad,) = torch.autograd.grad(score.sum(), xh, create_graph=True)
        (grad.flatten(1).pow(2).sum(1).add(1e-12).sqrt() - 1).pow(2).mean().backward()

    assert counted(penalty) == B * d.penalty()


def test_the_count_depends_on_the_networks():
    """Not a constant: width, depth and size change it the way the arithmetic says."""
    _, G1, D1 = nets(size=32, ngf=8, ndf=8)
    _, G2, D2 = nets(size=32, ngf=16, ndf=16)
    g1, d1 = model_flops(G1, D1, 1, 2, 32)
    g2, d2 = model_flops(G2, D2, 1, 2, 32)
    assert 3.5 < g2.forward / g1.forward < 4.0  # width doubles: ~4x (the thin outer layers less)
    assert 3.5 < d2.forward / d1.forward < 4.0
    _, G3, D3 = nets(size=64, ngf=8, ndf=8)
    g3, _ = model_flops(G3, D3, 1, 2, 64)
    assert g3.forward > 4 * g1.forward  # 4x the pixels and one more down/up level


def test_net_flops_leaves_the_network_as_it_was():
    _, G, D = nets(size=32, ngf=8, ndf=8)
    G.train()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    net_flops(G, torch.zeros(1, 1, 32, 32))
    assert G.training
    for k, v in G.state_dict().items():
        assert torch.equal(v, before[k]), k  # no running statistics were updated
    with pytest.raises(ValueError, match="batch of 1"):
        net_flops(G, torch.zeros(2, 1, 32, 32))


STEPS = {
    "plain": ([], StepPlan(1, 1), 0),
    "step-ratio": (["step-ratio:k=3"], StepPlan(3, 1), 0),
    "step-ratio-g": (["step-ratio:k=2,favour=g"], StepPlan(1, 2), 0),
    "wgan-gp": (["wgan-gp:n_critic=2"], StepPlan(2, 1), 1),
    "r1": (["r1:gamma=1"], StepPlan(1, 1), 1),
    "r1-lazy-off-step": (["r1:gamma=1,every=2"], StepPlan(1, 1), 0),
}


@pytest.mark.parametrize("name", list(STEPS))
def test_the_step_count_equals_the_flop_counter_on_the_real_step(name):
    tricks, plan, penalties = STEPS[name]
    cfg = tiny_config(tricks, batch_size=3)
    model = build_tiny(cfg)
    model.ctx.step = 1 if name == "r1-lazy-off-step" else 0
    assert penalty_passes(model.stack, model.ctx.step) == penalties
    g, d = model_flops(model.G, model.D, cfg.in_channels, cfg.out_channels, cfg.size)
    gen = torch.Generator().manual_seed(0)

    def batch():
        c = torch.rand(3, 1, cfg.size, cfg.size, generator=gen) * 2 - 1
        return c, torch.rand(3, 2, cfg.size, cfg.size, generator=gen) * 2 - 1

    counter = PassCounter()
    with counter.attach(model.step_fn):
        measured = counted(lambda: model.step_fn(batch))
        counter.end_step()
    predicted = plan_passes(plan.d_steps, plan.g_steps, penalties)
    assert counter.total() == predicted
    assert step_flops(g, d, predicted, 3)["total"] == measured
    assert session_step_flops(model)["total"] == measured  # the plan and penalties the tricks declare
    assert "generate" not in vars(model.step_fn)  # the counter unhooked itself


def test_pass_counter_fills_replayed_steps():
    c = PassCounter()
    c.current = plan_passes(1, 1)
    c.end_step()
    c.end_step()  # a replay: nothing seen
    assert c.total() == plan_passes(1, 1).scaled(2)
    assert c.total(first=1) == plan_passes(1, 1)


def test_the_plain_step_at_256_is_about_87_gflop_per_image():
    s, G, D = nets(size=256)
    g, d = model_flops(G, D, s.in_channels, s.out_channels, s.size)
    per_image = step_flops(g, d, plan_passes(1, 1), 64)["per_image"]
    assert per_image == pytest.approx(87e9, rel=0.03)
    # The G update's third D pass is in it: without it the step is cheaper by 2 D forwards.
    without = step_flops(g, d, dataclasses.replace(plan_passes(1, 1), d_for_g=0), 64)["per_image"]
    assert per_image - without == 2 * d.forward
