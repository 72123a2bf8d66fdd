"""The trick interface: what a trick plugin imports.

A trick is a :class:`Trick` subclass whose filter hooks transform values inside the training
step; the :class:`TrickStack` folds them in a fixed order and refuses impossible stacks before
any work. Tricks are found through the ``ganlab.tricks`` entry points (the built-in ones are
registered exactly like a third-party plugin) or :func:`register` in this process.
``ganlab/tricks/_template.py`` is a commented example to copy; :mod:`ganlab.testing` holds the
conformance checks every trick is expected to pass.
"""

import importlib

from ganlab.trick.registry import ENTRY_POINT_GROUP, build_trick, parse_trick_arg, register, registered, registry

# The rest loads torch: imported on first use, so that parsing a command line (``--trick``
# strings, ``--help``) does not.
_LAZY = {
    **dict.fromkeys(("HOOKS", "NetSpec", "NoParams", "OptimSpec", "ParamInfo", "Phase", "StepContext", "StepPlan", "Trick",
                     "param", "param_infos"), "ganlab.trick.base"),
    **dict.fromkeys(("TrickStack", "base_capabilities"), "ganlab.trick.stack"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'ganlab.trick' has no attribute '{name}'")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


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
