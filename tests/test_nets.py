import pytest
import torch
from torch import nn

from ganlab.trick import NetSpec
from ganlab.nets import build_discriminator, build_generator, receptive_field, unet_depth


@pytest.mark.parametrize("size,depth", [(32, 5), (64, 6), (256, 8)])
def test_unet_shapes_and_depth(size, depth):
    spec = NetSpec(size=size, ngf=4, ndf=4)
    G = build_generator(spec)
    assert unet_depth(size) == depth == G.depth
    x = torch.randn(2, 1, size, size)
    y = G(x)
    assert y.shape == (2, 2, size, size)
    assert y.abs().max() <= 1.0  # tanh output
    # pix2pix: dropout in the num_downs - 5 inner decoder blocks
    assert sum(isinstance(m, nn.Dropout) for m in G.modules()) == depth - 5
    # the innermost block reaches a 1x1 bottleneck at 256 (8 downsamplings)
    feats = x
    for block in G.encoder:
        feats = block(feats)
    assert feats.shape[-1] == size // 2**depth


def test_unet_paired_channels_and_skip_connections():
    spec = NetSpec(size=32, ngf=4, in_channels=3, out_channels=3)
    G = build_generator(spec).eval()
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    G(x)[0, :, 5, 5].sum().backward()
    # with skips, the output pixel depends strongly on its own input neighbourhood
    assert x.grad[0, :, 4:7, 4:7].abs().sum() > 0


def _empirical_receptive_field(D, size=128):
    D.eval()
    x = torch.zeros(1, 3, size, size, requires_grad=True)
    out = D(x)
    c = out.shape[-1] // 2
    out[0, 0, c, c].backward()
    rows = (x.grad[0].abs().sum(0).sum(1) > 0).nonzero()
    return int(rows.max() - rows.min() + 1)


def test_patchgan_receptive_field_is_70():
    assert receptive_field(3) == 70
    spec = NetSpec(size=128, ndf=4, d_norm="none")
    D = build_discriminator(spec)
    # initialise positively so no gradient cancels out
    for m in D.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 0.01)
    assert _empirical_receptive_field(D) == 70


def test_patchgan_is_conditional_and_pixelgan_is_1x1():
    spec = NetSpec(size=64, ndf=4)
    D = build_discriminator(spec)
    assert D.model[0].in_channels == 3  # L + ab
    assert D(torch.randn(2, 3, 64, 64)).shape == (2, 1, 6, 6)
    P = build_discriminator(NetSpec(size=64, ndf=4, discriminator="pixel"))
    assert P(torch.randn(2, 3, 64, 64)).shape == (2, 1, 64, 64)
    assert all(m.kernel_size == (1, 1) for m in P.modules() if isinstance(m, nn.Conv2d))


def test_weight_init_is_normal_002():
    G = build_generator(NetSpec(size=256, ngf=16))
    w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3


def test_resnet18_unet_takes_one_channel():
    spec = NetSpec(size=64, generator="resnet18-unet", backbone_weights="none")
    G = build_generator(spec)
    assert G.stem[0].in_channels == 1
    assert G(torch.randn(2, 1, 64, 64)).shape == (2, 2, 64, 64)
    assert G.stride == 32


def test_resnet18_unet_loads_backbone_weights_from_a_file(tmp_path):
    from torchvision.models import resnet18

    ref = resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    G = build_generator(NetSpec(size=64, generator="resnet18-unet", backbone_weights=str(path)))
    assert torch.equal(G.layers[3][1].conv2.weight, ref.layer4[1].conv2.weight)
    assert torch.allclose(G.stem[0].weight, ref.conv1.weight.sum(1, keepdim=True))


def test_imagenet_weights_offline_fail_in_one_line(monkeypatch, tmp_path):
    from ganlab.errors import GanlabError

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(GanlabError) as exc:
        build_generator(NetSpec(size=64, generator="resnet18-unet", backbone_weights="imagenet"))
    msg = str(exc.value)
    assert "\n" not in msg and "resnet18-f37072fd.pth" in msg and "--backbone-weights none" in msg
