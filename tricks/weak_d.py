"""A weaker discriminator: narrower, shallower or dropout-regularised.

The "less powerful discriminator" of colourisation practice: with a full PatchGAN, D can win
outright early and G's adversarial gradient then carries little. Why that hurts: Arjovsky &
Bottou, "Towards Principled Methods for Training Generative Adversarial Networks", ICLR 2017
(a near-perfect discriminator makes the generator's gradient vanish or become unstable).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ganlab.trick import NetSpec, Trick, param


@dataclass(frozen=True)
class WeakDParams:
    width: float = param(0.5, low=0.05, high=1.0, search=(0.125, 1.0), log=True, help="multiplies D's width (--ndf)")
    dropout: float = param(0.0, low=0.0, high=0.9, search=(0.0, 0.5), help="dropout after each hidden block of D")
    n_layers: int = param(0, low=0, high=8, search=(0, 3), help="PatchGAN depth (0: keep --n-layers; fewer layers see smaller patches)")


class WeakD(Trick):
    """Weak D: a smaller or dropout-regularised discriminator, so that it does not win outright
    before the generator has learnt anything. ``width`` scales D's channels (default half),
    ``dropout`` adds dropout after each hidden block, ``n_layers`` (when > 0 and smaller than
    --n-layers) makes the PatchGAN shallower, with smaller patches.

    Source: the "less powerful discriminator" advice of colourisation projects whose G could
    not learn against a full PatchGAN; the reason is in Arjovsky & Bottou, "Towards Principled
    Methods for Training Generative Adversarial Networks", ICLR 2017.
    """

    name = "weak-d"
    Params = WeakDParams
    summary = "a narrower / shallower / dropout-regularised discriminator"
    paper = "Arjovsky & Bottou, Towards Principled Methods for Training GANs, ICLR 2017"
    order = 20
    identity = {"width": 1.0, "dropout": 0.0, "n_layers": 0}

    def configure_nets(self, spec: NetSpec) -> NetSpec:
        p = self.params
        n_layers = min(spec.n_layers, p.n_layers) if p.n_layers > 0 else spec.n_layers
        return dataclasses.replace(spec, d_width=spec.d_width * p.width, d_dropout=p.dropout, n_layers=n_layers)
