"""What each trick does: a test per trick that fails if the trick did nothing."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganlab.trick._stack import TrickStack
from ganlab.trick._registry import build_trick
from ganlab.trick import Phase, Trick, register, registered
from ganlab.testing import SyntheticPairs, bare_context, build_tiny, run_iterations, tiny_config

from conftest import TINY, only_run, straight_and_resumed


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one CPU thread is fastest and reproducible


@pytest.fixture
def local_tricks():
    with registered():
        yield register


def _targets(trick, n=20000, shape=(1, 2, 2), seed=0):
    ctx = bare_context(seed)
    t_real, t_fake = torch.ones((n,) + shape), torch.zeros((n,) + shape)
    return trick.d_targets(t_real, t_fake, ctx)


# --------------------------------------------------------------------------------------------
# Label tricks: statistics over many draws
# --------------------------------------------------------------------------------------------


def test_soft_labels_one_sided():
    t_real, t_fake = _targets(build_trick("soft-labels", {}))
    assert 0.9 <= t_real.min() and t_real.max() <= 1.0
    assert t_real.min() < 0.901 and t_real.max() > 0.999  # the whole range is used
    assert abs(t_real.mean().item() - 0.95) < 0.002
    assert abs(t_real.var().item() - 0.1**2 / 12) < 1e-4  # uniform
    assert torch.equal(t_fake, torch.zeros_like(t_fake))  # fakes untouched


def test_soft_labels_two_sided_and_custom_range():
    t_real, t_fake = _targets(build_trick("soft-labels", {"low": "0.8", "high": "0.9", "two_sided": "true"}))
    assert 0.8 <= t_real.min() and t_real.max() <= 0.9 and abs(t_real.mean().item() - 0.85) < 0.002
    assert 0.0 <= t_fake.min() and t_fake.max() <= 0.1 and abs(t_fake.mean().item() - 0.05) < 0.002


def test_noisy_labels_per_element():
    t_real, t_fake = _targets(build_trick("noisy-labels", {}))
    assert 0.7 <= t_real.min() and t_real.max() <= 1.2 and abs(t_real.mean().item() - 0.95) < 0.005
    assert 0.0 <= t_fake.min() and t_fake.max() <= 0.3 and abs(t_fake.mean().item() - 0.15) < 0.003
    assert abs(t_real.var().item() - 0.5**2 / 12) < 5e-4
    # Per element: the elements of one sample differ.
    assert (t_real.flatten(1).std(1) > 0).float().mean() > 0.99
    t_real, _ = _targets(build_trick("noisy-labels", {"real_low": "0.8", "real_high": "0.85"}))
    assert 0.8 <= t_real.min() and t_real.max() <= 0.85


def test_label_flip_probability_per_sample():
    t_real, t_fake = _targets(build_trick("label-flip", {"p": "0.05"}), n=40000)
    flipped_real = t_real.flatten(1)
    flipped_fake = t_fake.flatten(1)
    # Per sample: all elements of a sample share the decision.
    assert torch.all(flipped_real.min(1).values == flipped_real.max(1).values)
    rate_real = (flipped_real[:, 0] == 0).float().mean().item()
    rate_fake = (flipped_fake[:, 0] == 1).float().mean().item()
    sd = math.sqrt(0.05 * 0.95 / 40000)
    assert abs(rate_real - 0.05) < 5 * sd and abs(rate_fake - 0.05) < 5 * sd
    # The real and the fake half are flipped independently.
    both = ((flipped_real[:, 0] == 0) & (flipped_fake[:, 0] == 1)).float().mean().item()
    assert both < 0.01


def test_label_flip_swaps_smoothed_targets_after_smoothing():
    stack = TrickStack([build_trick("label-flip", {"p": "0.5"}), build_trick("soft-labels", {"two_sided": "true"})])
    ctx = bare_context()
    t_real, t_fake = stack.d_targets(torch.ones(4000, 1), torch.zeros(4000, 1), ctx)
    # Flipped real samples carry fake (soft) targets in [0, 0.1]; the rest real ones in [0.9, 1].
    low = t_real < 0.5
    assert 0.4 < low.float().mean() < 0.6
    assert t_real[low].max() <= 0.1 and t_real[~low].min() >= 0.9


# --------------------------------------------------------------------------------------------
# Instance noise: sigma follows its schedule
# --------------------------------------------------------------------------------------------


def test_instance_noise_schedules():
    from ganlab.tricks.instance_noise import sigma_at

    assert sigma_at(0, 0.2, "linear", 100) == 0.2
    assert sigma_at(50, 0.2, "linear", 100) == pytest.approx(0.1)
    assert sigma_at(99, 0.2, "linear", 100) == pytest.approx(0.002)
    assert sigma_at(100, 0.2, "linear", 100) == 0.0
    assert sigma_at(0, 0.2, "exponential", 100) == 0.2
    assert sigma_at(50, 0.2, "exponential", 100) == pytest.approx(0.02)  # 0.2 * 0.01 ** 0.5
    assert sigma_at(99, 0.2, "exponential", 100) == pytest.approx(0.2 * 0.01**0.99)
    assert sigma_at(100, 0.2, "exponential", 100) == 0.0
    lin = [sigma_at(s, 1.0, "linear", 10) for s in range(12)]
    assert all(a > b for a, b in zip(lin[:10], lin[1:11])) and lin[10:] == [0.0, 0.0]


@pytest.mark.parametrize("schedule", ["linear", "exponential"])
def test_instance_noise_follows_its_schedule_in_the_inputs(schedule):
    from ganlab.tricks.instance_noise import sigma_at

    trick = build_trick("instance-noise", {"sigma0": "0.5", "schedule": schedule, "anneal_steps": "40"})
    cond, x = torch.rand(64, 1, 16, 16), torch.rand(64, 2, 16, 16)
    for step in (0, 10, 20, 39, 40, 60):
        ctx = bare_context(step=step)
        (c_r, x_r), (c_f, x_f) = trick.d_inputs((cond, x), (cond, x), ctx)
        assert c_r is cond and c_f is cond  # the condition is never noised
        want = sigma_at(step, 0.5, schedule, 40)
        for noisy in (x_r, x_f):
            got = (noisy - x).std().item()
            assert got == pytest.approx(want, rel=0.03, abs=1e-9)
        if want > 0:
            assert not torch.equal(x_r - x, x_f - x)  # independent noise for real and fake


def test_instance_noise_anneals_over_the_run_by_default():
    trick = build_trick("instance-noise", {})
    cfg = tiny_config(pretrain_steps=10, steps=100)
    assert trick.sigma(bare_context(step=10, total_steps=110, cfg=cfg)) == pytest.approx(0.1)
    assert trick.sigma(bare_context(step=60, total_steps=110, cfg=cfg)) == pytest.approx(0.05)
    assert trick.sigma(bare_context(step=110, total_steps=110, cfg=cfg)) == 0.0


# --------------------------------------------------------------------------------------------
# LeakyReLU only
# --------------------------------------------------------------------------------------------


def _kinds(module):
    return {type(m) for m in module.modules()}


@pytest.mark.parametrize("generator", ["unet", "resnet18-unet"])
def test_leaky_relu_only_leaves_no_relu_and_no_max_pool(generator):
    extra = {"generator": generator, "backbone_weights": "none"}
    base = build_tiny(tiny_config(**extra))
    if generator == "resnet18-unet":
        assert nn.ReLU in _kinds(base.G) and nn.MaxPool2d in _kinds(base.G)  # what there is to replace
    model = build_tiny(tiny_config([("leaky-relu-only", {})], **extra))
    for net in (model.G, model.D):
        kinds = _kinds(net)
        assert nn.ReLU not in kinds and nn.MaxPool2d not in kinds
        slopes = {m.negative_slope for m in net.modules() if isinstance(m, nn.LeakyReLU)}
        assert slopes == {0.2}
    if generator == "resnet18-unet":
        assert nn.AvgPool2d in _kinds(model.G)
    # Same weights, same shapes: only the non-linearities changed.
    assert model.G.state_dict().keys() == base.G.state_dict().keys()
    run_iterations(model, SyntheticPairs(model.cfg), 0, 1)


def test_leaky_relu_only_also_when_loading_a_generator(tmp_path, run_cli, image_dir):
    from ganlab.infer import load_generator

    out = tmp_path / "runs"
    code, _, err = run_cli("train", *TINY, "--data", image_dir, "--steps", "1", "--eval-every", "0", "--out", out,
                           "--generator", "resnet18-unet", "--backbone-weights", "none", "--trick", "leaky-relu-only")
    assert code == 0, err
    _, G = load_generator(only_run(out))
    assert nn.ReLU not in _kinds(G) and nn.MaxPool2d not in _kinds(G)


# --------------------------------------------------------------------------------------------
# WGAN-GP
# --------------------------------------------------------------------------------------------


class _LinearCritic(nn.Module):
    """f(cond, x) = mean over pixels of (a . cond + w . x): gradient w.r.t. x is w / (H W) per pixel."""

    def __init__(self, c_cond=1, c_x=2):
        super().__init__()
        self.conv = nn.Conv2d(c_cond + c_x, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([0.7, 3.0, -4.0]).view(1, 3, 1, 1))

    def forward(self, x):
        return self.conv(x)


def _phase(D, cond, real, fake):
    d_forward = lambda c, x: D(torch.cat((c, x), 1))  # noqa: E731
    return Phase(cond=cond, real=real, fake=fake, d_real=d_forward(cond, real), d_fake=d_forward(cond, fake), d_forward=d_forward)


def test_wgan_gp_penalty_equals_its_closed_form_for_a_linear_critic():
    B, H, W = 5, 8, 6
    D = _LinearCritic()
    cond, real, fake = torch.randn(B, 1, H, W), torch.randn(B, 2, H, W), torch.randn(B, 2, H, W)
    for lam in (10.0, 2.5):
        trick = build_trick("wgan-gp", {"lambda": lam})
        terms = trick.d_loss({"fake": torch.tensor(0.0), "real": torch.tensor(0.0)}, _phase(D, cond, real, fake), bare_context())
        grad_norm = 5.0 / math.sqrt(H * W)  # |w_x| = |(3, -4)| = 5, spread over H*W pixels
        assert terms["gp"].item() == pytest.approx(lam * (grad_norm - 1.0) ** 2, rel=1e-5)
        # The Wasserstein terms, without pix2pix's halving.
        d_real, d_fake = D(torch.cat((cond, real), 1)), D(torch.cat((cond, fake), 1))
        assert terms["real"].item() == pytest.approx(-d_real.mean().item(), rel=1e-6)
        assert terms["fake"].item() == pytest.approx(d_fake.mean().item(), rel=1e-6)


def test_wgan_gp_interpolates_only_the_generated_channels_with_uniform_alpha():
    B = 4000
    cond, real, fake = torch.randn(B, 1, 2, 2), torch.zeros(B, 2, 2, 2), torch.ones(B, 2, 2, 2)
    seen = {}

    def d_forward(c, x):
        seen["cond"], seen["x"] = c, x.detach()
        return x.sum((1, 2, 3), keepdim=True) + c.sum((1, 2, 3), keepdim=True)

    phase = Phase(cond=cond, real=real, fake=fake, d_real=torch.zeros(B, 1), d_fake=torch.zeros(B, 1), d_forward=d_forward)
    build_trick("wgan-gp", {}).d_loss({}, phase, bare_context())
    assert torch.equal(seen["cond"], cond)  # the condition is not interpolated
    alpha = seen["x"]  # real = 0, fake = 1: x_hat = alpha
    per_sample = alpha.flatten(1)
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)  # one alpha per sample
    a = per_sample[:, 0]
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert abs(a.mean().item() - 0.5) < 0.02 and abs(a.var().item() - 1 / 12) < 0.005  # U[0, 1], not a normal


def test_wgan_gp_penalty_gradient_reaches_the_critic_in_the_real_step(local_tricks):
    class OnlyPenalty(Trick):
        """Runs after wgan-gp and keeps only its penalty, so D's gradient is the penalty's alone."""

        name = "only-penalty"
        order = 11

        def d_loss(self, terms, phase, ctx):
            return {"gp": terms["gp"]}

    local_tricks(OnlyPenalty)
    model = build_tiny(tiny_config([("wgan-gp", {}), ("only-penalty", {})]))
    cond, real = SyntheticPairs(model.cfg)()
    with torch.no_grad():
        fake = model.G(cond)
    model.step_fn.d_update(cond, real, fake)
    # Every convolution's weight gets the penalty's gradient (through the double backward);
    # only the last bias, which shifts D's output without changing its input gradient, cannot.
    weights = [m.weight for m in model.D.modules() if isinstance(m, nn.Conv2d)]
    for w in weights:
        assert w.grad is not None and w.grad.abs().sum() > 0 and torch.isfinite(w.grad).all()


def test_wgan_gp_configures_critic_loss_optimiser_and_ratio(monkeypatch):
    model = build_tiny(tiny_config([("wgan-gp", {"n_critic": 3})]))
    assert model.step_fn.gan_mode == "wgan" and model.ctx.gan_mode == "wgan"
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.D.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in model.D.modules())  # layer norm by default
    for opt in (model.opt_g, model.opt_d):
        assert opt.param_groups[0]["lr"] == 1e-4 and opt.param_groups[0]["betas"] == (0.5, 0.9)
    counts = _count_updates(model)
    run_iterations(model, SyntheticPairs(model.cfg), 0, 2)
    assert counts == {"d": 6, "g": 2}
    # ttur runs after wgan-gp: its learning rates win, wgan-gp's betas stay.
    model = build_tiny(tiny_config([("wgan-gp", {}), ("ttur", {"lr_d": 3e-4, "lr_g": 5e-5})]))
    assert model.opt_d.param_groups[0]["lr"] == 3e-4 and model.opt_g.param_groups[0]["lr"] == 5e-5
    assert model.opt_d.param_groups[0]["betas"] == (0.5, 0.9)


# --------------------------------------------------------------------------------------------
# PixelTCL
# --------------------------------------------------------------------------------------------


def test_pixeltcl_shapes():
    from ganlab.tricks.pixeltcl import PixelTCL

    layer = PixelTCL(6, 3)
    y = layer(torch.randn(2, 6, 5, 7))
    assert y.shape == (2, 3, 10, 14)
    model = build_tiny(tiny_config([("pixeltcl", {})]))
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.G.modules())
    assert sum(isinstance(m, PixelTCL) for m in model.G.modules()) == model.G.depth
    cond, real = SyntheticPairs(model.cfg)()
    assert model.G(cond).shape == real.shape


def test_pixeltcl_sub_grids_are_made_one_after_another():
    from ganlab.tricks.pixeltcl import PixelTCL

    torch.manual_seed(0)
    layer = PixelTCL(3, 2)
    x = torch.randn(1, 3, 6, 6)
    captured = {}
    layer.conv1.register_forward_hook(lambda m, i, o: captured.__setitem__("f1", o))
    y = layer(x)
    f1 = captured["f1"]
    assert torch.equal(y[..., 0::2, 0::2], f1)  # first map: from the input
    assert torch.allclose(y[..., 1::2, 1::2], layer.conv2(f1))  # second map: from the first, not the input

    # The remaining positions: a convolution over the checkerboard of what is already there,
    # masked to the four direct neighbours (all filled), never the centre or the diagonals
    # (the other positions being filled).
    board = y.detach().clone()
    board[..., 0::2, 1::2] = 0
    board[..., 1::2, 0::2] = 0
    filled = torch.nn.functional.conv2d(board, layer.conv3.weight * layer.mask, layer.conv3.bias, padding=1)
    assert torch.allclose(y[..., 0::2, 1::2], filled[..., 0::2, 1::2], atol=1e-6)
    assert torch.allclose(y[..., 1::2, 0::2], filled[..., 1::2, 0::2], atol=1e-6)
    assert layer.mask.flatten().tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0]

    # So neighbouring output pixels depend on each other: nudge one pixel of the first map and
    # its four neighbours on the output grid move with it.
    i, j = 2, 3
    delta = torch.zeros_like(f1)
    delta[..., i, j] = 1.0
    handle = layer.conv1.register_forward_hook(lambda m, inp, out: out + delta)
    y2 = layer(x)
    handle.remove()
    moved = (y2 - y).abs().sum(1)[0] > 0
    r, c = 2 * i, 2 * j
    for rr, cc in ((r, c - 1), (r, c + 1), (r - 1, c), (r + 1, c), (r + 1, c + 1)):
        assert moved[rr, cc], (rr, cc)
    assert not moved[r, c + 5] and not moved[r + 5, c]  # and the effect stays local


def test_pixeltcl_output_pixel_is_computed_from_its_neighbour():
    from ganlab.tricks.pixeltcl import PixelTCL

    torch.manual_seed(0)
    layer = PixelTCL(3, 2)
    x = torch.randn(1, 3, 6, 6)
    captured = {}
    layer.conv1.register_forward_hook(lambda m, i, o: captured.__setitem__("f1", o))
    y = layer(x)
    # Output pixel (4, 5) is a function of output pixel (4, 4) = f1[2, 2]; with a transposed
    # convolution both would be separate functions of the input alone.
    (g,) = torch.autograd.grad(y[0, 0, 4, 5], captured["f1"])
    assert g[0, :, 2, 2].abs().sum() > 0 and g[0, :, 2, 3].abs().sum() > 0


# --------------------------------------------------------------------------------------------
# Step ratio
# --------------------------------------------------------------------------------------------


def _count_updates(model):
    counts = {"d": 0, "g": 0}
    model.opt_d.register_step_post_hook(lambda *a: counts.__setitem__("d", counts["d"] + 1))
    model.opt_g.register_step_post_hook(lambda *a: counts.__setitem__("g", counts["g"] + 1))
    return counts


@pytest.mark.parametrize("favour,k,want", [("d", 3, {"d": 3, "g": 1}), ("g", 3, {"d": 1, "g": 3}), ("d", 1, {"d": 1, "g": 1})])
def test_step_ratio_counts_updates_per_iteration(favour, k, want):
    model = build_tiny(tiny_config([("step-ratio", {"k": k, "favour": favour})]))
    counts = _count_updates(model)
    data = SyntheticPairs(model.cfg)
    drawn = []

    def next_batch():
        batch = data()
        drawn.append(batch)
        return batch

    run_iterations(model, next_batch, 0, 2)
    assert counts == {"d": 2 * want["d"], "g": 2 * want["g"]}
    assert len(drawn) == 2 * (want["d"] + want["g"] - 1)  # every extra update draws a fresh batch


def test_step_ratio_shows_d_fresh_fakes(local_tricks):
    seen = []

    class Recorder(Trick):
        name = "recorder"

        def d_inputs(self, real_pair, fake_pair, ctx):
            seen.append(fake_pair[1].clone())
            return real_pair, fake_pair

    local_tricks(Recorder)
    model = build_tiny(tiny_config([("step-ratio", {"k": 3}), ("recorder", {})]))
    run_iterations(model, SyntheticPairs(model.cfg), 0, 1)
    assert len(seen) == 3
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2])


# --------------------------------------------------------------------------------------------
# Spectral norm
# --------------------------------------------------------------------------------------------


def test_spectral_norm_keeps_each_conv_of_d_at_norm_one():
    from torch.nn.utils import parametrize

    model = build_tiny(tiny_config([("spectral-norm", {})]))
    run_iterations(model, SyntheticPairs(model.cfg), 0, 3)
    convs = [m for m in model.D.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(parametrize.is_parametrized(m, "weight") for m in convs)
    assert not any(parametrize.is_parametrized(m) for m in model.G.modules())
    model.D.eval()  # read the weights without another power iteration
    for m in convs:
        w = m.weight.detach().flatten(1)
        sigma = torch.linalg.matrix_norm(w, ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05)
        raw = torch.linalg.matrix_norm(m.parametrizations.weight.original.detach().flatten(1), ord=2).item()
        assert raw != pytest.approx(1.0, abs=0.2)  # it is the normalisation, not the initialisation
    # The pix2pix initialisation reached the wrapped weights.
    first = convs[1].parametrizations.weight.original
    assert first.std().item() == pytest.approx(0.02, rel=0.3)


# --------------------------------------------------------------------------------------------
# R1
# --------------------------------------------------------------------------------------------


def test_r1_equals_its_closed_form_and_is_lazy():
    B, H, W = 3, 4, 5
    D = _LinearCritic()
    cond, real, fake = torch.randn(B, 1, H, W), torch.randn(B, 2, H, W), torch.randn(B, 2, H, W)
    base = {"fake": torch.tensor(0.3), "real": torch.tensor(0.2)}
    trick = build_trick("r1", {"gamma": "2.0"})
    terms = trick.d_loss(dict(base), _phase(D, cond, real, fake), bare_context())
    # Per patch logit: each 1x1 patch's gradient is w_x = (3, -4), |w_x|^2 = 25 (exact: the patches do not overlap).
    assert terms["r1"].item() == pytest.approx(0.5 * 2.0 * 25.0, rel=1e-5)
    assert terms["fake"] is base["fake"] and terms["real"] is base["real"]
    (g,) = torch.autograd.grad(terms["r1"], D.conv.weight)
    assert g.abs().sum() > 0  # the penalty trains D
    lazy = build_trick("r1", {"gamma": "2.0", "every": "4"})
    present = [("r1" in lazy.d_loss(dict(base), _phase(D, cond, real, fake), bare_context(step=s))) for s in range(8)]
    assert present == [True, False, False, False, True, False, False, False]
    t4 = lazy.d_loss(dict(base), _phase(D, cond, real, fake), bare_context(step=4))
    assert t4["r1"].item() == pytest.approx(4 * terms["r1"].item(), rel=1e-5)


def test_r1_in_the_step_is_logged():
    model = build_tiny(tiny_config([("r1", {"gamma": 5.0})]))
    rows = run_iterations(model, SyntheticPairs(model.cfg), 0, 2)
    assert all(row["D/r1"] > 0 for _, row in rows)


# --------------------------------------------------------------------------------------------
# TTUR
# --------------------------------------------------------------------------------------------


def test_ttur_sets_separate_learning_rates():
    model = build_tiny(tiny_config([("ttur", {})]))
    assert model.opt_d.param_groups[0]["lr"] == 4e-4 and model.opt_g.param_groups[0]["lr"] == 1e-4
    run_iterations(model, SyntheticPairs(model.cfg), 0, 2)  # the trainer's schedule keeps them apart
    assert model.opt_d.param_groups[0]["lr"] == pytest.approx(4e-4) and model.opt_g.param_groups[0]["lr"] == pytest.approx(1e-4)


# --------------------------------------------------------------------------------------------
# Image pool
# --------------------------------------------------------------------------------------------


def test_image_pool_returns_earlier_fakes_with_their_conditions():
    trick = build_trick("image-pool", {"size": "6", "p": "0.5"})
    ctx = bare_context()
    real = (torch.zeros(2, 1, 2, 2), torch.zeros(2, 2, 2, 2))
    shown_ages, earlier = [], 0
    for t in range(1, 201):
        cond, fake = torch.full((2, 1, 2, 2), float(t)), torch.full((2, 2, 2, 2), float(t))
        r, (c_out, f_out) = trick.d_inputs(real, (cond, fake), ctx)
        assert r is real
        assert torch.equal(c_out[:, :1].expand_as(f_out), f_out)  # each fake with its own condition
        values = f_out.flatten(1)[:, 0]
        if t <= 3:
            assert torch.equal(values, torch.full((2,), float(t)))  # filling: shown as they are
        else:
            earlier += int((values < t).sum())
            shown_ages += (t - values).tolist()
        assert (values <= t).all()
    rate = earlier / (2 * 197)
    assert 0.4 < rate < 0.6  # p = 0.5
    assert max(shown_ages) > 5  # some fakes are much older than the last batch
    assert trick.count == 6


def test_image_pool_state_round_trip_keeps_the_buffer():
    trick = build_trick("image-pool", {"size": "4"})
    ctx = bare_context()
    real = (torch.zeros(2, 1, 2, 2), torch.zeros(2, 2, 2, 2))
    for t in range(3):
        trick.d_inputs(real, (torch.full((2, 1, 2, 2), float(t)), torch.full((2, 2, 2, 2), float(t))), ctx)
    clone = build_trick("image-pool", {"size": "4"})
    clone.load_state_dict(trick.state_dict())
    assert clone.count == 4 and torch.equal(clone.fake, trick.fake) and torch.equal(clone.cond, trick.cond)


# --------------------------------------------------------------------------------------------
# G-EMA
# --------------------------------------------------------------------------------------------


def test_g_ema_weights_lag_behind_g():
    model = build_tiny(tiny_config([("g-ema", {"decay": 0.9, "warmup": False})]))
    trick = model.stack.tricks[0]
    initial = {k: v.clone() for k, v in model.G.state_dict().items()}
    ema_prev = {k: v.clone() for k, v in trick.ema.state_dict().items()}
    data = SyntheticPairs(model.cfg)
    run_iterations(model, data, 0, 1)
    ema, g = trick.ema.state_dict(), model.G.state_dict()
    name = next(k for k, v in g.items() if v.is_floating_point() and not torch.equal(v, initial[k]) and "weight" in k)
    assert torch.allclose(ema[name], 0.9 * ema_prev[name] + 0.1 * g[name], atol=1e-7)  # one EMA step
    run_iterations(model, data, 1, 5)
    ema, g = trick.ema.state_dict(), model.G.state_dict()
    # Between the start and G: it lags.
    dist_g = (ema[name] - g[name]).norm().item()
    dist_start = (ema[name] - initial[name]).norm().item()
    assert dist_g > 0 and dist_start > 0
    assert (g[name] - initial[name]).norm().item() > dist_start
    assert model.stack.eval_generator(model.G, model.ctx) is trick.ema
    assert not trick.ema.training and not any(p.requires_grad for p in trick.ema.parameters())


def test_g_ema_is_saved_and_used_by_colorize(tmp_path, run_cli, image_dir):
    from ganlab.infer import load_generator
    from ganlab.train import checkpoint_files, read_checkpoint

    out = tmp_path / "runs"
    code, _, err = run_cli("train", *TINY, "--data", image_dir, "--steps", "3", "--eval-every", "0", "--out", out,
                           "--trick", "g-ema:decay=0.5")
    assert code == 0, err
    run = only_run(out)
    payload = read_checkpoint(checkpoint_files(run)[0])
    assert "G_ema" in payload and payload["tricks"]["g-ema"]["updates"] == 3
    differs = [k for k in payload["G"] if payload["G"][k].is_floating_point() and not torch.equal(payload["G"][k], payload["G_ema"][k])]
    assert differs
    _, G = load_generator(run, checkpoint="ema")
    assert all(torch.equal(v, payload["G_ema"][k]) for k, v in G.state_dict().items())


# --------------------------------------------------------------------------------------------
# Weak D
# --------------------------------------------------------------------------------------------


def test_weak_d_is_smaller_and_regularised():
    from ganlab.nets import count_params

    base = build_tiny(tiny_config(ndf=8))
    weak = build_tiny(tiny_config([("weak-d", {"width": 0.5, "dropout": 0.3})], ndf=8))
    assert count_params(weak.D) < 0.4 * count_params(base.D)
    drops = [m.p for m in weak.D.modules() if isinstance(m, nn.Dropout)]
    assert drops and set(drops) == {0.3}
    assert count_params(weak.G) == count_params(base.G)
    shallow = build_tiny(tiny_config([("weak-d", {"width": 1.0, "n_layers": 1})], ndf=8))
    n_convs = lambda D: sum(isinstance(m, nn.Conv2d) for m in D.modules())  # noqa: E731
    assert n_convs(shallow.D) == n_convs(base.D) - 1
    run_iterations(weak, SyntheticPairs(weak.cfg), 0, 1)


# --------------------------------------------------------------------------------------------
# Stateful tricks through a real checkpoint and resume
# --------------------------------------------------------------------------------------------


def test_resume_with_stateful_tricks_gives_the_same_run(tmp_path, image_dir, run_cli):
    tricks = ["--trick", "image-pool:size=3", "--trick", "g-ema:decay=0.8", "--trick", "instance-noise:sigma0=0.2,anneal_steps=10",
              "--trick", "label-flip:p=0.3"]
    common = ["--data", image_dir, *TINY, "--eval-every", "0", "--save-every", "3", *tricks]
    a, b, _, _ = straight_and_resumed(run_cli, tmp_path, common, steps=6, half=3)
    for key in ("G", "D", "G_ema"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    pool_a, pool_b = a["tricks"]["image-pool"], b["tricks"]["image-pool"]
    assert pool_a["count"] == pool_b["count"] == 3 and torch.equal(pool_a["fake"], pool_b["fake"])
    assert a["tricks"]["g-ema"]["updates"] == b["tricks"]["g-ema"]["updates"] == 6


def _sub_grid_spread(G) -> float:
    """The largest ratio between the sd of two sub-grids of a PixelTCL layer's output, over G's layers."""
    from ganlab.tricks.pixeltcl import PixelTCL

    torch.manual_seed(1)
    worst = 1.0
    for m in G.modules():
        if isinstance(m, PixelTCL):
            with torch.no_grad():
                y = m(torch.randn(8, m.conv1.in_channels, 8, 8))
            sds = [float(y[..., r::2, c::2].std()) for r in (0, 1) for c in (0, 1)]
            worst = max(worst, max(sds) / min(sds))
    return worst


def test_pixeltcl_starts_without_a_checkerboard_unless_asked_for_the_networks_own_init():
    balanced = build_tiny(tiny_config([("pixeltcl", {})]))
    plain = build_tiny(tiny_config([("pixeltcl", {"init": "network"})]))
    assert _sub_grid_spread(balanced.G) < 1.6  # the four sub-grids at one scale
    assert _sub_grid_spread(plain.G) > 5.0  # N(0, 0.02) in a chain of convs: a checkerboard at step 0
    # the first map keeps the network's own draw (pix2pix N(0, 0.02)); the chain after it is rescaled
    from ganlab.tricks.pixeltcl import PixelTCL
    layer = next(m for m in balanced.G.modules() if isinstance(m, PixelTCL))
    assert float(layer.conv1.weight.std()) == pytest.approx(0.02, rel=0.2)
    assert float(layer.conv2.weight.std()) == pytest.approx((9 * layer.conv2.out_channels) ** -0.5, rel=0.2)
