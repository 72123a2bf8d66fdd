"""``ganlab tricks`` and ``ganlab tricks NAME``."""

from __future__ import annotations

import pytest

from ganlab.trick._registry import registry


def test_the_table_lists_every_trick_with_hooks_parameters_and_conflicts(run_cli):
    code, out, _ = run_cli("tricks")
    assert code == 0
    for name in registry():
        assert name in out
    for text in ("d_targets", "configure_nets", "configure_modules", "plan", "d_loss", "after_g_update",  # hooks
                 "p = 0.05  [0, 0.5]  search 0..0.2",  # a parameter: default, allowed range, searched range
                 "lambda = 10  [0, 1000]  search 1..100 (log)",
                 "--gan-mode", "hinge|wgan|rpgan"):  # a conflict with the base loss (wrapped in the column)
        assert text in out, text


def test_conflicts_are_computed_from_the_stack():
    from ganlab.cli.tricks import incompatibilities

    found = incompatibilities(registry())
    assert {o for o, _ in found["wgan-gp"]} >= {"soft-labels", "noisy-labels", "label-flip", "r1", "step-ratio"}
    assert {o for o, _ in found["g-ema"]} == set()
    sentence = dict(found["label-flip"])["wgan-gp"]
    assert sentence.startswith("--trick label-flip cannot be combined with --trick wgan-gp: ")


@pytest.mark.parametrize("name", sorted(registry()))
def test_each_trick_has_documentation_with_its_source(run_cli, name):
    code, out, _ = run_cli("tricks", name)
    assert code == 0
    cls = registry()[name]
    assert cls.paper in out
    assert cls.__doc__.strip().splitlines()[0][:40] in out
    assert f"ganlab train --trick {name}" in out


def test_unknown_trick_suggests_the_closest(run_cli):
    code, _, err = run_cli("tricks", "spectral-nrom")
    assert code == 2
    assert "no such trick; did you mean spectral-norm?" in err
