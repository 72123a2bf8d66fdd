"""Two time-scale update rule: separate learning rates for the discriminator and the generator.

Heusel, Ramsauer, Unterthiner, Nessler, Hochreiter: "GANs Trained by a Two Time-Scale Update
Rule Converge to a Local Nash Equilibrium", NeurIPS 2017.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ganlab.trick import OptimSpec, Trick, param


@dataclass(frozen=True)
class TturParams:
    lr_d: float = param(4e-4, low=1e-7, high=1e-1, search=(1e-5, 1e-3), log=True, help="the discriminator's learning rate")
    lr_g: float = param(1e-4, low=1e-7, high=1e-1, search=(1e-5, 1e-3), log=True, help="the generator's learning rate")


class Ttur(Trick):
    """TTUR: the discriminator and the generator learn at their own rates (default D 4e-4,
    G 1e-4): a faster D tracks the current G closely, which, with the slower G, makes the
    alternating updates converge to a local Nash equilibrium. Overrides --lr (and the rates
    of wgan-gp, which runs before it); --lr-decay-steps still applies to both.

    Paper: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
    Nash Equilibrium", NeurIPS 2017.
    """

    name = "ttur"
    Params = TturParams
    summary = "separate learning rates for D and G (default 4e-4 / 1e-4)"
    paper = "Heusel et al., GANs Trained by a Two Time-Scale Update Rule, NeurIPS 2017"
    order = 25
    identity = {"lr_d": 2e-4, "lr_g": 2e-4}  # the trainer's default --lr

    def configure_optim(self, spec: OptimSpec) -> OptimSpec:
        return dataclasses.replace(spec, lr_d=self.params.lr_d, lr_g=self.params.lr_g)
