"""The trick author's API: what ganlab.trick exports, the hooks' documentation, the read-only
context, the capability names, the template the docs name, and where tricks may import from."""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import ganlab.trick
from ganlab.testing import ConformanceError, bare_context, check_conditions, check_shapes, tiny_config
from ganlab.trick import Capability, StepContext, Trick, above, param, uniform_like
from ganlab.trick._registry import registry
from ganlab.trick.base import HOOKS
from ganlab.trick.params import param_infos

ROOT = Path(__file__).resolve().parents[1]

AUTHOR_API = {"Capability", "NetSpec", "OptimSpec", "Phase", "StepContext", "StepPlan", "Trick", "above", "param",
              "register", "registered", "uniform_like"}
HOST = {"ENTRY_POINT_GROUP", "HOOKS", "NoParams", "ParamInfo", "TrickStack", "base_capabilities", "build_trick",
        "param_infos", "parse_trick_arg", "registry"}


def test_the_package_exports_the_author_api_and_nothing_else():
    assert set(ganlab.trick.__all__) == AUTHOR_API
    assert set(dir(ganlab.trick)) == AUTHOR_API
    for name in AUTHOR_API:
        assert getattr(ganlab.trick, name) is not None


@pytest.mark.parametrize("name", sorted(HOST))
def test_the_hosts_machinery_is_reachable_from_its_own_module_with_a_warning_here(name):
    with pytest.warns(DeprecationWarning, match=f"ganlab.trick.{name} is internal to ganlab") as caught:
        value = getattr(ganlab.trick, name)
    home = re.search(r"import it from (\S+)", str(caught[-1].message)).group(1)
    assert getattr(importlib.import_module(home), name) is value


def test_every_hook_has_its_own_docstring():
    for hook in (*HOOKS, "load_state_dict"):
        doc = getattr(Trick, hook).__doc__
        assert doc and len(doc.split()) >= 8, hook
    docs = [getattr(Trick, h).__doc__ for h in HOOKS]
    assert len(set(docs)) == len(docs)


def test_the_template_the_docs_name_exists_and_imports():
    named = set(re.findall(r"``(tricks/[\w./]+\.py)``", ganlab.trick.__doc__ or ""))
    named |= set(re.findall(r"``(tricks/[\w./]+\.py)``", Trick.__doc__ or ""))
    assert named == {"tricks/_template.py"}
    assert (ROOT / "tricks" / "_template.py").is_file()
    assert "ganlab.tricks._template" in ganlab.trick.__doc__
    module = importlib.import_module("ganlab.tricks._template")
    assert module.ExampleScale.name == "example-scale" and "example-scale" not in registry()


def test_a_copy_of_the_template_is_a_working_trick(tmp_path, monkeypatch):
    """What a new author does first: copy the template, rename it, run the conformance kit."""
    text = (ROOT / "tricks" / "_template.py").read_text()
    text = text.replace('name = "example-scale"', 'name = "my-trick"').replace("class ExampleScale", "class MyTrick")
    (tmp_path / "my_trick.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("my_trick")
    check_shapes(module.MyTrick, {"scale": 0.8, "jitter": 0.1})
    assert check_conditions(module.MyTrick)  # jitter_start acts only while jitter > 0


# --------------------------------------------------------------------------------------------
# The context a trick reads
# --------------------------------------------------------------------------------------------


def test_the_context_is_read_only_to_tricks():
    ctx = bare_context(step=12, total_steps=40, cfg=tiny_config(pretrain_steps=10, steps=30))
    for name in ("cfg", "G", "D", "opt_g", "opt_d", "rng", "device", "gan_mode", "total_steps", "adv_step", "anything"):
        with pytest.raises(AttributeError, match=f"StepContext.{name} is read-only"):
            setattr(ctx, name, None)
    with pytest.raises(Exception):  # the configuration is frozen
        ctx.cfg.lr = 1.0
    assert (ctx.step, ctx.adv_step, ctx.adv_total_steps, ctx.pretrain_steps) == (12, 2, 30, 10)
    ctx.step = 5  # the loop's clock
    assert ctx.adv_step == -5


def test_the_adversarial_step_without_a_configuration():
    ctx = StepContext(cfg=None, G=None, D=None, opt_g=None, opt_d=None, rng=torch.Generator(), device=torch.device("cpu"),
                      gan_mode="vanilla", step=7, total_steps=9)
    assert (ctx.adv_step, ctx.adv_total_steps) == (7, 9)


def test_uniform_like_draws_from_the_generator_given():
    t = torch.zeros(2, 1, 4, 4)
    a = uniform_like(t, 0.7, 1.2, torch.Generator().manual_seed(3))
    b = uniform_like(t, 0.7, 1.2, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == t.shape and a.dtype == t.dtype
    assert 0.7 <= a.min() and a.max() <= 1.2 and torch.equal(t, torch.zeros_like(t))


# --------------------------------------------------------------------------------------------
# Capabilities and imports of the built-in tricks
# --------------------------------------------------------------------------------------------


def test_built_in_tricks_name_capabilities_by_the_constants():
    known = {v: k for k, v in vars(Capability).items() if k.isupper()}
    for name, cls in registry().items():
        if not cls.__module__.startswith("ganlab.tricks."):
            continue
        used = set(cls.provides) | set(cls.replaces) | set(cls.removes) | set(cls.requires) | set(cls.conflicts)
        assert used <= set(known), f"{name} uses {sorted(used - set(known))}: add it to ganlab.trick.Capability"
    for path in (ROOT / "tricks").glob("*.py"):
        text = path.read_text()
        for cap, const in known.items():
            assert f'"{cap}"' not in text, f"{path.name} spells '{cap}'; write Capability.{const}"


# The author's API, the stats bus, the network-extension surface and the pure loss functions:
# never another trick, the host's private modules, the trainer or the study.
ALLOWED_IMPORTS = {"ganlab.trick", "ganlab.stats", "ganlab.nets", "ganlab.nets.blocks", "ganlab.losses"}


def _allowed(module: str) -> bool:
    """The public surface, or a helper module of the built-in tricks (``tricks/_augment.py``:
    a leading underscore, no trick in it), never another trick."""
    if module in ALLOWED_IMPORTS:
        return True
    helper = module.removeprefix("ganlab.tricks.")
    return module.startswith("ganlab.tricks._") and helper != "_template" and "." not in helper


def test_built_in_tricks_import_only_the_public_surface():
    for path in sorted((ROOT / "tricks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ganlab"):
                assert _allowed(node.module), (f"{path.name} imports {node.module}; a trick imports "
                                               f"{', '.join(sorted(ALLOWED_IMPORTS))} or a helper module tricks/_*.py, "
                                               "never another trick")
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("ganlab") or _allowed(alias.name), f"{path.name}: {alias.name}"


def test_the_networks_do_not_import_the_trick_package():
    for path in sorted((ROOT / "ganlab" / "nets").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for module in modules:
                assert not (module or "").startswith("ganlab.trick"), f"{path.name} imports {module}"


# --------------------------------------------------------------------------------------------
# What a trick may change is enforced
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _P:
    strength: float = param(0.5, low=0.0, high=1.0)


class _ChangesTheLearningRate(Trick):
    name = "bad-lr"
    Params = _P

    def after_d_update(self, ctx):
        ctx.opt_d.param_groups[0]["lr"] = 0.5


class _AssignsToTheContext(Trick):
    name = "bad-context"
    Params = _P

    def plan(self, plan, ctx):
        ctx.cfg = None
        return plan


class _AddsAParameter(Trick):
    name = "bad-parameter"
    Params = _P

    def after_g_update(self, ctx):
        ctx.G.register_parameter("extra", torch.nn.Parameter(torch.zeros(1)))


class _ClipsD(Trick):
    """Weight clipping: changes D's weights in place after its update, which a trick may."""

    name = "ok-clip"
    Params = _P

    @torch.no_grad()
    def after_d_update(self, ctx):
        for p in ctx.D.parameters():
            p.clamp_(-self.params.strength, self.params.strength)


def test_the_shape_check_refuses_changes_a_trick_may_not_make():
    with pytest.raises(ConformanceError, match="changed the optimisers"):
        check_shapes(_ChangesTheLearningRate)
    with pytest.raises(AttributeError, match="StepContext.cfg is read-only"):
        check_shapes(_AssignsToTheContext)
    with pytest.raises(ConformanceError, match="parameters or buffers"):
        check_shapes(_AddsAParameter)
    check_shapes(_ClipsD)


# --------------------------------------------------------------------------------------------
# Conditional parameters: declared, checked
# --------------------------------------------------------------------------------------------


def test_conditions_are_read_from_the_declaration():
    infos = {i.key: i for i in param_infos(registry()["soft-labels"].Params)}
    assert infos["fake_low"].active_if == (("two_sided", True),)
    assert infos["fake_low"].describe_condition() == "two_sided = true"
    assert infos["low"].active_if == () and infos["low"].is_active({})
    ratio = {i.key: i for i in param_infos(registry()["step-ratio"].Params)}
    assert ratio["favour"].describe_condition() == "k > 1"
    assert not ratio["favour"].is_active({"k": 1}) and ratio["favour"].is_active({"k": 2})


def test_a_condition_must_name_an_unconditional_parameter():
    @dataclass(frozen=True)
    class Typo:
        a: bool = param(False)
        b: float = param(0.1, low=0.0, high=1.0, active_if={"aa": True})

    with pytest.raises(TypeError, match="names 'aa', which is not another parameter"):
        param_infos(Typo)

    @dataclass(frozen=True)
    class Chain:
        a: bool = param(False)
        b: int = param(1, low=0, high=3, active_if={"a": True})
        c: float = param(0.1, low=0.0, high=1.0, active_if={"b": above(1)})

    with pytest.raises(TypeError, match="conditional itself"):
        param_infos(Chain)


@dataclass(frozen=True)
class _LyingParams:
    two_sided: bool = param(False)
    fake: float = param(0.0, low=0.0, high=0.3, active_if={"two_sided": True})


class _Lying(Trick):
    """Declares ``fake`` conditional on ``two_sided`` but uses it always."""

    name = "bad-condition"
    Params = _LyingParams

    def d_targets(self, t_real, t_fake, ctx):
        return t_real, t_fake + self.params.fake


def test_the_condition_check_catches_a_parameter_that_acts_where_it_says_it_does_not():
    with pytest.raises(ConformanceError, match="'fake' \\(active only when two_sided = true\\).*changed the run"):
        check_conditions(_Lying)


@pytest.mark.parametrize("name", sorted(n for n, c in registry().items() if any(i.active_if for i in param_infos(c.Params))))
def test_built_in_conditional_parameters_act_only_where_declared(name):
    assert check_conditions(name)


def test_the_readmes_trick_example_passes_the_shape_check():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Writing a trick", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    check_shapes(namespace["RandomFlip"], {"p": 0.3})
