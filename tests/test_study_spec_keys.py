"""The [study] table's keys are declared once, on StudySpec (``study_key``): parsing, types,
choices and bounds all come from that declaration."""

from __future__ import annotations

import dataclasses

import pytest

from ganlab.errors import UsageError
from ganlab.study.spec import StudySpec, parse_study

DECLARED = [f for f in dataclasses.fields(StudySpec) if "study" in f.metadata]


def test_every_simple_key_is_declared_with_its_meaning():
    names = {f.name for f in DECLARED}
    assert {"sampler", "pruner", "steps", "seeds", "trials", "keep_checkpoints", "prune_patience"} <= names
    assert all(f.metadata["study"]["help"] for f in DECLARED)


@pytest.mark.parametrize("field", DECLARED, ids=lambda f: f.name)
def test_each_declared_key_is_typed_and_bounded_by_its_declaration(field):
    meta = field.metadata["study"]
    with pytest.raises(UsageError, match=f"'study.{field.name}' = "):
        parse_study(f"[study]\n{field.name} = [1]\n", "w", "n")  # a list is no key's type
    if meta["choices"] is not None:
        with pytest.raises(UsageError, match="choose"):
            parse_study(f"[study]\n{field.name} = \"no-such-choice\"\n", "w", "n")
        last = meta["choices"][-1]
        spec = parse_study(f"[study]\nobjectives = [\"swd\"]\n{field.name} = \"{last}\"\n", "w", "n")
        assert getattr(spec, field.name) == last
    if meta["low"] is not None:
        with pytest.raises(UsageError, match=f"must be (>= {meta['low']}|in \\[{meta['low']}, )"):
            parse_study(f"[study]\n{field.name} = {meta['low'] - 1}\n", "w", "n")
        assert getattr(parse_study(f"[study]\n{field.name} = {meta['low'] + 1}\n", "w", "n"), field.name) == meta["low"] + 1


def test_a_tpe_study_starts_without_optunas_experimental_warning():
    import warnings

    import optuna

    from ganlab.study.storage import make_sampler

    spec = parse_study('[study]\nsampler = "tpe"\n', "w", "n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", optuna.exceptions.ExperimentalWarning)
        assert isinstance(make_sampler(spec, 0), optuna.samplers.TPESampler)
