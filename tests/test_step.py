"""One ganlab step equals a textbook pix2pix update on the same seeds (fp32, CPU)."""

import copy

import pytest
import torch
import torch.nn.functional as F

from ganlab.trick._stack import TrickStack

from ganlab.trick import NetSpec, StepContext
from ganlab.nets import build_discriminator, build_generator
from ganlab.stats import StatsBus
from ganlab.train.step import Pix2PixStep


def _nets(size=32):
    torch.manual_seed(0)
    spec = NetSpec(size=size, ngf=8, ndf=8)
    return build_generator(spec), build_discriminator(spec)


def _adam(module):
    return torch.optim.Adam(module.parameters(), lr=2e-4, betas=(0.5, 0.999))


def textbook_step(G, D, opt_g, opt_d, A, B, lambda_l1=100.0):
    """The update of Isola et al.'s reference implementation (BasicModel/Pix2PixModel)."""
    fake_B = G(A)
    # backward_D
    opt_d.zero_grad()
    pred_fake = D(torch.cat((A, fake_B), 1).detach())
    loss_D_fake = F.binary_cross_entropy_with_logits(pred_fake, torch.zeros_like(pred_fake))
    pred_real = D(torch.cat((A, B), 1))
    loss_D_real = F.binary_cross_entropy_with_logits(pred_real, torch.ones_like(pred_real))
    loss_D = (loss_D_fake + loss_D_real) * 0.5
    loss_D.backward()
    opt_d.step()
    # backward_G
    for p in D.parameters():
        p.requires_grad = False
    opt_g.zero_grad()
    pred_fake = D(torch.cat((A, fake_B), 1))
    loss_G_GAN = F.binary_cross_entropy_with_logits(pred_fake, torch.ones_like(pred_fake))
    loss_G_L1 = F.l1_loss(fake_B, B) * lambda_l1
    loss_G = loss_G_GAN + loss_G_L1
    loss_G.backward()
    opt_g.step()
    for p in D.parameters():
        p.requires_grad = True
    return loss_D, loss_G


def _ganlab_step(G, D, gan_mode="vanilla"):
    opt_g, opt_d = _adam(G), _adam(D)
    ctx = StepContext(cfg=None, G=G, D=D, opt_g=opt_g, opt_d=opt_d, rng=torch.Generator().manual_seed(1),
                      device=torch.device("cpu"), gan_mode=gan_mode)
    return Pix2PixStep(G, D, opt_g, opt_d, gan_mode=gan_mode, lambda_l1=100.0, stack=TrickStack([], gan_mode), ctx=ctx)


def test_one_step_equals_the_textbook_update():
    G1, D1 = _nets()
    G2, D2 = copy.deepcopy(G1), copy.deepcopy(D1)
    torch.manual_seed(42)
    A, B = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 2, 32, 32) * 2 - 1

    step = _ganlab_step(G1, D1)
    bus = StatsBus()
    torch.manual_seed(7)  # dropout draws
    with bus.activate():
        for i in range(2):
            bus.step = i
            step(lambda: (A, B))
    rows = dict(bus.flush())

    opt_g, opt_d = _adam(G2), _adam(D2)
    torch.manual_seed(7)
    for i in range(2):
        loss_D, loss_G = textbook_step(G2, D2, opt_g, opt_d, A, B)
        assert rows[i]["D/total"] == loss_D.item()
        assert rows[i]["G/total"] == loss_G.item()

    for (n1, p1), (n2, p2) in zip(list(G1.state_dict().items()) + list(D1.state_dict().items()),
                                  list(G2.state_dict().items()) + list(D2.state_dict().items())):
        assert torch.equal(p1, p2), n1
    assert rows[1]["G/L1"] * 100 + rows[1]["G/adv"] == pytest.approx(rows[1]["G/total"], rel=1e-6)


@pytest.mark.parametrize("mode", ["lsgan", "hinge", "wgan"])
def test_other_gan_modes_train_and_report(mode):
    G, D = _nets()
    step = _ganlab_step(G, D, mode)
    bus = StatsBus()
    A, B = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 2, 32, 32) * 2 - 1
    before = [p.clone() for p in D.parameters()]
    with bus.activate():
        step(lambda: (A, B))
    row = bus.flush()[0][1]
    assert all(k in row for k in ("D/loss_real", "D/loss_fake", "G/adv", "G/L1", "D/grad_norm", "G/grad_norm", "D/acc_real"))
    assert any(not torch.equal(a, b) for a, b in zip(before, D.parameters()))


def test_loss_terms_follow_their_definitions():
    from ganlab import losses

    d = torch.tensor([[2.0, -1.0]])
    assert losses.d_real_term("hinge", d, None) == pytest.approx((0 + 2.0) / 2)
    assert losses.d_fake_term("hinge", d, None) == pytest.approx((3.0 + 0) / 2)
    assert losses.d_real_term("wgan", d, None) == pytest.approx(-0.5)
    assert losses.g_adv_term("wgan", d) == pytest.approx(-0.5)
    assert losses.d_real_term("lsgan", d, torch.ones_like(d)) == pytest.approx((1 + 4) / 2)
    assert losses.g_adv_term("vanilla", torch.zeros(3)) == pytest.approx(torch.log(torch.tensor(2.0)).item())
