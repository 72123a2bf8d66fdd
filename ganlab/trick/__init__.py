"""The trick interface: what a trick plugin imports.

A trick is a :class:`Trick` subclass whose filter hooks transform values inside the training
step; the :class:`TrickStack` folds them in a fixed order and refuses impossible stacks before
any work. Tricks are found through the ``ganlab.tricks`` entry points (the built-in ones are
registered exactly like a third-party plugin) or :func:`register` in this process.
``ganlab/tricks/_template.py`` is a commented example to copy; :mod:`ganlab.testing` holds the
conformance checks every trick is expected to pass.
"""

from ganlab.trick.base import (
    HOOKS,
    NetSpec,
    NoParams,
    OptimSpec,
    ParamInfo,
    Phase,
    StepContext,
    StepPlan,
    Trick,
    param,
    param_infos,
)
from ganlab.trick.registry import ENTRY_POINT_GROUP, build_trick, parse_trick_arg, register, registered, registry
from ganlab.trick.stack import TrickStack, base_capabilities

__all__ = [
    "ENTRY_POINT_GROUP",
    "HOOKS",
    "NetSpec",
    "NoParams",
    "OptimSpec",
    "ParamInfo",
    "Phase",
    "StepContext",
    "StepPlan",
    "Trick",
    "TrickStack",
    "base_capabilities",
    "build_trick",
    "param",
    "param_infos",
    "parse_trick_arg",
    "register",
    "registered",
    "registry",
]
