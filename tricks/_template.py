"""A copy-me template for a new ganlab trick.

This file is ``tricks/_template.py`` in the repository, installed as ``ganlab.tricks._template``.

1. Copy it to ``tricks/<your_trick>.py`` (or into your own package) and rename the classes.
   Keep one trick per file. Import only from :mod:`ganlab.trick` (the author API),
   :mod:`ganlab.stats` and, for new network blocks, :mod:`ganlab.nets`.
2. Declare the parameters in a frozen dataclass with :func:`ganlab.trick.param`: the default,
   the valid range (``low``/``high`` or ``choices``) and the range a study searches
   (``search``, ``log``). A parameter that acts only under another's value says so with
   ``active_if`` (``active_if={"two_sided": True}``, ``{"k": above(1)}``): a study then draws
   it only where it acts. ``ganlab tricks``, ``--trick name:key=value`` and ``ganlab study``
   all read this one declaration; there is no second list.
3. Override only the hooks you need (each hook's docstring in :class:`ganlab.trick.Trick` says
   when it runs, what it receives and what it may return). Filter hooks *return* the value they
   transform; never change the arguments in place. ``ctx`` (:class:`ganlab.trick.StepContext`)
   is read-only: ``ctx.step``, ``ctx.adv_step`` (the iteration in the adversarial stage),
   ``ctx.cfg``, ``ctx.rng``, ``ctx.G``... What a trick may change, and where, is listed in
   :mod:`ganlab.trick.base`.
4. Declare what the trick provides, replaces, removes, requires and conflicts with, by the
   names in :class:`ganlab.trick.Capability`, so an impossible stack is refused before training
   with one sentence.
5. Draw every random number from ``ctx.rng`` (``uniform_like(t, low, high, ctx.rng)``,
   ``torch.rand(..., generator=ctx.rng, device=...)``), never from the global RNG, so runs are
   reproducible and the baseline's random stream is untouched.
6. Keep state that must survive a resume (counters, buffers, averages) in ``state_dict()`` /
   ``load_state_dict()``.
7. Report statistics with ``ganlab.stats.report("tricks/<name>", tensor)``: cheap, no ``.item()``.
8. Say at which parameters the trick changes nothing (``identity``), or ``None``. A trick that
   makes extra passes through D (a gradient penalty) says how many in ``penalty_passes(step)``;
   one that keeps copies of G's weights (a moving average) in ``g_copies()``: ``ganlab bench``
   counts its FLOPs and the memory check its memory from these.
9. Register it under the entry-point group ``ganlab.tricks`` (``pyproject.toml``)::

       [project.entry-points."ganlab.tricks"]
       my-trick = "my_package.my_trick:MyTrick"

   then ``pip install -e .``; ``ganlab tricks`` lists it and ``ganlab train --trick my-trick``
   uses it.
10. Run the conformance checks shipped with ganlab against it (``tests/test_my_trick.py``)::

       from ganlab.testing import TrickConformanceTests

       class TestMyTrick(TrickConformanceTests):
           trick = "my-trick"

This template is a working trick (``example-scale``: it scales D's real targets), but it is not
registered, so it never appears in ``ganlab tricks``; ganlab's tests run the conformance checks
on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganlab.stats import report
from ganlab.trick import Capability, StepContext, Trick, above, param, uniform_like


@dataclass(frozen=True)
class ExampleParams:
    # param(default, low=, high=, choices=, search=, log=, help=, active_if=)
    scale: float = param(0.9, low=0.0, high=1.0, search=(0.8, 1.0), help="factor for the real targets")
    jitter: float = param(0.0, low=0.0, high=0.2, help="U[-jitter, jitter] noise added to the real targets")
    jitter_start: int = param(0, low=0, high=100_000, search=(0, 1000), active_if={"jitter": above(0)},
                              help="adversarial iteration from which the jitter is added")

    def __post_init__(self):  # cross-field checks: raise ValueError with a readable message
        if self.jitter > self.scale:
            raise ValueError(f"jitter={self.jitter} must not exceed scale={self.scale}")


class ExampleScale(Trick):
    """One paragraph that says what the trick does, why it helps, and what it logs.

    ``ganlab tricks NAME`` prints this docstring, so end with the source:

    Paper: Author et al., "Title", Venue Year.
    """

    name = "example-scale"  # the --trick name; must equal the entry point's name
    Params = ExampleParams
    summary = "real targets scaled by `scale` (a template, not registered)"  # one line for the table
    paper = "Author et al., Title, Venue Year"
    order = 60  # position in the fold: smaller runs first; ties by name
    provides: frozenset[str] = frozenset()  # capabilities this trick adds
    replaces = frozenset({Capability.TARGET_VALUES})  # provided exclusively: two such tricks can't stack
    removes: frozenset[str] = frozenset()  # e.g. a Wasserstein critic removes Capability.LABEL_TARGETS
    requires = frozenset({Capability.LABEL_TARGETS})  # vanilla / lsgan provide it
    requires_reason = {Capability.LABEL_TARGETS: "it scales D's real targets, and a Wasserstein or hinge loss has no targets"}
    conflicts: dict[str, str] = {}  # capability -> the reason printed when both are stacked
    identity = {"scale": 1.0, "jitter": 0.0}  # parameters at which the step is unchanged

    def __init__(self, params=None):
        super().__init__(params)
        self.calls = 0  # example state that a checkpoint keeps

    def d_targets(self, t_real: torch.Tensor, t_fake: torch.Tensor, ctx: StepContext):
        p = self.params
        t_real = t_real * p.scale
        if p.jitter > 0 and ctx.adv_step >= p.jitter_start:
            t_real = t_real + uniform_like(t_real, -p.jitter, p.jitter, ctx.rng)
        self.calls += 1
        report("tricks/example_real_target", t_real.mean())
        return t_real, t_fake

    def state_dict(self) -> dict:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        self.calls = int(state.get("calls", 0))
