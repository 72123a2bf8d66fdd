"""A copy-me template for a new ganlab trick.

1. Copy this file to ``tricks/<your_trick>.py`` (installed as ``ganlab.tricks``) (or into your own package) and rename the
   classes. Keep one trick per file.
2. Declare the parameters in a frozen dataclass with :func:`ganlab.trick.param`: the default,
   the valid range (``low``/``high`` or ``choices``) and the range a study searches
   (``search``, ``log``). ``ganlab tricks``, ``--trick name:key=value`` and ``ganlab study``
   all read this one declaration; there is no second list.
3. Override only the hooks you need (see the table in :mod:`ganlab.trick`). Filter hooks
   *return* the value they transform; never change the arguments in place.
4. Declare what the trick provides, replaces, removes, requires and conflicts with, so an
   impossible stack is refused before training with one sentence.
5. Draw every random number from ``ctx.rng`` (``torch.rand(..., generator=ctx.rng,
   device=...)``), never from the global RNG, so runs are reproducible and the baseline's
   random stream is untouched.
6. Keep state that must survive a resume (counters, buffers, averages) in ``state_dict()`` /
   ``load_state_dict()``.
7. Report statistics with ``ganlab.stats.report(name, tensor)``: cheap, no ``.item()``.
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

This template is a working trick (``example-scale``: it scales D's targets), but it is not
registered, so it never appears in ``ganlab tricks``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganlab.trick import StepContext, Trick, param
from ganlab.stats import report


@dataclass(frozen=True)
class ExampleParams:
    # param(default, low=, high=, choices=, search=, log=, help=)
    scale: float = param(0.9, low=0.0, high=1.0, search=(0.8, 1.0), help="factor for the real targets")
    jitter: float = param(0.0, low=0.0, high=0.2, help="U[-jitter, jitter] noise added to the real targets")

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
    replaces: frozenset[str] = frozenset({"target-values"})  # provided exclusively: two can't stack
    removes: frozenset[str] = frozenset()  # e.g. a Wasserstein critic removes "label-targets"
    requires = frozenset({"label-targets"})  # vanilla / lsgan provide it
    requires_reason = {"label-targets": "it scales D's real targets, and a Wasserstein or hinge loss has no targets"}
    conflicts: dict[str, str] = {}  # capability -> the reason printed when both are stacked
    identity = {"scale": 1.0, "jitter": 0.0}  # parameters at which the step is unchanged

    def __init__(self, params=None):
        super().__init__(params)
        self.calls = 0  # example state that a checkpoint keeps

    def d_targets(self, t_real: torch.Tensor, t_fake: torch.Tensor, ctx: StepContext):
        p = self.params
        t_real = t_real * p.scale
        if p.jitter > 0:
            noise = torch.rand(t_real.shape, generator=ctx.rng, device=t_real.device, dtype=t_real.dtype)
            t_real = t_real + (2 * noise - 1) * p.jitter
        self.calls += 1
        report("tricks/example_real_target", t_real.mean())
        return t_real, t_fake

    def state_dict(self) -> dict:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        self.calls = int(state.get("calls", 0))
