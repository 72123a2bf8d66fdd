"""A trick's parameter that acts only under another's value (``active_if``) is drawn by a study
only where it acts: no trial carries a dead parameter, and Optuna's define-by-run search space
holds it only in the trials that use it."""

from __future__ import annotations

import optuna
import pytest

from ganlab.study import parse_study
from ganlab.study.space import sample_trial
from ganlab.trick._registry import registry
from ganlab.trick.params import param_infos

optuna.logging.set_verbosity(optuna.logging.ERROR)

CONDITIONAL = ["soft-labels", "step-ratio", "adv-ramp", "image-pool", "instance-noise", "r1"]


def _spec(body: str):
    return parse_study(f'[study]\nname = "c"\nobjectives = ["swd"]\n{body}', "--study c.toml", "c")


def _trials(spec, n: int, seed: int = 0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))  # in memory
    for _ in range(n):
        trial = study.ask()
        base, tricks = sample_trial(spec, trial)
        yield trial, dict(tricks)
        study.tell(trial, 1.0)


def _dead(trial, tricks) -> list[str]:
    """The trial's drawn trick parameters whose declared conditions its values do not meet."""
    known = registry()
    dead = []
    for key in trial.params:
        name, dot, pkey = key.partition(".")
        if not dot:
            continue
        infos = param_infos(known[name].Params)
        values = {i.key: i.default for i in infos}
        values.update(tricks[name])
        info = next(i for i in infos if i.key == pkey)
        if not info.is_active(values):
            dead.append(f"{key} ({info.describe_condition()} fails at {values})")
    return dead


def test_two_hundred_trials_draw_no_dead_parameter():
    spec = _spec(f"[tricks]\noptional = {CONDITIONAL!r}\n".replace("'", '"'))
    drawn: dict[str, list] = {}
    for trial, tricks in _trials(spec, 200):
        assert _dead(trial, tricks) == [], trial.number
        for key, value in trial.params.items():
            drawn.setdefault(key, []).append((value, tricks))
    # the conditional parameters were drawn, and only under their conditions
    assert {t["soft-labels"]["two_sided"] for _, t in drawn["soft-labels.fake_low"]} == {True}
    assert {t["soft-labels"]["two_sided"] for _, t in drawn["soft-labels.two_sided"] if "fake_low" not in t["soft-labels"]} == {False}
    assert all(t["step-ratio"]["k"] > 1 for _, t in drawn["step-ratio.favour"])
    assert any(t["step-ratio"]["k"] == 1 for _, t in drawn["step-ratio.k"])  # k = 1 was drawn: favour absent there
    assert all(t["adv-ramp"]["steps"] > 0 for _, t in drawn["adv-ramp.shape"])
    assert len(drawn["soft-labels.fake_low"]) == len(drawn["soft-labels.fake_high"]) > 10


def test_a_fixed_controlling_value_decides_once_for_the_whole_study():
    off = _spec('[tricks]\nalways = ["soft-labels"]\n[tricks.fixed.soft-labels]\ntwo_sided = false\n')
    on = _spec('[tricks]\nalways = ["soft-labels"]\n[tricks.fixed.soft-labels]\ntwo_sided = true\n')
    assert all("soft-labels.fake_low" not in t.params for t, _ in _trials(off, 20))
    assert all({"soft-labels.fake_low", "soft-labels.fake_high"} <= set(t.params) for t, _ in _trials(on, 20))


def test_the_default_of_an_undrawn_controller_decides():
    # step-ratio's k searched over (1, 1): never above 1, so favour is never drawn
    spec = _spec('[tricks]\nalways = ["step-ratio"]\n[tricks.params.step-ratio]\nk = { low = 1, high = 1 }\n')
    for trial, tricks in _trials(spec, 10):
        assert "step-ratio.favour" not in trial.params and tricks["step-ratio"]["k"] == 1


def test_ganlab_tricks_shows_the_conditions(run_cli):
    code, out, _ = run_cli("tricks", "soft-labels")
    assert code == 0
    assert "acts only when" in out
    lines = [line for line in out.splitlines() if line.startswith(("│ fake_low ", "│ fake_high "))]
    assert len(lines) == 2 and all("two_sided = true" in line for line in lines)
    code, out, _ = run_cli("tricks", "label-flip")
    assert code == 0 and "acts only when" not in out


@pytest.mark.parametrize("name", CONDITIONAL)
def test_the_built_in_conditions_are_declared(name):
    assert any(i.active_if for i in param_infos(registry()[name].Params))
