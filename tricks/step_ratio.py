"""D/G update ratio: k discriminator updates per generator update, or the other way round.

Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014 (Algorithm 1, k steps of D per
step of G); Arjovsky, Chintala, Bottou, "Wasserstein GAN", ICML 2017 (n_critic).
"""

from __future__ import annotations

from dataclasses import dataclass

from ganlab.trick import Capability, StepContext, StepPlan, Trick, above, param
from ganlab.stats import report


@dataclass(frozen=True)
class StepRatioParams:
    k: int = param(2, low=1, high=20, search=(1, 5), help="updates of the favoured network per update of the other")
    favour: str = param("d", choices=("d", "g"), help="d: k D updates per G update; g: k G updates per D update",
                        active_if={"k": above(1)})


class StepRatio(Trick):
    """Step ratio: each iteration makes ``k`` discriminator updates and one generator update
    (``favour=d``), or one discriminator update and ``k`` generator updates (``favour=g``).
    Every extra update draws a fresh batch, so each D update sees fresh fakes from the current
    G. Logged as ``tricks/d_steps`` and ``tricks/g_steps``.

    Papers: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014 (Algorithm 1);
    Arjovsky et al., "Wasserstein GAN", ICML 2017.
    """

    name = "step-ratio"
    Params = StepRatioParams
    summary = "k D updates per G update (or k G updates per D update), each on a fresh batch"
    paper = "Goodfellow et al., NeurIPS 2014 (Algorithm 1)"
    order = 30
    replaces = frozenset({Capability.UPDATE_RATIO})
    identity = {"k": 1}

    def plan(self, plan: StepPlan, ctx: StepContext) -> StepPlan:
        k = self.params.k
        plan = StepPlan(d_steps=k, g_steps=1) if self.params.favour == "d" else StepPlan(d_steps=1, g_steps=k)
        report("tricks/d_steps", plan.d_steps)
        report("tricks/g_steps", plan.g_steps)
        return plan
