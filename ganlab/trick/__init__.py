"""The trick author's API: everything a trick plugin imports, and nothing else.

A trick is a :class:`Trick` subclass whose filter hooks transform values inside the training
step (each hook's docstring says when it runs, what it receives and what it may return).

=====================  ======================================================================
name                   what it is for
=====================  ======================================================================
``Trick``              the base class: hooks, ``name``, ``Params``, ``order``, capabilities
``param``, ``above``   a typed parameter with its range, search range and ``active_if``
                       conditions (``above(1)``: acts while another parameter is > 1)
``Capability``         the names of what tricks provide, replace, remove, require, conflict with
``NetSpec``            how the networks are built (``configure_nets``)
``OptimSpec``          the optimisers' rates and betas (``configure_optim``)
``StepPlan``           D and G updates of an iteration (``plan``)
``Phase``              what a loss hook sees: the batch, D's outputs, ``d_forward``
``StepContext``        the read-only view of the run every per-step hook gets (``ctx.step``,
                       ``ctx.adv_step``, ``ctx.cfg``, ``ctx.rng``, ``ctx.G``...)
``uniform_like``       random targets or noise levels, drawn from ``ctx.rng``
``register``,          use a trick in this process without packaging it (a notebook, a test)
``registered``
=====================  ======================================================================

What a trick may change, and where, is listed in :mod:`ganlab.trick.base` (in short: the
values its hooks return; the networks' structure at build time; G's and D's weights in place
after their updates; learning rates and betas in ``configure_optim``; its own state; the
state of ``ctx.rng`` by drawing from it). A new kind of network block (an up-sampling layer, a
norm) is registered through :mod:`ganlab.nets` (``register_upsample`` and its siblings), a
new generator or discriminator through the ``ganlab.generators`` / ``ganlab.discriminators``
entry points.

Tricks are found through the ``ganlab.tricks`` entry points (the built-in ones are registered
exactly like a third-party plugin) or :func:`register` in this process. ``tricks/_template.py``
in the repository (installed as ``ganlab.tricks._template``) is a commented, working example
to copy; :mod:`ganlab.testing` holds the conformance checks every trick is expected to pass.

The host's machinery lives in private modules, internal to ganlab: :mod:`ganlab.trick._registry`
(finding tricks, parsing ``--trick``), :mod:`ganlab.trick._stack` (the fold and its checks) and
:mod:`ganlab.trick.params` (reading the declarations).
"""

import importlib
import warnings

from ganlab.trick.capabilities import Capability
from ganlab.trick.params import above, param
from ganlab.trick._registry import register, registered

# The rest loads torch: imported on first use, so that parsing a command line (``--trick``
# strings, ``--help``) does not.
_LAZY = {
    **dict.fromkeys(("OptimSpec", "Phase", "StepContext", "StepPlan", "Trick", "uniform_like"), "ganlab.trick.base"),
    "NetSpec": "ganlab.nets.spec",
}

# Names of ganlab's own machinery that plugins written against an earlier ganlab import from here: they
# still resolve, with a warning naming their home.
_MOVED = {
    "ENTRY_POINT_GROUP": "ganlab.trick._registry",
    "build_trick": "ganlab.trick._registry",
    "parse_trick_arg": "ganlab.trick._registry",
    "registry": "ganlab.trick._registry",
    "HOOKS": "ganlab.trick.base",
    "NoParams": "ganlab.trick.base",
    "ParamInfo": "ganlab.trick.params",
    "param_infos": "ganlab.trick.params",
    "TrickStack": "ganlab.trick._stack",
    "base_capabilities": "ganlab.trick._stack",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _MOVED:
        warnings.warn(f"ganlab.trick.{name} is internal to ganlab and not part of the trick author's API; "
                      f"import it from {_MOVED[name]}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'ganlab.trick' has no attribute '{name}'")


def __dir__():
    return sorted(__all__)


__all__ = [
    "Capability",
    "NetSpec",
    "OptimSpec",
    "Phase",
    "StepContext",
    "StepPlan",
    "Trick",
    "above",
    "param",
    "register",
    "registered",
    "uniform_like",
]
