"""Tricks do what their papers say under ganlab's defaults, not only in isolation.

- spectral norm bounds D's Lipschitz constant with the default ``--norm batch`` (BatchNorm after
  a normalised convolution would undo the normalisation);
- instance noise reaches G's gradient: G is trained through D on noisy fakes;
- R1's gamma means the paper's per-sample penalty for each patch logit, at every image size;
- the identity conformance check compares the logged statistics.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from ganlab import losses
from ganlab.trick._registry import build_trick
from ganlab.trick import NetSpec, Phase, Trick, param
from ganlab.nets import build_discriminator
from ganlab.stats import report
from ganlab.testing import ConformanceError, SyntheticPairs, bare_context, build_tiny, check_identity, check_shapes, tiny_config


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one CPU thread is fastest and reproducible


@dataclass(frozen=True)
class _P:
    strength: float = param(0.0, low=0.0, high=1.0)


# --------------------------------------------------------------------------------------------
# Spectral norm: D's Lipschitz constant is bounded at the default --norm batch
# --------------------------------------------------------------------------------------------


def jacobian_norm(D: nn.Module, x: torch.Tensor, iterations: int = 20, seed: int = 0) -> float:
    """Power iteration for the largest singular value of the Jacobian of the batch map X -> D(X)
    at ``x``: the largest ratio ||D(x + h) - D(x)|| / ||h|| for small h (D as it is, train mode)."""
    u = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    u = u / u.norm()
    sigma = 0.0
    for _ in range(iterations):
        _, ju = torch.autograd.functional.jvp(D, x, u)
        _, jtju = torch.autograd.functional.vjp(D, x, ju)
        sigma = ju.norm().item()
        u = jtju / jtju.norm()
    return sigma


def conv_chain_bound(D: nn.Module) -> float:
    """The Lipschitz bound of a chain of 1-Lipschitz-weight convolutions and LeakyReLUs: a conv
    whose weight matrix has norm 1 has operator norm at most ceil(k/s) per spatial axis pair
    (each input pixel is in at most ceil(k/s)^2 windows)."""
    bound = 1.0
    for m in D.modules():
        if isinstance(m, nn.Conv2d):
            bound *= math.sqrt(math.ceil(m.kernel_size[0] / m.stride[0]) * math.ceil(m.kernel_size[1] / m.stride[1]))
    return bound


def _lipschitz_estimates(tricks) -> tuple[nn.Module, list[float]]:
    cfg = tiny_config(tricks, ndf=8)
    assert cfg.norm == "batch"  # ganlab's default
    D = build_tiny(cfg).D.train()
    g = torch.Generator().manual_seed(3)
    c = cfg.in_channels + cfg.out_channels
    spread = torch.rand(4, c, cfg.size, cfg.size, generator=g) * 2 - 1
    points = (spread, 0.3 + 1e-3 * spread)  # random images; nearly flat ones (small batch statistics)
    found = [jacobian_norm(D, x) for x in points]
    with torch.no_grad():  # weights an optimiser could reach: every parameter of D 100x larger
        for p in D.parameters():
            p.mul_(100.0)
    found += [jacobian_norm(D, x) for x in points]
    return D, found


def test_spectral_norm_bounds_the_lipschitz_constant_of_d_under_the_default_norm():
    D, found = _lipschitz_estimates([("spectral-norm", {})])
    bound = conv_chain_bound(D)  # 2 * 2 * 4 * 4 = 64 for the tiny PatchGAN (n_layers=2)
    # (with BatchNorm after the normalised convolutions: 2.3 at random images, 2150 at flat ones
    # with 100x larger weights; now about 0.2 at all four)
    assert max(found) <= 1.05 * bound, (found, bound)  # 5%: the power-iteration estimate of each sigma
    # and D's scale is the normalisation's, not its weights': 100x larger weights change nothing
    assert found[2:] == pytest.approx(found[:2], rel=0.05)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) for m in D.modules())
    # Without the trick, the same measurement is not bounded (the bound is not vacuous).
    _, plain = _lipschitz_estimates([])
    assert max(plain) > 10 * bound, plain


def test_spectral_norm_can_keep_the_normalisation_for_ablations():
    spec = build_trick("spectral-norm", {"d_norm": "keep"}).configure_nets(NetSpec())
    assert spec.d_norm == "batch"
    assert build_trick("spectral-norm", {}).configure_nets(NetSpec(d_norm="layer")).d_norm == "none"


# --------------------------------------------------------------------------------------------
# Instance noise: G's gradient goes through D on the noisy fakes
# --------------------------------------------------------------------------------------------


def _g_grads_of_the_step(model, cond, real, seed=7) -> tuple[list[torch.Tensor], nn.Module, nn.Module, torch.Tensor]:
    """G's gradient as the step's G update computes it, with copies of G, D and the trick
    generator's state from before the update."""
    G0, D0 = copy.deepcopy(model.G), copy.deepcopy(model.D)
    gen_state = model.ctx.rng.get_state()
    torch.manual_seed(seed)  # G's dropout
    fake = model.step_fn.generate(cond)
    model.step_fn.g_update(cond, real, fake)
    return [p.grad.clone() for p in model.G.parameters()], G0, D0, gen_state


def _g_grads_by_hand(model, G0, D0, cond, real, shown: callable, seed=7) -> list[torch.Tensor]:
    """adv(D(cond, shown(fake))) + lambda * L1(fake, real), differentiated with respect to G."""
    torch.manual_seed(seed)
    fake = G0(cond)
    D0.requires_grad_(False)
    d_fake = D0(torch.cat((cond, shown(fake)), 1))
    loss = losses.g_adv_term(model.step_fn.gan_mode, d_fake) + model.cfg.lambda_l1 * losses.l1(fake, real)
    return list(torch.autograd.grad(loss, list(G0.parameters())))


def _same(a, b) -> bool:
    return all(torch.allclose(x, y, rtol=1e-5, atol=1e-8) for x, y in zip(a, b))


def test_instance_noise_reaches_g_through_d_on_the_noisy_fake():
    sigma = 0.5
    model = build_tiny(tiny_config([("instance-noise", {"sigma0": sigma, "anneal_steps": 100})]))
    cond, real = SyntheticPairs(model.cfg)()
    model.ctx.step = 0
    grads, G0, D0, gen_state = _g_grads_of_the_step(model, cond, real)

    def noised(fake):  # the same sigma, the same draw from the trick generator
        gen = torch.Generator().set_state(gen_state)
        return fake + sigma * torch.randn(fake.shape, generator=gen, dtype=fake.dtype)

    assert _same(grads, _g_grads_by_hand(model, G0, D0, cond, real, noised))
    assert not _same(grads, _g_grads_by_hand(model, G0, D0, cond, real, lambda fake: fake))  # the noise matters


def test_instance_noise_leaves_g_alone_once_annealed():
    model = build_tiny(tiny_config([("instance-noise", {"sigma0": 0.5, "anneal_steps": 4})]))
    cond, real = SyntheticPairs(model.cfg)()
    model.ctx.step = 4  # sigma is 0 from here on
    grads, G0, D0, gen_state = _g_grads_of_the_step(model, cond, real)
    assert _same(grads, _g_grads_by_hand(model, G0, D0, cond, real, lambda fake: fake))
    assert torch.equal(model.ctx.rng.get_state(), gen_state)  # nothing drawn


def test_image_pool_does_not_reach_the_g_update():
    model = build_tiny(tiny_config([("image-pool", {"size": 2, "p": 1.0})]))
    assert "g_inputs" not in type(model.stack.tricks[0]).hooks_used()
    data = SyntheticPairs(model.cfg)
    for _ in range(2):  # fill the pool, so that D's fakes would be swapped
        cond, real = data()
        model.step_fn.d_update(cond, real, model.step_fn.generate(cond).detach())
    cond, real = data()
    grads, G0, D0, _ = _g_grads_of_the_step(model, cond, real)
    assert _same(grads, _g_grads_by_hand(model, G0, D0, cond, real, lambda fake: fake))


class _DetachesInG(Trick):
    name = "bad-detach-in-g"
    Params = _P

    def g_inputs(self, fake_pair, ctx):
        cond, fake = fake_pair
        return cond, fake.detach()


def test_shape_check_catches_a_g_input_without_a_graph_to_g():
    with pytest.raises(ConformanceError, match="bad-detach-in-g.*g_inputs.*no graph to G"):
        check_shapes(_DetachesInG)


# --------------------------------------------------------------------------------------------
# R1: gamma means the per-logit penalty of the paper, at every image size
# --------------------------------------------------------------------------------------------


def per_logit_r1(D: nn.Module, cond: torch.Tensor, real: torch.Tensor) -> float:
    """The reference, by brute force: the mean over the batch's logits D_i of ||grad_x D_i||^2,
    one backward pass per logit."""
    x = real.detach().requires_grad_(True)
    logits = D(torch.cat((cond, x), 1)).flatten()
    total = 0.0
    for i in range(logits.numel()):
        (g,) = torch.autograd.grad(logits[i], x, retain_graph=True)
        total += g.double().pow(2).sum().item()
    return total / logits.numel()


def _r1_term(D, cond, real, gamma, seed):
    d_forward = lambda c, x: D(torch.cat((c, x), 1))  # noqa: E731
    phase = Phase(cond=cond, real=real, fake=real, d_real=None, d_fake=d_forward(cond, real), d_forward=d_forward)
    trick = build_trick("r1", {"gamma": gamma})
    return trick.d_loss({"real": torch.zeros(())}, phase, bare_context(seed))["r1"].item()


def _default_patch_d(size: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The default PatchGAN (n_layers=3, BatchNorm, train mode), 8 channels wide; its weights do
    not depend on the image size."""
    torch.manual_seed(0)
    D = build_discriminator(NetSpec(size=size, ndf=8)).train()
    g = torch.Generator().manual_seed(1)
    cond = torch.rand(4, 1, size, size, generator=g) * 2 - 1
    real = torch.rand(4, 2, size, size, generator=g) * 2 - 1
    return D, cond, real


def test_r1_penalty_does_not_shrink_with_the_image_size():
    gamma = 2.0
    penalty = {}
    for size in (32, 64, 128):  # 2x2, 6x6 and 14x14 patch logits
        D, cond, real = _default_patch_d(size)
        penalty[size] = sum(_r1_term(D, cond, real, gamma, seed) for seed in range(4)) / 4 / (0.5 * gamma)
    # The penalty on the map's mean fell 9x from 32 to 64 px and 75x from 32 to 128 px; per
    # logit it is about the same (the 32 px value is lower: all four patches lie on the padding).
    assert max(penalty.values()) / min(penalty.values()) < 2.0, penalty
    assert penalty[128] / penalty[64] == pytest.approx(1.0, abs=0.1), penalty


def test_r1_estimates_the_per_logit_penalty_without_bias():
    gamma = 2.0
    D, cond, real = _default_patch_d(32)
    want = per_logit_r1(D, cond, real)
    draws = [_r1_term(D, cond, real, gamma, seed) / (0.5 * gamma) for seed in range(200)]
    assert sum(draws) / len(draws) == pytest.approx(want, rel=0.05)
    assert len(set(draws)) > 1  # a random estimate (the patches overlap) ...
    # ... exact when no input pixel reaches two logits: 1x1 patches, no BatchNorm coupling the batch
    D1 = build_discriminator(NetSpec(discriminator="pixel", ndf=8, d_norm="none")).train()
    assert _r1_term(D1, cond, real, gamma, 0) / (0.5 * gamma) == pytest.approx(per_logit_r1(D1, cond, real), rel=1e-4)


# --------------------------------------------------------------------------------------------
# The identity check compares the logged statistics
# --------------------------------------------------------------------------------------------


class _AltersAStat(Trick):
    """Trains exactly the baseline at strength 0, but reports one of the step's statistics."""

    name = "bad-alters-a-stat"
    Params = _P
    identity = {"strength": 0.0}

    def after_d_update(self, ctx):
        report("D/out_real", torch.tensor(self.params.strength))  # averaged into the step's own value


class _LogsExtra(Trick):
    name = "bad-logs-extra"
    Params = _P
    identity = {"strength": 0.0}

    def after_g_update(self, ctx):
        report("G/extra", self.params.strength)


class _LogsItsOwn(Trick):
    name = "own-stat"
    Params = _P
    identity = {"strength": 0.0}

    def after_g_update(self, ctx):
        report("tricks/own_stat", self.params.strength)


def test_identity_check_catches_a_trick_that_changes_only_a_logged_statistic():
    with pytest.raises(ConformanceError, match=r"bad-alters-a-stat.*D/out_real"):
        check_identity(_AltersAStat)
    with pytest.raises(ConformanceError, match=r"bad-logs-extra.*logs \['G/extra'\], which the baseline does not"):
        check_identity(_LogsExtra)
    assert check_identity(_LogsItsOwn)  # a trick's own statistics, under tricks/, are allowed
