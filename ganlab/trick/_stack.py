"""Private to ganlab (not the trick author's API; may change without notice): the trick stack, i.e.
tricks in their fold order, the checks that refuse an impossible stack, and the fold of every
hook. The training step, the build and the cost model call tricks only through it."""

from __future__ import annotations

from typing import Mapping

from ganlab.errors import UsageError
from ganlab.losses import L1_ONLY, LABEL_MODES
from ganlab.trick.base import HOOKS, NetSpec, OptimSpec, StepContext, StepPlan, Trick
from ganlab.trick.capabilities import Capability
from ganlab.trick.params import param_infos
from ganlab.trick._registry import build_trick

__all__ = ["TrickStack", "base_capabilities"]

# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------


def base_capabilities(gan_mode: str) -> set[str]:
    """What the base step provides under ``--gan-mode gan_mode``."""
    caps = {Capability.gan(gan_mode)}
    if gan_mode in LABEL_MODES:
        caps.add(Capability.LABEL_TARGETS)
    return caps


class TrickStack:
    """Tricks in their fold order, with the checks that refuse an impossible stack."""

    def __init__(self, tricks: list[Trick], gan_mode: str = "vanilla", *, checked: bool = True):
        """``checked=False`` skips the refusal of impossible stacks, for asking what a combination
        would do (:func:`ganlab.train.build.effective_settings`); such a stack is never trained."""
        names = [t.name for t in tricks]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise UsageError(f"--trick {dup} is given twice; give each trick once with all its parameters")
        self.tricks = sorted(tricks, key=lambda t: (t.order, t.name))
        self.gan_mode = gan_mode
        if checked:
            self.check()
        self._by_hook = {h: [t for t in self.tricks if h in type(t).hooks_used()] for h in HOOKS}

    @classmethod
    def from_specs(cls, specs, gan_mode: str) -> "TrickStack":
        return cls([build_trick(name, values) for name, values in specs], gan_mode)

    def check(self) -> None:
        """Refuse impossible stacks with one sentence naming both parties and the reason."""
        source = {c: f"--gan-mode {self.gan_mode}" for c in base_capabilities(self.gan_mode)}
        removed: dict[str, str] = {}
        replaced: dict[str, str] = {}
        for t in self.tricks:
            for r in t.replaces:
                if r in replaced:
                    raise UsageError(
                        f"--trick {t.name} cannot be combined with --trick {replaced[r]}: "
                        f"both replace the {r.replace('-', ' ')}; keep one"
                    )
                replaced[r] = t.name
            for c in t.provides | t.replaces:
                source.setdefault(c, f"--trick {t.name}")
            for c in t.removes:
                removed[c] = f"--trick {t.name}"
        for c in removed:
            source.pop(c, None)
        for t in self.tricks:
            if self.gan_mode == L1_ONLY and t.needs_discriminator:
                raise UsageError(f"--trick {t.name} cannot be used with --gan-mode none: it acts on the discriminator or the "
                                 "adversarial loss, and the L1-only control has neither")
            for cap, reason in t.conflicts.items():
                if cap in source and source[cap] != f"--trick {t.name}":
                    raise UsageError(f"--trick {t.name} cannot be combined with {source[cap]}: {reason}")
            for cap in sorted(t.requires):
                if cap not in source:
                    why = t.requires_reason.get(cap, f"it needs '{cap}'")
                    if cap in removed:
                        raise UsageError(f"--trick {t.name} cannot be combined with {removed[cap]}: {why}")
                    raise UsageError(f"--trick {t.name} cannot be used with --gan-mode {self.gan_mode}: {why}")
        self.capabilities = frozenset(source)

    # The fold --------------------------------------------------------------------------------
    def configure_nets(self, spec: NetSpec) -> NetSpec:
        for t in self.tricks:
            spec = t.configure_nets(spec)
        return spec

    def configure_modules(self, G, D):
        for t in self._by_hook["configure_modules"]:
            G, D = t.configure_modules(G, D)
        return G, D

    def configure_loss(self, gan_mode: str | None = None) -> str:
        mode = self.gan_mode if gan_mode is None else gan_mode
        for t in self._by_hook["configure_loss"]:
            mode = t.configure_loss(mode)
        return mode

    def configure_optim(self, spec: OptimSpec) -> OptimSpec:
        for t in self.tricks:
            spec = t.configure_optim(spec)
        return spec

    def setup(self, ctx: StepContext) -> None:
        for t in self.tricks:
            t.setup(ctx)

    def plan(self, plan: StepPlan, ctx: StepContext) -> StepPlan:
        for t in self._by_hook["plan"]:
            plan = t.plan(plan, ctx)
        return plan

    def d_inputs(self, real_pair, fake_pair, ctx):
        for t in self._by_hook["d_inputs"]:
            real_pair, fake_pair = t.d_inputs(real_pair, fake_pair, ctx)
        return real_pair, fake_pair

    def d_targets(self, t_real, t_fake, ctx):
        for t in self._by_hook["d_targets"]:
            t_real, t_fake = t.d_targets(t_real, t_fake, ctx)
        return t_real, t_fake

    def d_loss(self, terms, phase, ctx):
        for t in self._by_hook["d_loss"]:
            terms = t.d_loss(terms, phase, ctx)
        return terms

    def g_inputs(self, fake_pair, ctx):
        for t in self._by_hook["g_inputs"]:
            fake_pair = t.g_inputs(fake_pair, ctx)
        return fake_pair

    def g_loss(self, terms, phase, ctx):
        for t in self._by_hook["g_loss"]:
            terms = t.g_loss(terms, phase, ctx)
        return terms

    def after_d_update(self, ctx) -> None:
        for t in self._by_hook["after_d_update"]:
            t.after_d_update(ctx)

    def after_g_update(self, ctx) -> None:
        for t in self._by_hook["after_g_update"]:
            t.after_g_update(ctx)

    def eval_generator(self, G, ctx):
        for t in self._by_hook["eval_generator"]:
            G = t.eval_generator(G, ctx)
        return G

    def state_dict(self) -> dict:
        return {t.name: t.state_dict() for t in self.tricks}

    def load_state_dict(self, state: Mapping[str, dict]) -> None:
        for t in self.tricks:
            if t.name in state:
                t.load_state_dict(state[t.name])

    # Description ----------------------------------------------------------------------------
    def describe(self) -> list[dict]:
        return [
            {
                "position": i,
                "name": t.name,
                "order": t.order,
                "hooks": type(t).hooks_used(),
                "params": {i.key: getattr(t.params, i.name) for i in param_infos(type(t.params))},
            }
            for i, t in enumerate(self.tricks)
        ]

    def __len__(self) -> int:
        return len(self.tricks)
