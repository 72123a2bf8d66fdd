"""THE pix2pix update, calling the trick hooks at their named points.

With an empty trick stack this is the plain step of Isola et al. (2017)::

    fake = G(cond)
    D:  0.5 * [ loss(D(cond, fake.detach()), fake) + loss(D(cond, real), real) ]
    G:  loss(D(cond, fake), real) + lambda_l1 * |fake - real|_1

Under ``--gan-mode rpgan`` (the relativistic pairing loss of R3GAN) D's loss is
softplus(-(D(cond, real) - D(cond, fake))), logit by logit, logged as both halves, and G's
update makes one more D pass, on the real pair (no gradient), for
softplus(-(D(cond, fake) - D(cond, real))); the real pair goes through the ``g_inputs`` hooks
too, so that it is transformed as the fake is (noise, augmentation).

A :class:`~ganlab.trick.StepPlan` says how many D and G updates an iteration makes; every
update after the first draws a fresh batch (and so fresh fakes). Statistics go to the stats
bus as device tensors: nothing here waits for the device.

For the stability score and the degenerate-run test (:mod:`ganlab.metrics.stability`) every
D update also reports ``D/auc``, how well D's outputs rank real above fake patches (0.5:
chance, 1: perfect separation, whatever the loss; one sort), and logging iterations (the last
of every ``--log-every`` window, see :meth:`Pix2PixStep.measuring`) report ``D/chance_loss``,
the loss of a D at chance in this loss type, and ``G/adv_grad_share`` = |g_adv| / (|g_adv| +
|g_l1|), the adversarial term's share of the gradient with respect to G's output. None of
them touches the update: the weights are the same with and without them.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn

from ganlab import losses
from ganlab.trick._stack import TrickStack
from ganlab.trick import Phase, StepContext, StepPlan
from ganlab.metrics.stability import chance_loss, separation_auc
from ganlab.stats import report

Batch = tuple[torch.Tensor, torch.Tensor]

try:
    from torch.nn.utils import get_total_norm as _total_norm
except ImportError:  # torch < 2.6

    def _total_norm(tensors):
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


def grad_norm(module: nn.Module) -> torch.Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return _total_norm(grads) if grads else torch.zeros(())


class Pix2PixStep:
    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        *,
        gan_mode: str,
        lambda_l1: float,
        stack: TrickStack,
        ctx: StepContext,
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        compile: bool = False,
    ):
        self.G, self.D, self.opt_g, self.opt_d = G, D, opt_g, opt_d
        self.gan_mode, self.lambda_l1 = gan_mode, lambda_l1
        self.stack, self.ctx, self.autocast = stack, ctx, autocast
        self.label_based = gan_mode in losses.LABEL_MODES
        self.relativistic = gan_mode in losses.RELATIVISTIC_MODES
        self.threshold = losses.decision_threshold(gan_mode)
        # --compile: the step's own passes run compiled forwards (same parameters); the passes a
        # trick makes through Phase.d_forward stay eager, since a gradient penalty's double
        # backward does not go through torch.compile.
        self._G = torch.compile(G) if compile else G
        self._D = torch.compile(D) if compile and D is not None else D
        self.measure: bool | None = None  # None: at logging iterations; True/False: always/never

    @staticmethod
    def _capturing() -> bool:
        return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()

    def measuring(self) -> bool:
        """Whether this iteration reports the logging-time diagnostics: the last iteration of a
        ``cfg.log_every`` window (or the run's last), never inside a CUDA-graph capture."""
        if self._capturing():
            return False
        if self.measure is not None:
            return self.measure
        every = self.ctx.cfg.log_every if self.ctx.cfg is not None else 0  # a step built by hand logs nothing extra
        done = self.ctx.step + 1
        return bool(every) and (done % every == 0 or done == self.ctx.total_steps)

    # Forward passes ---------------------------------------------------------------------------
    def generate(self, cond: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self._G(cond).float()

    def d_forward(self, cond: torch.Tensor, x: torch.Tensor, *, eager: bool = False) -> torch.Tensor:
        with self.autocast():
            return (self.D if eager else self._D)(torch.cat((cond, x), 1)).float()

    def d_forward_eager(self, cond: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """D the way the step runs it, never compiled: what tricks get as ``Phase.d_forward``."""
        return self.d_forward(cond, x, eager=True)

    # One iteration ----------------------------------------------------------------------------
    def __call__(self, next_batch: Callable[[], Batch]) -> None:
        if self.D is None:  # the L1-only control (--gan-mode none)
            self.l1_update(next_batch)
            return
        plan = self.stack.plan(StepPlan(), self.ctx)
        cond, real = next_batch()
        fake = None
        for i in range(plan.d_steps):
            if i > 0:
                cond, real = next_batch()
            last = i == plan.d_steps - 1 and plan.g_steps > 0
            # Only the fakes the G update reuses need a graph.
            with contextlib.nullcontext() if last else torch.no_grad():
                fake = self.generate(cond)
            self.d_update(cond, real, fake.detach())
        for j in range(plan.g_steps):
            if fake is None or j > 0:
                if j > 0:
                    cond, real = next_batch()
                fake = self.generate(cond)
            self.g_update(cond, real, fake)
            fake = None

    def d_update(self, cond: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> None:
        ctx, mode = self.ctx, self.gan_mode
        (c_real, x_real), (c_fake, x_fake) = self.stack.d_inputs((cond, real), (cond, fake), ctx)
        self.opt_d.zero_grad(set_to_none=True)
        d_fake = self.d_forward(c_fake, x_fake)
        d_real = self.d_forward(c_real, x_real)
        t_real = t_fake = None
        if self.label_based:
            t_real, t_fake = self.stack.d_targets(torch.ones_like(d_real), torch.zeros_like(d_fake), ctx)
        if self.relativistic:  # one term on the paired logits, unhalved (R3GAN), split in two halves
            loss_fake = loss_real = losses.relativistic(d_real, d_fake)
        else:
            loss_fake = losses.d_fake_term(mode, d_fake, t_fake)
            loss_real = losses.d_real_term(mode, d_real, t_real)
        terms = {"fake": 0.5 * loss_fake, "real": 0.5 * loss_real}
        phase = Phase(cond=cond, real=real, fake=fake, d_real=d_real, d_fake=d_fake, d_forward=self.d_forward_eager)
        terms = self.stack.d_loss(terms, phase, ctx)
        total = sum(terms.values())
        total.backward()
        norm = grad_norm(self.D)
        self.opt_d.step()
        self.stack.after_d_update(ctx)

        report("D/loss_real", loss_real)
        report("D/loss_fake", loss_fake)
        report("D/total", total)
        report("D/out_real", d_real.mean())
        report("D/out_fake", d_fake.mean())
        report("D/acc_real", (d_real > self.threshold).float().mean())
        report("D/acc_fake", (d_fake < self.threshold).float().mean())
        report("D/grad_norm", norm)
        for name, value in terms.items():
            if name not in ("fake", "real"):
                report(f"D/{name}", value)
        if not self._capturing():
            report("D/auc", separation_auc(d_real, d_fake))  # one sort of D's outputs, every update
            chance = chance_loss(mode)
            if chance is not None and self.measuring():
                report("D/chance_loss", chance)

    def g_update(self, cond: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> None:
        ctx = self.ctx
        self.opt_g.zero_grad(set_to_none=True)
        self.D.requires_grad_(False)
        try:
            c_fake, x_fake = self.stack.g_inputs((cond, fake), ctx)  # what D judges for G's loss
            measuring = self.measuring()
            # The adversarial-share measurement takes a second gradient through D (retain_graph),
            # which a compiled graph with donated buffers refuses: at those iterations D runs eager.
            d_fake = self.d_forward(c_fake, x_fake, eager=measuring)
            d_real = None
            if self.relativistic:  # the paired real logits, as a constant
                with torch.no_grad():
                    c_real, x_real = self.stack.g_inputs((cond, real), ctx)
                    d_real = self.d_forward(c_real, x_real)
                adv = losses.relativistic(d_fake, d_real)
            else:
                adv = losses.g_adv_term(self.gan_mode, d_fake)
            rec = losses.l1(fake, real)
            terms = {"adv": adv, "l1": self.lambda_l1 * rec}
            phase = Phase(cond=cond, real=real, fake=fake, d_real=d_real, d_fake=d_fake, d_forward=self.d_forward_eager)
            terms = self.stack.g_loss(terms, phase, ctx)
            total = sum(terms.values())
            if measuring:
                self._report_grad_share(terms, fake)
            total.backward()
        finally:
            self.D.requires_grad_(True)
        norm = grad_norm(self.G)
        self.opt_g.step()
        self.stack.after_g_update(ctx)

        report("G/adv", adv)
        report("G/L1", rec)
        report("G/total", total)
        report("G/grad_norm", norm)
        for name, value in terms.items():
            if name not in ("adv", "l1"):
                report(f"G/{name}", value)

    @staticmethod
    def _report_grad_share(terms: dict, fake: torch.Tensor) -> None:
        """G/adv_grad_share: |d adv / d fake| / (|d adv / d fake| + |d l1 / d fake|), from the
        terms as the tricks left them. ``autograd.grad`` writes no ``.grad`` and keeps the graph,
        so the update that follows is unchanged."""
        adv, rec = terms.get("adv"), terms.get("l1")
        if not (isinstance(adv, torch.Tensor) and isinstance(rec, torch.Tensor) and adv.requires_grad and fake.requires_grad):
            return
        norms = []
        for term in (adv, rec):
            (g,) = torch.autograd.grad(term, fake, retain_graph=True, allow_unused=True)
            norms.append(torch.zeros((), device=fake.device) if g is None else torch.linalg.vector_norm(g.float()))
        report("G/adv_grad_share", norms[0] / (norms[0] + norms[1]).clamp_min(1e-30))

    # L1 alone: pre-training and the L1-only control ---------------------------------------------
    def _l1_step(self, next_batch: Callable[[], Batch]) -> tuple[torch.Tensor, torch.Tensor]:
        cond, real = next_batch()
        self.opt_g.zero_grad(set_to_none=True)
        rec = losses.l1(self.generate(cond), real)
        (rec * self.lambda_l1 if self.lambda_l1 > 0 else rec).backward()
        norm = grad_norm(self.G)
        self.opt_g.step()
        return rec, norm

    def l1_update(self, next_batch: Callable[[], Batch]) -> None:
        """The L1-only control (``--gan-mode none``): G trained with ``lambda_l1 * L1`` alone,
        on the same data, schedule and evaluation as an adversarial run, logged as its G."""
        rec, norm = self._l1_step(next_batch)
        self.stack.after_g_update(self.ctx)  # a trick on G alone (a moving average of its weights)
        report("G/L1", rec)
        report("G/total", self.lambda_l1 * rec)
        report("G/grad_norm", norm)

    def pretrain(self, next_batch: Callable[[], Batch]) -> None:
        """The first stage of the two-stage recipe: G trained with L1 alone, no D.

        The loss is the adversarial stage's L1 term, ``lambda_l1 * L1`` (plain L1 when
        ``lambda_l1`` is 0), so that G's Adam moments, which carry over to that stage, are
        sized for the gradients it gets there (on unscaled L1 they would be lambda_l1 times
        too small, and G's first adversarial updates many times an ordinary one).
        """
        rec, norm = self._l1_step(next_batch)
        report("pretrain/L1", rec)
        report("pretrain/grad_norm", norm)
