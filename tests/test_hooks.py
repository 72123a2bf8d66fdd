"""The trick interface: parameters, the registry, the fold order and the refusal of impossible stacks."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from ganlab.errors import UsageError
from ganlab.trick._registry import ENTRY_POINT_GROUP, build_trick, parse_trick_arg, registry
from ganlab.trick._stack import TrickStack
from ganlab.trick.params import param_infos
from ganlab.trick import StepPlan, Trick, param, register, registered
from ganlab.testing import bare_context

from conftest import TINY, only_run

BUILT_IN = {
    "soft-labels", "noisy-labels", "label-flip", "instance-noise", "leaky-relu-only", "wgan-gp", "pixeltcl",
    "step-ratio", "spectral-norm", "r1", "ttur", "image-pool", "g-ema", "weak-d",
}


@pytest.fixture
def local_tricks():
    """Register tricks in this process for one test, then forget them."""
    with registered():
        yield register


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def test_parse_trick_arg():
    assert parse_trick_arg("wgan-gp:lambda=10,n_critic=5") == ("wgan-gp", {"lambda": "10", "n_critic": "5"})
    assert parse_trick_arg("soft-labels") == ("soft-labels", {})
    with pytest.raises(UsageError, match="key=value"):
        parse_trick_arg("label-flip:0.05")


def test_parameters_are_typed_and_range_checked():
    t = build_trick("wgan-gp", {"lambda": "10", "n_critic": "5"})
    assert t.params.lambda_ == 10.0 and t.params.n_critic == 5
    assert build_trick("wgan-gp", {"lambda_": 3}).params.lambda_ == 3.0  # the field name works too
    with pytest.raises(UsageError, match=r"--trick label-flip:p=2: out of range; allowed: \[0, 0.5\]"):
        build_trick("label-flip", {"p": "2"})
    with pytest.raises(UsageError, match="expected int"):
        build_trick("step-ratio", {"k": "1.5"})
    with pytest.raises(UsageError, match="unknown parameter 'sigma'; allowed: sigma0, schedule, anneal_steps"):
        build_trick("instance-noise", {"sigma": "1"})
    with pytest.raises(UsageError, match="allowed values are linear|exponential"):
        build_trick("instance-noise", {"schedule": "cosine"})
    with pytest.raises(UsageError, match="low=0.99 must not exceed high=0.95"):
        build_trick("soft-labels", {"low": "0.99", "high": "0.95"})
    with pytest.raises(UsageError, match="unknown trick; known: .*soft-labels"):
        build_trick("soft-label", {})


def test_every_parameter_declares_a_default_and_a_searchable_range():
    for name, cls in registry().items():
        for info in param_infos(cls.Params):
            space = info.search_space()
            if space is None:
                continue
            if space[0] == "categorical":
                assert info.default in space[1], (name, info.name)
            else:
                lo, hi = space[1], space[2]
                assert info.low is None or info.low <= lo, (name, info.name)
                assert info.high is None or hi <= info.high, (name, info.name)
                # Any corner of the searched box is a valid parameter set.
                cls.parse_params({info.key: lo})
                cls.parse_params({info.key: hi})


def test_search_can_exclude_a_parameter():
    @dataclass(frozen=True)
    class P:
        a: int = param(3, low=0, high=10, search=())
        b: float = param(0.5, low=0.0, high=1.0)

    infos = {i.name: i for i in param_infos(P)}
    assert infos["a"].search_space() is None
    assert infos["b"].search_space() == ("float", 0.0, 1.0, False)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def test_built_in_tricks_come_from_the_entry_point_group():
    from importlib.metadata import entry_points

    declared = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert BUILT_IN <= declared
    known = registry()
    assert BUILT_IN <= set(known)
    for name in BUILT_IN:
        cls = known[name]
        assert cls.name == name and issubclass(cls, Trick)
        assert cls.__doc__ and cls.paper and cls.summary, name
        assert cls.__module__.startswith("ganlab.tricks."), name


# --------------------------------------------------------------------------------------------
# The fold
# --------------------------------------------------------------------------------------------


class _Scale(Trick):
    name = "t-scale"
    order = 10

    def d_targets(self, t_real, t_fake, ctx):
        return t_real * 0.5, t_fake


class _Shift(Trick):
    name = "t-shift"
    order = 20

    def d_targets(self, t_real, t_fake, ctx):
        return t_real + 0.25, t_fake


class _ShiftEarly(_Shift):
    name = "t-shift-early"
    order = 5


def test_filter_hooks_fold_in_order_not_in_the_order_given():
    ctx = bare_context()
    ones = torch.ones(3)
    for given in ([_Scale(), _Shift()], [_Shift(), _Scale()]):
        stack = TrickStack(given)
        assert [t.name for t in stack.tricks] == ["t-scale", "t-shift"]
        t_real, _ = stack.d_targets(ones, torch.zeros(3), ctx)
        assert torch.equal(t_real, torch.full((3,), 0.75))  # (1 * 0.5) + 0.25
    stack = TrickStack([_Scale(), _ShiftEarly()])
    assert [t.name for t in stack.tricks] == ["t-shift-early", "t-scale"]
    assert torch.equal(stack.d_targets(ones, torch.zeros(3), ctx)[0], torch.full((3,), 0.625))  # (1 + 0.25) * 0.5


def test_ties_are_broken_by_name():
    a, b = build_trick("soft-labels", {}), build_trick("noisy-labels", {})
    assert a.order == b.order
    c, d = build_trick("weak-d", {}), build_trick("pixeltcl", {})
    stack = TrickStack([c, d, build_trick("spectral-norm", {})])
    assert [t.name for t in stack.tricks] == ["pixeltcl", "spectral-norm", "weak-d"]


def test_plan_is_folded():
    stack = TrickStack([build_trick("step-ratio", {"k": "3"})])
    assert stack.plan(StepPlan(), bare_context()) == StepPlan(3, 1)


def test_state_dict_is_keyed_by_trick_name():
    stack = TrickStack([build_trick("image-pool", {}), build_trick("label-flip", {})])
    assert set(stack.state_dict()) == {"image-pool", "label-flip"}


# --------------------------------------------------------------------------------------------
# Impossible stacks: refused with one sentence naming both tricks and the reason
# --------------------------------------------------------------------------------------------


def _refusal(names, gan_mode="vanilla") -> str:
    with pytest.raises(UsageError) as info:
        TrickStack.from_specs([(n, {}) for n in names], gan_mode)
    return str(info.value)


@pytest.mark.parametrize("label_trick", ["soft-labels", "noisy-labels", "label-flip"])
def test_label_tricks_under_a_wasserstein_critic(label_trick):
    msg = _refusal([label_trick, "wgan-gp"])
    assert msg.startswith(f"--trick {label_trick} cannot be combined with --trick wgan-gp: ")
    assert "targets" in msg and "\n" not in msg
    assert _refusal(["wgan-gp", label_trick]) == msg  # the order given does not matter


@pytest.mark.parametrize("mode", ["hinge", "wgan"])
def test_label_tricks_under_a_loss_without_targets(mode):
    msg = _refusal(["label-flip"], gan_mode=mode)
    assert msg.startswith(f"--trick label-flip cannot be used with --gan-mode {mode}: ")


def test_two_replacements_of_the_adversarial_loss(local_tricks):
    class HingeSwap(Trick):
        name = "hinge-swap"
        replaces = frozenset({"adversarial-loss"})

        def configure_loss(self, gan_mode):
            return "hinge"

    local_tricks(HingeSwap)
    msg = _refusal(["wgan-gp", "hinge-swap"])
    assert msg == "--trick hinge-swap cannot be combined with --trick wgan-gp: both replace the adversarial loss; keep one"


def test_other_refusals():
    assert _refusal(["r1", "wgan-gp"]).startswith("--trick r1 cannot be combined with --trick wgan-gp: both penalise")
    assert _refusal(["step-ratio", "wgan-gp"]) == (
        "--trick step-ratio cannot be combined with --trick wgan-gp: both replace the update ratio; keep one"
    )
    assert _refusal(["soft-labels", "noisy-labels"]).endswith("both replace the target values; keep one")
    assert "given twice" in _refusal(["r1", "r1"])


def test_compatible_stacks_pass():
    TrickStack.from_specs([(n, {}) for n in ("soft-labels", "label-flip", "instance-noise", "image-pool", "g-ema",
                                             "spectral-norm", "ttur", "r1", "step-ratio", "weak-d", "pixeltcl",
                                             "leaky-relu-only")], "vanilla")
    TrickStack.from_specs([(n, {}) for n in ("wgan-gp", "ttur", "instance-noise", "spectral-norm", "g-ema")], "vanilla")
    TrickStack.from_specs([("label-flip", {})], "lsgan")


def test_impossible_stack_is_refused_before_training(tmp_path, run_cli):
    out = tmp_path / "runs"
    code, _, err = run_cli("train", *TINY, "--steps", "2", "--out", out, "--trick", "soft-labels", "--trick", "wgan-gp:lambda=10,n_critic=5")
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("ganlab: error: --trick soft-labels cannot be combined with --trick wgan-gp: ")
    assert not out.exists() or not any(out.iterdir())  # no run folder: nothing was spent


def test_order_is_printed_and_written_into_the_run_folder(tmp_path, run_cli, image_dir):
    out = tmp_path / "runs"
    code, _, err = run_cli("train", *TINY, "--data", image_dir, "--steps", "2", "--eval-every", "0", "--save-every", "0",
                           "--out", out, "--trick", "label-flip:p=0.1", "--trick", "soft-labels", "--trick", "ttur")
    assert code == 0, err
    assert "tricks (in order): ttur -> soft-labels -> label-flip" in err
    described = json.loads((only_run(out) / "tricks.json").read_text())
    assert [t["name"] for t in described] == ["ttur", "soft-labels", "label-flip"]
    assert described[2]["params"] == {"p": 0.1}
    assert described[2]["hooks"] == ["d_targets"]


def test_tricks_from_a_config_file(tmp_path, run_cli):
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        'tricks = ["label-flip:p=0.1", {name = "instance-noise", params = {sigma0 = 0.2, schedule = "exponential"}}]\n'
    )
    code, out, err = run_cli("train", "--config", cfg, "--dry-run")
    assert code == 0, err
    stack = json.loads(out)["tricks"]
    assert [(t["name"], t["params"]) for t in stack] == [
        ("instance-noise", {"sigma0": 0.2, "schedule": "exponential", "anneal_steps": 0}),
        ("label-flip", {"p": 0.1}),
    ]
