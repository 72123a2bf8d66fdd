"""The report names the configurations that cannot be told from the L1-only control in image
quality, with the adversarial share of G's gradient as a number (no threshold label)."""

from __future__ import annotations

from types import SimpleNamespace

from ganlab.study.evidence import ArmRuns, like_l1_control_lines

SEEDS = range(10)


def _arm(label: str, kind: str, swd: list[float]) -> ArmRuns:
    return ArmRuns({"label": label, "kind": kind}, {"swd": dict(zip(SEEDS, swd)), "instability": {}}, [])


def _confirm(shares: dict[str, float]):
    trials = [SimpleNamespace(user_attrs={"arm": {"label": label, "seed": s}, "adv_grad_share": share})
              for label, share in shares.items() for s in SEEDS]
    return SimpleNamespace(get_trials=lambda deepcopy=False: trials)


def test_a_configuration_no_better_than_the_control_is_named_with_its_share():
    control = [50.0 + (s % 3) for s in SEEDS]
    arms = {
        "baseline": _arm("baseline", "baseline", [c - 10.0 for c in control]),  # clearly better than the control
        "trial-0": _arm("trial-0", "chosen", [c + (1.0 if s % 2 else -1.0) for s, c in zip(SEEDS, control)]),  # the same
        "l1-only": _arm("l1-only", "control", control),
    }
    lines = like_l1_control_lines(_confirm({"baseline": 0.4, "trial-0": 0.03, "l1-only": 0.0}), arms,
                                  ["swd", "instability"], ["minimize", "minimize"])
    text = "\n".join(lines)
    assert "### Like the L1-only control" in text
    assert "**trial-0**" in text and "0.03" in text
    assert "**baseline**" not in text  # its interval against the control excludes 0


def test_nothing_is_said_without_a_control_or_with_too_few_seeds():
    arms = {"baseline": _arm("baseline", "baseline", [1.0] * 10), "trial-0": _arm("trial-0", "chosen", [1.0] * 10)}
    assert like_l1_control_lines(_confirm({}), arms, ["swd"], ["minimize"]) == []
    few = {"baseline": ArmRuns({"label": "baseline", "kind": "baseline"}, {"swd": {0: 1.0, 1: 2.0}}, []),
           "l1-only": ArmRuns({"label": "l1-only", "kind": "control"}, {"swd": {0: 1.5, 1: 1.0}}, [])}
    assert like_l1_control_lines(_confirm({}), few, ["swd"], ["minimize"]) == []
