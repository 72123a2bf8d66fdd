"""Conformance checks that every trick, built-in or third-party, can be run against.

Each check builds a tiny pix2pix session with :func:`ganlab.train.build_session` (32 px, a
handful of channels, CPU, fp32), feeds it synthetic batches and runs the real
:class:`~ganlab.train.step.Pix2PixStep` with the trick in the stack:

``check_identity``
    at the trick's ``identity`` parameters, the weights, optimiser states and every statistic
    the baseline logs are bit-identical to the baseline's after a few iterations, and the trick
    logs nothing else outside ``tricks/`` (skipped when ``identity`` is None);
``check_shapes``
    inside the step, every hook returns what it was given in kind, shape and dtype (pairs stay
    pairs, targets keep their shape, loss terms are finite scalars, plans are sane), without
    changing its arguments in place; the generator used for evaluation maps inputs to outputs
    of the right shape;
``check_state_round_trip``
    ``state_dict()`` is plain data (tensors, numbers, strings, None, lists and dicts: what a
    checkpoint holds, since every checkpoint is loaded with ``weights_only=True``), goes through
    ``torch.save``/``torch.load(..., weights_only=True)`` and ``load_state_dict()`` into a fresh
    model, which then continues exactly as the original (what resuming relies on);
``check_determinism``
    two runs with the same seed agree bit for bit, and every weight and logged value is finite.

Use them from a plugin's tests, by name or by class (an unregistered class is registered for
the duration of the check)::

    from ganlab.testing import TrickConformanceTests

    class TestMyTrick(TrickConformanceTests):
        trick = "my-trick"            # or the class itself
        params = {"strength": 0.5}    # the setting to exercise (default: the trick's defaults)

or call :func:`check_trick` directly. Everything runs on the CPU in a few seconds.
"""

from __future__ import annotations

import contextlib
import io
import math
import pickle
from typing import Any, Callable, Iterator, Mapping

import torch

from ganlab.config import TrainConfig, TrickSpec
from ganlab.losses import GAN_MODES
from ganlab.runtime import runtime_for
from ganlab.stats import StatsBus
from ganlab.train.build import Session, build_session
from ganlab.train.checkpoint import PLAIN_STATE_ADVICE, not_plain_data
from ganlab.nets import NetSpec
from ganlab.trick import OptimSpec, StepContext, StepPlan, Trick, registered
from ganlab.trick._registry import ENTRY_POINT_GROUP, parse_trick_arg, registry
from ganlab.trick._stack import TrickStack

__all__ = [
    "ConformanceError",
    "TINY",
    "SyntheticPairs",
    "bare_context",
    "tiny_config",
    "build_tiny",
    "run_iterations",
    "check_identity",
    "check_shapes",
    "check_state_round_trip",
    "check_determinism",
    "check_trick",
    "TrickConformanceTests",
]

# The tiny model every check builds (keys of ganlab.config.TrainConfig).
TINY: dict[str, Any] = {
    "size": 32,
    "batch_size": 2,
    "ngf": 4,
    "ndf": 4,
    "n_layers": 2,
    "steps": 8,
    "seed": 0,
    "device": "cpu",
    "precision": "fp32",
    "channels_last": "off",
    "cudnn_benchmark": "off",
}

ITERATIONS = 3

# Where a trick's own statistics go (``tricks/instance_noise_sigma``): the identity check lets a
# trick log these at its identity setting; every other statistic must be the baseline's.
TRICK_STATS = "tricks/"


class ConformanceError(AssertionError):
    """A trick broke a rule of the trick interface; the message names the trick and the rule."""


# ---------------------------------------------------------------------------------------------
# The harness
# ---------------------------------------------------------------------------------------------


class SyntheticPairs:
    """A deterministic stream of (condition, target) batches with its own generator, so the
    data a check feeds never depends on the global RNG; its state can be saved and restored."""

    def __init__(self, cfg, seed: int = 1234):
        self.shape_cond = (cfg.batch_size, cfg.in_channels, cfg.size, cfg.size)
        self.shape_real = (cfg.batch_size, cfg.out_channels, cfg.size, cfg.size)
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        cond = torch.rand(self.shape_cond, generator=self.gen) * 2 - 1
        # A target that depends on the condition (something for G to learn), plus texture.
        base = cond.mean(1, keepdim=True).expand(self.shape_real)
        real = torch.tanh(0.8 * base + 0.3 * torch.randn(self.shape_real, generator=self.gen))
        return cond, real

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"].cpu())


def bare_context(seed: int = 0, *, step: int = 0, total_steps: int = 100, gan_mode: str = "vanilla", cfg: Any = None,
                 G: torch.nn.Module | None = None, D: torch.nn.Module | None = None):
    """A :class:`~ganlab.trick.StepContext` with a seeded generator and no networks, for calling a
    trick's hooks directly in a unit test (``cfg``: the tiny model's configuration by default)."""
    cfg = tiny_config() if cfg is None else cfg
    return StepContext(cfg=cfg, G=G, D=D, opt_g=None, opt_d=None, rng=torch.Generator().manual_seed(seed),
                             device=torch.device("cpu"), gan_mode=gan_mode, step=step, total_steps=total_steps)


def tiny_config(tricks: Any = (), **overrides) -> TrainConfig:
    """A :class:`~ganlab.config.TrainConfig` for the tiny model, with ``tricks`` as
    ``[(name, {param: value}), ...]`` or ``["name:key=value", ...]``."""
    specs = []
    for t in tricks:
        if isinstance(t, str):
            name, values = parse_trick_arg(t)
        else:
            name, values = t
        specs.append(TrickSpec(name, tuple(dict(values).items())))
    return TrainConfig(**{**TINY, **overrides, "tricks": tuple(specs)}).validate()


def build_tiny(cfg: TrainConfig) -> Session:
    """The networks, optimisers, stack and step of ``cfg``, built the way ``ganlab train`` does."""
    return build_session(cfg, runtime_for(cfg), cfg.steps)


def run_iterations(session: Session, data: Callable, start: int, stop: int) -> list[tuple[int, dict[str, float]]]:
    """Run iterations ``start..stop-1`` as the trainer does; return the logged rows."""
    bus = StatsBus()
    with bus.activate():
        for step in range(start, stop):
            bus.step = step
            session.iterate(step, data)
    return bus.flush()


def _snapshot(model, data: SyntheticPairs) -> dict:
    return {
        "G": model.G.state_dict(),
        "D": model.D.state_dict(),
        "opt_g": model.opt_g.state_dict(),
        "opt_d": model.opt_d.state_dict(),
        "tricks": model.stack.state_dict(),
        "rng": torch.get_rng_state(),
        "trick_rng": model.ctx.rng.get_state(),
        "data": data.state_dict(),
    }


def _restore(model, data: SyntheticPairs, snap: dict) -> None:
    model.G.load_state_dict(snap["G"])
    model.D.load_state_dict(snap["D"])
    model.opt_g.load_state_dict(snap["opt_g"])
    model.opt_d.load_state_dict(snap["opt_d"])
    model.stack.load_state_dict(snap["tricks"])
    torch.set_rng_state(snap["rng"])
    model.ctx.rng.set_state(snap["trick_rng"])
    data.load_state_dict(snap["data"])


def _assert_same(a: Any, b: Any, where: str, what: str) -> None:
    """Bit-for-bit equality of nested dicts/lists of tensors and plain values."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            raise ConformanceError(f"{what}: {where} is a tensor on one side only")
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ConformanceError(f"{what}: {where} has shape/dtype {tuple(a.shape)}/{a.dtype} vs {tuple(b.shape)}/{b.dtype}")
        if not torch.equal(a.cpu(), b.cpu()):
            diff = (a.detach().double().cpu() - b.detach().double().cpu()).abs().max().item() if a.is_floating_point() else "n/a"
            raise ConformanceError(f"{what}: {where} differs (max abs difference {diff})")
    elif isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            raise ConformanceError(f"{what}: {where} has keys {sorted(map(str, a))} vs {sorted(map(str, b))}")
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}", what)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            raise ConformanceError(f"{what}: {where} has length {len(a)} vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]", what)
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return
    elif a != b:
        raise ConformanceError(f"{what}: {where} is {a!r} vs {b!r}")


def _model_state(model) -> dict:
    return {
        "G": model.G.state_dict(),
        "D": model.D.state_dict(),
        "opt_g": model.opt_g.state_dict()["state"],
        "opt_d": model.opt_d.state_dict()["state"],
    }


@contextlib.contextmanager
def _registered(trick: str | type[Trick]) -> Iterator[type[Trick]]:
    """The trick's class, registered in this process for the duration (if given as a class).

    The tiny networks run fastest, and most reproducibly, on one CPU thread; the thread count
    is restored afterwards.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if isinstance(trick, str):
            known = registry()
            if trick not in known:
                raise ConformanceError(f"no trick named '{trick}' is registered (entry-point group {ENTRY_POINT_GROUP})")
            yield known[trick]
            return
        if not (isinstance(trick, type) and issubclass(trick, Trick)) or not trick.name:
            raise ConformanceError(f"{trick!r}: give a registered trick's name or a Trick subclass with a name")
        with registered(trick):
            yield trick
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------


def check_identity(trick, *, config: Mapping[str, Any] | None = None, iterations: int = ITERATIONS) -> bool:
    """At ``identity`` parameters the step is bit-identical to the baseline. Returns False (and
    checks nothing) when the trick declares no identity setting."""
    config = dict(config or {})
    with _registered(trick) as cls:
        if cls.identity is None:
            return False
        what = f"trick '{cls.name}' at its identity setting {dict(cls.identity)}"
        runs = []
        for tricks in ((), ((cls.name, dict(cls.identity)),)):
            cfg = tiny_config(tricks, **config)
            model = build_tiny(cfg)
            rows = run_iterations(model, SyntheticPairs(cfg), 0, iterations)
            runs.append((model, rows, torch.get_rng_state()))
        (base, base_rows, base_rng), (with_trick, trick_rows, trick_rng) = runs
        _assert_same(_model_state(base), _model_state(with_trick), "state", what)
        if not torch.equal(base_rng, trick_rng):
            raise ConformanceError(f"{what}: the global RNG moved; draw random numbers from ctx.rng")
        if [s for s, _ in base_rows] != [s for s, _ in trick_rows]:
            raise ConformanceError(f"{what}: statistics were logged at steps {[s for s, _ in trick_rows]}, "
                                   f"not {[s for s, _ in base_rows]}")
        for (s0, r0), (_, r1) in zip(base_rows, trick_rows):
            missing = sorted(set(r0) - set(r1))
            if missing:
                raise ConformanceError(f"{what}: the step no longer logs {missing}")
            extra = sorted(k for k in set(r1) - set(r0) if not k.startswith(TRICK_STATS))
            if extra:
                raise ConformanceError(f"{what}: logs {extra}, which the baseline does not; a trick's own "
                                       f"statistics go under '{TRICK_STATS}'")
            _assert_same(r0, {k: r1[k] for k in r0}, f"stats at step {s0}", what)
        cond, _ = SyntheticPairs(base.cfg)()
        with torch.no_grad():
            out0, out1 = base.G.eval()(cond), with_trick.G.eval()(cond)
        _assert_same(out0, out1, "G(cond)", what)
    return True


class _HookChecker:
    """Wraps a stack's hooks (on the instance) to check what each returns, inside a real step."""

    def __init__(self, stack: TrickStack, name: str):
        self.stack, self.name = stack, name
        self.calls: dict[str, int] = {}
        for hook in ("plan", "d_inputs", "d_targets", "d_loss", "g_inputs", "g_loss"):
            original = getattr(stack, hook)
            setattr(stack, hook, self._wrap(hook, original))

    def fail(self, hook: str, msg: str) -> None:
        raise ConformanceError(f"trick '{self.name}': {hook}() {msg}")

    def _wrap(self, hook: str, original):
        def wrapped(*args):
            self.calls[hook] = self.calls.get(hook, 0) + 1
            tensors_before = [t.clone() for t in _tensors(args[:-1])]
            out = original(*args)
            for before, after in zip(tensors_before, _tensors(args[:-1])):
                if not torch.equal(before, after):
                    self.fail(hook, "changed one of its arguments in place; return a new value instead")
            getattr(self, f"_check_{hook}")(args, out)
            return out

        return wrapped

    def _check_plan(self, args, out) -> None:
        if not isinstance(out, StepPlan):
            self.fail("plan", f"returned {type(out).__name__}, not a StepPlan")
        for k in ("d_steps", "g_steps"):
            v = getattr(out, k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                self.fail("plan", f"returned {k}={v!r}; it must be a whole number >= 0")
        if out.d_steps + out.g_steps == 0:
            self.fail("plan", "returned a plan with no update at all")

    def _check_pair(self, hook: str, given, got) -> None:
        if not (isinstance(got, tuple) and len(got) == 2):
            self.fail(hook, "must return a (condition, image) pair")
        for a, b, part in zip(given, got, ("condition", "image")):
            if not isinstance(b, torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
                self.fail(hook, f"changed the {part}'s shape, dtype or device ({tuple(a.shape)}, {a.dtype} -> "
                          f"{tuple(getattr(b, 'shape', ()))}, {getattr(b, 'dtype', type(b).__name__)})")

    def _check_d_inputs(self, args, out) -> None:
        if not (isinstance(out, tuple) and len(out) == 2):
            self.fail("d_inputs", "must return (real_pair, fake_pair)")
        self._check_pair("d_inputs", args[0], out[0])
        self._check_pair("d_inputs", args[1], out[1])

    def _check_g_inputs(self, args, out) -> None:
        self._check_pair("g_inputs", args[0], out)
        if args[0][1].requires_grad and not out[1].requires_grad:
            self.fail("g_inputs", "returned a fake with no graph to G (it must stay differentiable)")

    def _check_d_targets(self, args, out) -> None:
        if not (isinstance(out, tuple) and len(out) == 2):
            self.fail("d_targets", "must return (t_real, t_fake)")
        for a, b, side in zip(args[:2], out, ("real", "fake")):
            if not isinstance(b, torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype:
                self.fail("d_targets", f"changed the {side} targets' shape or dtype")
            if not torch.isfinite(b).all():
                self.fail("d_targets", f"returned non-finite {side} targets")

    def _check_terms(self, hook: str, out) -> None:
        if not isinstance(out, dict) or not out:
            self.fail(hook, "must return a non-empty dict of loss terms")
        for k, v in out.items():
            if not isinstance(v, torch.Tensor) or v.dim() != 0 or not v.is_floating_point():
                self.fail(hook, f"term '{k}' must be a scalar float tensor")
            if not torch.isfinite(v):
                self.fail(hook, f"term '{k}' is not finite")

    def _check_d_loss(self, args, out) -> None:
        self._check_terms("d_loss", out)

    def _check_g_loss(self, args, out) -> None:
        self._check_terms("g_loss", out)
        if not any(v.requires_grad for v in out.values()):
            self.fail("g_loss", "returned terms with no gradient to G")


def _tensors(args) -> list[torch.Tensor]:
    out = []
    for a in args:
        if isinstance(a, torch.Tensor):
            out.append(a)
        elif isinstance(a, (tuple, list)):
            out += _tensors(a)
        elif isinstance(a, dict):
            out += _tensors(list(a.values()))
    return out


def check_shapes(trick, params: Mapping[str, Any] | None = None, *, config: Mapping[str, Any] | None = None,
                 iterations: int = ITERATIONS) -> None:
    """Inside the real step, every hook keeps kinds, shapes and dtypes, and changes nothing in place."""
    with _registered(trick) as cls:
        values = dict(params or {})
        t = cls(cls.parse_params(values))
        name = cls.name
        spec = t.configure_nets(NetSpec())
        if not isinstance(spec, NetSpec):
            raise ConformanceError(f"trick '{name}': configure_nets() must return a NetSpec (use dataclasses.replace)")
        ospec = t.configure_optim(OptimSpec())
        if not isinstance(ospec, OptimSpec):
            raise ConformanceError(f"trick '{name}': configure_optim() must return an OptimSpec")

        mode = t.configure_loss("vanilla")
        if mode not in GAN_MODES:
            raise ConformanceError(f"trick '{name}': configure_loss() returned {mode!r}; use one of {', '.join(GAN_MODES)}")
        cfg = tiny_config(((name, values),), **dict(config or {}))
        model = build_tiny(cfg)
        checker = _HookChecker(model.stack, name)
        data = SyntheticPairs(cfg)
        run_iterations(model, data, 0, iterations)
        used = set(cls.hooks_used())
        for hook in ("d_inputs", "d_targets", "d_loss", "g_inputs", "g_loss"):
            if hook in used and not checker.calls.get(hook) and not (hook == "d_targets" and not model.step_fn.label_based):
                raise ConformanceError(f"trick '{name}': its {hook}() hook was never called by the step")
        cond, real = data()
        G_eval = model.stack.eval_generator(model.G, model.ctx)
        if not isinstance(G_eval, torch.nn.Module):
            raise ConformanceError(f"trick '{name}': eval_generator() must return a module")
        was = G_eval.training
        G_eval.eval()
        with torch.no_grad():
            out = G_eval(cond)
        G_eval.train(was)
        if out.shape != real.shape or out.dtype != real.dtype:
            raise ConformanceError(f"trick '{name}': the evaluation generator maps {tuple(cond.shape)} to {tuple(out.shape)}, not {tuple(real.shape)}")


def check_state_round_trip(trick, params: Mapping[str, Any] | None = None, *, config: Mapping[str, Any] | None = None,
                           iterations: int = ITERATIONS) -> None:
    """state_dict() is plain data and survives torch.save/torch.load(weights_only=True) into a fresh
    model, which then continues exactly."""
    with _registered(trick) as cls:
        values = dict(params or {})
        what = f"trick '{cls.name}' state round trip"
        cfg = tiny_config(((cls.name, values),), **dict(config or {}))
        first, data_a = build_tiny(cfg), SyntheticPairs(cfg)
        run_iterations(first, data_a, 0, iterations)
        state = first.stack.state_dict()[cls.name]
        found = not_plain_data(state, "state_dict()")
        if found:
            raise ConformanceError(f"trick '{cls.name}': {found} is not plain data; {PLAIN_STATE_ADVICE}")
        buf = io.BytesIO()
        torch.save(_snapshot(first, data_a), buf)
        buf.seek(0)
        try:  # as every checkpoint is read: as data, nothing in it runs
            snap = torch.load(buf, weights_only=True)
        except pickle.UnpicklingError:
            raise ConformanceError(f"trick '{cls.name}': state_dict() does not load with weights_only=True; "
                                   f"{PLAIN_STATE_ADVICE}") from None
        second, data_b = build_tiny(cfg), SyntheticPairs(cfg)
        _restore(second, data_b, snap)
        _assert_same(first.stack.state_dict(), second.stack.state_dict(), "state_dict()", what)
        torch.set_rng_state(snap["rng"])
        run_iterations(first, data_a, iterations, 2 * iterations)
        after_first = (_model_state(first), first.stack.state_dict())
        torch.set_rng_state(snap["rng"])
        run_iterations(second, data_b, iterations, 2 * iterations)
        _assert_same(after_first, (_model_state(second), second.stack.state_dict()), "state after resuming", what)


def check_determinism(trick, params: Mapping[str, Any] | None = None, *, config: Mapping[str, Any] | None = None,
                      iterations: int = ITERATIONS) -> None:
    """Two runs with the same seed agree bit for bit; all weights and logged values are finite."""
    with _registered(trick) as cls:
        values = dict(params or {})
        what = f"trick '{cls.name}' under a fixed seed"
        results = []
        for _ in range(2):
            cfg = tiny_config(((cls.name, values),), **dict(config or {}))
            model = build_tiny(cfg)
            rows = run_iterations(model, SyntheticPairs(cfg), 0, iterations)
            results.append((_model_state(model), model.stack.state_dict(), rows))
        _assert_same(results[0], results[1], "run", what)
        state, _, rows = results[0]
        for step, row in rows:
            for k, v in row.items():
                if not math.isfinite(v):
                    raise ConformanceError(f"trick '{cls.name}': {k} = {v} at step {step}")
        for net in ("G", "D"):
            for k, v in state[net].items():
                if v.is_floating_point() and not torch.isfinite(v).all():
                    raise ConformanceError(f"trick '{cls.name}': {net}.{k} is not finite after {iterations} iterations")


CHECKS = {
    "identity": check_identity,
    "shapes": check_shapes,
    "state_round_trip": check_state_round_trip,
    "determinism": check_determinism,
}


def check_trick(trick, params: Mapping[str, Any] | None = None, *, config: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Run every check; returns ``{check: "passed" | "skipped"}``, raises ConformanceError on a failure."""
    out = {}
    for name, check in CHECKS.items():
        if name == "identity":
            out[name] = "passed" if check(trick, config=config) else "skipped"
        else:
            check(trick, params, config=config)
            out[name] = "passed"
    return out


class TrickConformanceTests:
    """Subclass in a test module, set ``trick`` (a name or a class), and pytest runs the checks.

    ``params`` is the setting the shape, state and determinism checks exercise (default: the
    trick's defaults); ``config`` overrides keys of the tiny model's TrainConfig (e.g.
    ``{"gan_mode": "hinge"}`` for a trick that needs it).
    """

    trick: str | type[Trick] = ""
    params: Mapping[str, Any] = {}
    config: Mapping[str, Any] = {}

    def test_identity_is_bit_identical(self):
        import pytest

        if not check_identity(self.trick, config=self.config):
            pytest.skip("the trick declares no identity setting (identity = None)")

    def test_hooks_keep_shapes_and_dtypes(self):
        check_shapes(self.trick, self.params, config=self.config)

    def test_state_round_trip(self):
        check_state_round_trip(self.trick, self.params, config=self.config)

    def test_deterministic_under_a_fixed_seed(self):
        check_determinism(self.trick, self.params, config=self.config)
