"""Discriminator warm-up: D trains alone against the pre-trained G before G sees D's gradient.

A generator pre-trained with L1 meets an untrained discriminator at the hand-over; D's first
verdicts carry no information. Training D first against the frozen, pre-trained G
gives G an informed adversarial gradient from its first adversarial update on: the warm-start
schedule of pix2pix-style colourisers (Antic, "DeOldify", 2019: pre-train G, then D against
the fixed G, then both), and of Ledig et al., "Photo-Realistic Single Image Super-Resolution
Using a Generative Adversarial Network" (SRGAN), CVPR 2017, whose GAN stage starts from an
MSE-pre-trained generator.
"""

from __future__ import annotations

from dataclasses import dataclass

from ganlab.trick import StepContext, StepPlan, Trick, param
from ganlab.stats import report


@dataclass(frozen=True)
class DWarmupParams:
    steps: int = param(100, low=0, high=10_000_000, search=(0, 500),
                       help="adversarial iterations, from the hand-over on, in which only D is updated")


class DWarmup(Trick):
    """D warm-up: for the first ``steps`` iterations of the adversarial stage (after
    ``--pretrain-steps``; from step 0 without pre-training) each iteration updates D only, on
    fakes of the current G, which stays as it is; then the step is the plain one. So when G
    takes its first adversarial update, D has learnt to tell its fakes from real images and
    its gradient carries information instead of the noise of an untrained network.

    The warm-up iterations count towards ``--steps`` (give ``--steps`` N + ``steps`` for N
    updates of G). It keeps the D updates per iteration of the tricks before it (step-ratio,
    wgan-gp's n_critic) and sets G's to zero. Logged as ``tricks/d_warmup`` (1 while warming up).

    A warmed-up D also pushes harder: on BSDS500 with the default BCE PatchGAN its adversarial
    gradient after 100 D-only iterations was as large as the lambda*L1 one, and G's val L1 and
    SWD 10 updates later were worse than after the plain hand-over (docs/tricks.md, "The
    hand-over from L1 pre-training"). Pair it with a weaker or regularised D, or a short warm-up.

    Sources: Antic, DeOldify (2019), "NoGAN": G pre-trained, then the critic alone against
    it, then both; Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a
    Generative Adversarial Network", CVPR 2017 (GAN stage started from a pre-trained G).
    """

    name = "d-warmup"
    Params = DWarmupParams
    summary = "D alone for the first N adversarial iterations, against the (pre-trained) G"
    paper = "Antic, DeOldify (NoGAN), 2019; Ledig et al., SRGAN, CVPR 2017"
    order = 35  # after step-ratio (30): keeps its D updates, drops G's
    identity = {"steps": 0}

    def warming(self, ctx: StepContext) -> bool:
        return 0 <= ctx.adv_step < self.params.steps

    def plan(self, plan: StepPlan, ctx: StepContext) -> StepPlan:
        warming = self.warming(ctx)
        report("tricks/d_warmup", float(warming))
        if not warming:
            return plan
        return StepPlan(d_steps=max(plan.d_steps, 1), g_steps=0)
