"""A U-Net whose encoder is torchvision's ResNet-18 body (the colourisation literature's
"pretrained encoder" generator), with a light decoder of up-sampling blocks and skips.

The first convolution takes ``in_channels`` (1 for the L channel): ImageNet's RGB filters are
summed over their input channels, which keeps the response to a grey image. Weights come
through torchvision's own loader (the torch hub cache); offline and absent, loading fails
before training with one line (see :func:`load_imagenet_resnet18`).
"""

from __future__ import annotations

import hashlib

from pathlib import Path

import torch
from torch import nn

from ganlab.errors import GanlabError
from ganlab.nets.spec import NetSpec
from ganlab.nets import blocks


def _imagenet_weights():
    from torchvision.models import ResNet18_Weights

    return ResNet18_Weights.IMAGENET1K_V1


def imagenet_weights_file() -> tuple[Path, str, str]:
    """Where torchvision keeps the ImageNet ResNet-18 file: (path, url, expected hash prefix)."""
    url = _imagenet_weights().url
    name = url.rsplit("/", 1)[-1]
    prefix = name.rsplit("-", 1)[-1].split(".")[0]
    return Path(torch.hub.get_dir()) / "checkpoints" / name, url, prefix


def _check_file(path: Path, prefix: str | None) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if prefix and not digest.startswith(prefix):
        raise GanlabError(f"{path}: checksum {digest[:8]} does not match {prefix}; delete the file and download it again")


def resnet18_weights_file(source: str) -> Path:
    """The checked file of ``--backbone-weights imagenet|PATH`` (ImageNet's fetched into torch
    hub's cache where there is internet); one clear line if it cannot be had."""
    if source != "imagenet":
        path = Path(source).expanduser()
        if not path.is_file():
            raise GanlabError(f"--backbone-weights {source}: no such file; give a ResNet-18 state dict (.pth) or 'none'")
        _check_file(path, None)
        return path
    path, url, prefix = imagenet_weights_file()
    if not path.is_file():
        try:
            _imagenet_weights().get_state_dict(progress=False, check_hash=True)  # downloads into the cache
        except Exception:
            raise GanlabError(
                f"ImageNet ResNet-18 weights are not here and cannot be downloaded: put {path.name} "
                f"(sha256 starting {prefix}, from {url}) in {path.parent}, or pass --backbone-weights PATH, "
                f"or train without them: --backbone-weights none"
            ) from None
    _check_file(path, prefix)
    return path


def load_imagenet_resnet18(source: str) -> dict:
    """The ImageNet state dict for ``--backbone-weights imagenet|PATH``; one clear line if absent."""
    state = torch.load(resnet18_weights_file(source), map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


class _Up(nn.Module):
    """Up-sample, then fuse with the encoder's skip: up -> norm -> act -> cat(skip) -> conv -> norm -> act."""

    def __init__(self, spec: NetSpec, c_in: int, c_skip: int, c_out: int, dropout: float):
        super().__init__()
        bias = blocks.conv_bias(spec.g_norm)
        self.up = nn.Sequential(
            blocks.up(spec.upsample, c_in, c_out, bias), blocks.norm(spec.g_norm, c_out), blocks.act(spec.g_up_act)
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(c_out + c_skip, c_out, 3, 1, 1, bias=bias),
            blocks.norm(spec.g_norm, c_out),
            blocks.act(spec.g_up_act),
            *([nn.Dropout(dropout)] if dropout > 0 else []),
        )

    def forward(self, x, skip):
        return self.fuse(torch.cat((skip, self.up(x)), 1))


class ResNetUnetGenerator(nn.Module):
    stride = 32

    def __init__(self, spec: NetSpec):
        super().__init__()
        from torchvision.models import resnet18

        body = resnet18(weights=None)
        if spec.backbone_weights not in ("none", ""):
            body.load_state_dict(load_imagenet_resnet18(spec.backbone_weights))
        w = body.conv1.weight.data
        body.conv1 = nn.Conv2d(spec.in_channels, 64, 7, 2, 3, bias=False)
        if spec.in_channels == 1:
            body.conv1.weight.data.copy_(w.sum(1, keepdim=True))
        elif spec.in_channels == 3:
            body.conv1.weight.data.copy_(w)
        self.stem = nn.Sequential(body.conv1, body.bn1, body.relu)  # /2, 64
        self.pool = body.maxpool  # /4
        self.layers = nn.ModuleList([body.layer1, body.layer2, body.layer3, body.layer4])  # 64,128,256,512
        d = spec.g_dropout
        self.up4 = _Up(spec, 512, 256, 256, d)
        self.up3 = _Up(spec, 256, 128, 128, 0.0)
        self.up2 = _Up(spec, 128, 64, 64, 0.0)
        self.up1 = _Up(spec, 64, 64, 64, 0.0)
        self.head_up = nn.Sequential(blocks.up(spec.upsample, 64, 32, True), blocks.act(spec.g_up_act))
        self.head = nn.Sequential(nn.Conv2d(32 + spec.in_channels, spec.out_channels, 3, 1, 1), nn.Tanh())
        self.pretrained = spec.backbone_weights not in ("none", "")

    def forward(self, x):
        s0 = self.stem(x)
        e1 = self.layers[0](self.pool(s0))
        e2 = self.layers[1](e1)
        e3 = self.layers[2](e2)
        e4 = self.layers[3](e3)
        y = self.up4(e4, e3)
        y = self.up3(y, e2)
        y = self.up2(y, e1)
        y = self.up1(y, s0)
        return self.head(torch.cat((self.head_up(y), x), 1))

    def decoder_modules(self) -> list[nn.Module]:
        """The randomly initialised part (the encoder may hold ImageNet weights)."""
        return [self.up4, self.up3, self.up2, self.up1, self.head_up, self.head]


def build_resnet18_unet(spec: NetSpec) -> ResNetUnetGenerator:
    """The ``resnet18-unet`` generator (entry point of ``ganlab.generators``). pix2pix's
    initialisation goes to the decoder (and the stem unless ImageNet weights were loaded); the
    encoder keeps torchvision's initialisation or the loaded weights."""
    G = ResNetUnetGenerator(spec)
    for m in G.decoder_modules():
        blocks.init_weights(m)
    if not G.pretrained:
        blocks.init_weights(G.stem)
    return G
