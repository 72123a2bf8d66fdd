"""Only live parameters are searched: a base setting (or a trick's parameter) that the trial's
trick stack sets itself is never drawn, and a study that fixes or searches one that its
always-on tricks override is refused when it is parsed. The rule is asked of the tricks' build
hooks, so a third-party trick is handled without any change to ganlab."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from rich.console import Console

from ganlab.config import TrainConfig, TrickSpec
from ganlab.errors import UsageError
from ganlab.study import builtin_studies, load_study_file, parse_study
from ganlab.study.runner import StudyRunner
from ganlab.study.space import sample_trial
from ganlab.train.build import differing, effective_settings
from ganlab.trick._registry import registry
from ganlab.trick.params import param_infos
from ganlab.trick import NetSpec, Trick, param, registered

optuna.logging.set_verbosity(optuna.logging.ERROR)

N_TRIALS = 60
# the base settings whose drawn value must be the value the run uses, and where it shows
EFFECTIVE = {
    "lr": lambda e: {e["optim.lr_g"], e["optim.lr_d"]},
    "beta1": lambda e: {e["optim.betas_g"][0], e["optim.betas_d"][0]},
    "beta2": lambda e: {e["optim.betas_g"][1], e["optim.betas_d"][1]},
    "gan_mode": lambda e: {e["loss"]},
}


def _spec(body: str, name: str = "t"):
    return parse_study(f"[study]\nname = \"{name}\"\n{body}", f"--study {name}.toml", name)


def _draw(spec, n: int = N_TRIALS, seed: int = 0):
    """``n`` trials of ``spec`` drawn the way a study draws them, each with the configuration the
    runner builds from it and its tricks as built for the run."""
    study = optuna.create_study(directions=spec.directions, sampler=optuna.samplers.RandomSampler(seed=seed))
    runner = StudyRunner(spec, "sqlite://", Path("runs"), {}, seed, Console(quiet=True))
    known = registry()
    for _ in range(n):
        trial = study.ask()
        base, tricks = sample_trial(spec, trial)
        cfg_dict = runner.base_config()
        cfg_dict.update(base)
        cfg_dict["tricks"] = [TrickSpec(n, tuple(v.items())) for n, v in tricks]
        cfg = TrainConfig.from_dict(cfg_dict, f"study {spec.name}")
        built = [known[t.name](known[t.name].parse_params(t.values)) for t in cfg.tricks]  # as build_trick does
        yield trial, cfg, built
        study.tell(trial, [1.0] * len(spec.directions))


def _values(r) -> tuple:
    return tuple(r.choices) if r.choices is not None else (r.low, r.high)


def _typed(key, value):
    return TrainConfig.from_dict({key: value}).__getattribute__(key)


def _check_trial(spec, trial, cfg, built) -> None:
    names = {t.name for t in built}
    for key, r in spec.search:
        values = [_typed(key, v) for v in _values(r)]
        without = differing([effective_settings(cfg.replace(**{key: v})) for v in values])
        under = differing([effective_settings(cfg.replace(**{key: v}), built) for v in values])
        if key in trial.params:
            assert getattr(cfg, key) == _typed(key, trial.params[key]), (spec.name, key)
            if without:  # it passes through a build hook: it must still change what the run uses
                assert under, f"{spec.name}: {key} drawn under {sorted(names)} but changes nothing there"
            if key in EFFECTIVE:
                assert EFFECTIVE[key](effective_settings(cfg, built)) == {getattr(cfg, key)}, (spec.name, key, names)
        else:
            assert without and not under, f"{spec.name}: {key} not drawn under {sorted(names)}, yet it is live"
    by_name = {t.name: t for t in built}
    for pname, value in trial.params.items():
        if pname.startswith(("trick:", "group:")) or "." not in pname:
            continue
        tname, key = pname.split(".", 1)
        assert tname in by_name, f"{spec.name}: {pname} drawn for a trick that is off"
        field = {i.key: i.name for i in param_infos(type(by_name[tname].params))}[key]
        assert getattr(by_name[tname].params, field) == value, (spec.name, pname)


def test_every_drawn_parameter_of_every_builtin_study_reaches_the_run():
    seen_wgan = False
    for name in sorted(builtin_studies()):
        spec = load_study_file(name)
        for trial, cfg, built in _draw(spec):
            _check_trial(spec, trial, cfg, built)
            seen_wgan |= any(t.name == "wgan-gp" for t in built)
    assert seen_wgan  # loss-and-critic draws wgan-gp among lr, beta1 and gan_mode


TRICKS_AND_BASE = """
[search]
lr = { low = 1e-5, high = 1e-3, log = true }
beta1 = { low = 0.0, high = 0.9 }
beta2 = [0.99, 0.999]
gan_mode = ["vanilla", "lsgan", "hinge"]
lambda_l1 = { low = 10.0, high = 100.0 }

[tricks]
optional = ["wgan-gp", "ttur"]
"""


def test_what_wgan_gp_and_ttur_set_themselves_is_not_drawn():
    spec = _spec(TRICKS_AND_BASE)
    seen = set()
    for trial, cfg, built in _draw(spec):
        _check_trial(spec, trial, cfg, built)
        on = frozenset(t.name for t in built)
        seen.add(on)
        drawn = set(trial.params)
        assert "lambda_l1" in drawn  # never passes through a build hook: always live
        if "wgan-gp" in on:
            assert not drawn & {"lr", "beta1", "beta2", "gan_mode"}, drawn
        if "ttur" in on:
            assert "lr" not in drawn
            assert "wgan-gp.lr" not in drawn  # ttur, later in the fold, sets both rates
        if on == {"ttur"}:
            assert {"beta1", "beta2", "gan_mode"} <= drawn
        if on == {"wgan-gp"}:
            assert {"wgan-gp.lr", "wgan-gp.beta1"} <= drawn
        if on == {"wgan-gp", "ttur"}:
            assert {"wgan-gp.beta1", "wgan-gp.beta2", "ttur.lr_d", "ttur.lr_g"} <= drawn
        if not on:
            assert {"lr", "beta1", "beta2", "gan_mode"} <= drawn
    assert len(seen) == 4, seen


def _study_file(tmp_path, body: str) -> Path:
    path = tmp_path / "overridden.toml"
    path.write_text(f"# Question: a test.\n[study]\nname = \"overridden\"\nsteps = 2\n{body}")
    return path


@pytest.mark.parametrize(
    "body, label",
    [
        ("[tricks]\nalways = [\"wgan-gp\"]\n[search]\nlr = { low = 1e-4, high = 1e-3, log = true }\n", "search.lr"),
        ("[tricks]\nalways = [\"wgan-gp\"]\n[train]\nlr = 1e-4\n", "train.lr"),
        ("[tricks]\nalways = [\"wgan-gp\"]\n[train]\ngan_mode = \"hinge\"\n", "train.gan_mode"),
        ("[tricks]\nalways = [\"ttur\"]\n[search]\nlr = { low = 1e-4, high = 1e-3, log = true }\n", "search.lr"),
    ],
    ids=["wgan-gp-search-lr", "wgan-gp-train-lr", "wgan-gp-train-gan_mode", "ttur-search-lr"],
)
def test_a_setting_the_always_on_tricks_override_is_refused_in_one_line(tmp_path, run_cli, body, label):
    f = _study_file(tmp_path, body)
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "runs")
    assert code == 2, err
    lines = err.strip().splitlines()
    trick = "ttur" if "ttur" in body else "wgan-gp"
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"'{label}' is overridden by --trick {trick} (always on)" in lines[0], err
    assert f"drop {label} or make {trick} optional" in lines[0], err
    assert not (tmp_path / "runs").exists()  # refused before any trial or storage


def test_optional_tricks_never_cause_a_refusal():
    _spec("[tricks]\noptional = [\"wgan-gp\"]\n[search]\nlr = { low = 1e-4, high = 1e-3 }\ngan_mode = [\"vanilla\", \"hinge\"]\n")
    _spec("[tricks]\ngroups = { loss = [\"none\", \"wgan-gp\"] }\n[train]\ngan_mode = \"lsgan\"\n")
    # always on, but what it sets is not what is searched: beta1 is live under ttur
    _spec("[tricks]\nalways = [\"ttur\"]\n[search]\nbeta1 = [0.0, 0.5]\n")


# --- a third-party trick: the same rule, without any change to ganlab


@dataclass(frozen=True)
class NarrowDParams:
    width: int = param(8, low=1, high=256, search=(4, 16), help="D's width")


class NarrowD(Trick):
    """Sets D's width itself, whatever --ndf says."""

    name = "narrow-d-test"
    Params = NarrowDParams
    order = 30

    def configure_nets(self, spec: NetSpec) -> NetSpec:
        return dataclasses.replace(spec, ndf=self.params.width)


class FixedD(Trick):
    """Later in the fold, sets D's width again: narrow-d-test's width is then dead."""

    name = "fixed-d-test"
    order = 40

    def configure_nets(self, spec: NetSpec) -> NetSpec:
        return dataclasses.replace(spec, ndf=48)


def test_a_third_party_trick_that_sets_ndf_is_handled_by_the_same_rule():
    with registered(NarrowD, FixedD):
        with pytest.raises(UsageError) as exc:
            _spec("[tricks]\nalways = [\"narrow-d-test\"]\n[search]\nndf = [16, 32, 64]\n")
        msg = str(exc.value)
        assert "\n" not in msg
        assert "'search.ndf' is overridden by --trick narrow-d-test (always on): it sets the networks' ndf itself" in msg
        with pytest.raises(UsageError, match="'train.ndf' is overridden by --trick narrow-d-test"):
            _spec("[tricks]\nalways = [\"narrow-d-test\"]\n[train]\nndf = 16\n")
        with pytest.raises(UsageError, match="'tricks.params.narrow-d-test.width' is overridden by --trick fixed-d-test"):
            _spec("[tricks]\nalways = [\"fixed-d-test\"]\noptional = [\"narrow-d-test\"]\n"
                  "[tricks.params.narrow-d-test]\nwidth = { low = 2, high = 8 }\n")

        spec = _spec("[search]\nndf = [16, 32, 64]\nngf = [16, 32]\n[tricks]\noptional = [\"narrow-d-test\", \"fixed-d-test\"]\n")
        seen = set()
        for trial, cfg, built in _draw(spec):
            _check_trial(spec, trial, cfg, built)
            on = frozenset(t.name for t in built)
            seen.add(on)
            assert "ngf" in trial.params
            assert ("ndf" in trial.params) == (not on), (on, trial.params)
            assert ("narrow-d-test.width" in trial.params) == (on == {"narrow-d-test"}), (on, trial.params)
        assert len(seen) == 4, seen
