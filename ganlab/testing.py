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
    two runs with the same seed agree bit for bit, and every weight and logged value is finite;
``check_conditions``
    a parameter declared with ``active_if`` changes nothing where its conditions fail (skipped
    when the trick has no such parameter).

The shape check also holds every hook to what a trick may change (``ganlab.trick.base``): no
hook changes its arguments in place, the networks' parameters and buffers (added, removed,
reshaped), or the optimisers and their settings.

Use them from a plugin's tests, by name or by class (an unregistered class is registered for
the duration of the check)::

    from ganlab.testing import TrickConformanceTests

    class TestMyTrick(TrickConformanceTests):
        trick = "my-trick"            # or the class itself
        params = {"strength": 0.5}    # the setting to exercise (default: the trick's defaults)

or call :func:`check_trick` directly. Everything runs on the CPU in a few seconds.

A generator or discriminator registered under ``ganlab.generators`` / ``ganlab.discriminators``
(see :data:`ganlab.registry.GENERATORS` for what a builder must return) has its own kit:
``check_net_shapes`` (shapes, value range, gradients, ``spec.d_wrap``), ``check_net_meta``
(builds on the meta device), ``check_net_state_round_trip`` and ``check_net_trains`` (a few
iterations of the real step), or all of them through :func:`check_network`::

    from ganlab.testing import NetConformanceTests

    class TestMyGenerator(NetConformanceTests):
        kind = "generator"
        net = "my-generator"          # or the builder itself
"""

from __future__ import annotations

import contextlib
import io
import math
import pickle
from typing import Any, Callable, Iterator, Mapping

import torch

from ganlab.config import TrainConfig, TrickSpec
from ganlab.errors import UsageError
from ganlab.losses import GAN_MODES
from ganlab.runtime import runtime_for
from ganlab.stats import StatsBus
from ganlab.train.build import Session, build_session
from ganlab.train.checkpoint import PLAIN_STATE_ADVICE, not_plain_data
from ganlab.nets import NetSpec
from ganlab.trick import OptimSpec, StepContext, StepPlan, Trick, registered
from ganlab.trick._registry import ENTRY_POINT_GROUP, parse_trick_arg, registry
from ganlab.trick._stack import TrickStack
from ganlab.trick.params import Above, ParamInfo, param_infos

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
    "check_conditions",
    "check_trick",
    "TrickConformanceTests",
    "check_net_shapes",
    "check_net_meta",
    "check_net_state_round_trip",
    "check_net_trains",
    "check_network",
    "tiny_net_spec",
    "NetConformanceTests",
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


def _structure(session: Session) -> tuple:
    """What no per-step hook may change: the networks' parameters and buffers (names, shapes,
    dtypes, devices; not their values) and the optimisers' parameters and settings."""

    def net(module):
        if module is None:
            return None
        return (tuple((n, tuple(p.shape), p.dtype, p.device) for n, p in module.named_parameters()),
                tuple((n, tuple(b.shape), b.dtype) for n, b in module.named_buffers()))

    def optim(opt):
        if opt is None:
            return None
        return tuple((tuple(id(p) for p in g["params"]),
                      tuple(sorted((k, repr(v)) for k, v in g.items() if k != "params"))) for g in opt.param_groups)

    return net(session.G), net(session.D), optim(session.opt_g), optim(session.opt_d)


class _HookChecker:
    """Wraps a stack's hooks (on the instance) to check what each returns, inside a real step,
    and that no hook changes what a trick may not (see ``ganlab.trick.base``): its arguments in
    place, the networks' structure, the optimisers and their settings."""

    FILTERS = ("plan", "d_inputs", "d_targets", "d_loss", "g_inputs", "g_loss")
    OBSERVERS = ("after_d_update", "after_g_update", "eval_generator")

    def __init__(self, session: Session, name: str):
        self.session, self.stack, self.name = session, session.stack, name
        self.calls: dict[str, int] = {}
        for hook in self.FILTERS + self.OBSERVERS:
            original = getattr(self.stack, hook)
            setattr(self.stack, hook, self._wrap(hook, original))

    def fail(self, hook: str, msg: str) -> None:
        raise ConformanceError(f"trick '{self.name}': {hook}() {msg}")

    def _wrap(self, hook: str, original):
        def wrapped(*args):
            self.calls[hook] = self.calls.get(hook, 0) + 1
            structure = _structure(self.session)
            tensors_before = [t.clone() for t in _tensors(args[:-1])] if hook in self.FILTERS else []
            out = original(*args)
            for before, after in zip(tensors_before, _tensors(args[:-1])):
                if not torch.equal(before, after):
                    self.fail(hook, "changed one of its arguments in place; return a new value instead")
            after = _structure(self.session)
            if after[:2] != structure[:2]:
                self.fail(hook, "changed the networks' parameters or buffers (added, removed or reshaped); "
                                "change structure only in configure_nets or configure_modules")
            if after[2:] != structure[2:]:
                self.fail(hook, "changed the optimisers or their settings (learning rate, betas); "
                                "set them in configure_optim")
            check = getattr(self, f"_check_{hook}", None)
            if check is not None:
                check(args, out)
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
        checker = _HookChecker(model, name)
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


def _failing_value(info: ParamInfo, condition: Any) -> tuple[bool, Any]:
    """A valid value of the controlling parameter ``info`` at which ``condition`` fails, as
    (found, value)."""
    if isinstance(condition, Above):
        t = condition.threshold
        if (info.low is None or info.low <= t) and (info.high is None or t <= info.high):
            return True, info.type(t)
        return False, None
    if info.type is bool:
        candidates: tuple = (False, True)
    elif info.choices is not None:
        candidates = tuple(info.choices)
    else:
        return False, None
    inside = (lambda v: v in condition) if isinstance(condition, (tuple, list, set, frozenset)) else (lambda v: v == condition)
    for v in candidates:
        if not inside(v):
            return True, v
    return False, None


def _tried_values(info: ParamInfo) -> tuple:
    """Values of a parameter to try: its searched range's ends or choices, else its bounds."""
    space = info.search_space()
    if space is not None:
        return tuple(space[1]) if space[0] == "categorical" else (space[1], space[2])
    if info.choices is not None:
        return tuple(info.choices)
    if info.type is bool:
        return (False, True)
    if info.low is not None and info.high is not None:
        return (info.type(info.low), info.type(info.high))
    return (info.default,)


def check_conditions(trick, *, config: Mapping[str, Any] | None = None, iterations: int = ITERATIONS) -> bool:
    """A parameter declared with ``active_if`` changes nothing where its conditions fail: with
    the controlling parameter at a value that fails its condition, runs at the ends of the
    parameter's range leave bit-identical weights, optimiser states and statistics. Returns False
    (and checks nothing) when the trick declares no conditional parameter."""
    config = dict(config or {})
    with _registered(trick) as cls:
        infos = {i.key: i for i in param_infos(cls.Params)}
        conditional = [i for i in infos.values() if i.active_if]
        for info in conditional:
            for ref, condition in info.active_if:
                found, off = _failing_value(infos[ref], condition)
                if not found:
                    continue
                what = f"trick '{cls.name}': parameter '{info.key}' (active only when {info.describe_condition()})"
                runs = []
                for value in _tried_values(info):
                    values = {ref: off, info.key: value}
                    try:
                        cls.parse_params(values)
                    except UsageError:
                        continue  # a combination the trick refuses (a cross-field check)
                    cfg = tiny_config(((cls.name, values),), **config)
                    model = build_tiny(cfg)
                    rows = run_iterations(model, SyntheticPairs(cfg), 0, iterations)
                    runs.append((value, _model_state(model), rows))
                for value, state, rows in runs[1:]:
                    at = f"{what} at {ref}={off}: {info.key}={runs[0][0]} vs {value}"
                    _assert_same(runs[0][1], state, "state", at + " changed the run")
                    _assert_same(runs[0][2], rows, "stats", at + " changed the run")
    return bool(conditional)


CHECKS = {
    "identity": check_identity,
    "shapes": check_shapes,
    "state_round_trip": check_state_round_trip,
    "determinism": check_determinism,
}


def check_trick(trick, params: Mapping[str, Any] | None = None, *, config: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Run every check; returns ``{check: "passed" | "skipped"}`` (and ``"conditions": "passed"``
    for a trick with conditional parameters), raises ConformanceError on a failure."""
    out = {}
    for name, check in CHECKS.items():
        if name == "identity":
            out[name] = "passed" if check(trick, config=config) else "skipped"
        else:
            check(trick, params, config=config)
            out[name] = "passed"
    if check_conditions(trick, config=config):
        out["conditions"] = "passed"
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

    def test_conditional_parameters_act_only_where_declared(self):
        import pytest

        if not check_conditions(self.trick, config=self.config):
            pytest.skip("the trick declares no conditional parameter (active_if)")



# ---------------------------------------------------------------------------------------------
# Networks: the same kind of kit for a generator or discriminator builder
# ---------------------------------------------------------------------------------------------

NET_KINDS = ("generator", "discriminator")


def _net_registry(kind: str):
    from ganlab.registry import DISCRIMINATORS, GENERATORS

    if kind not in NET_KINDS:
        raise ConformanceError(f"kind {kind!r}: give 'generator' or 'discriminator'")
    return GENERATORS if kind == "generator" else DISCRIMINATORS


@contextlib.contextmanager
def _net_registered(kind: str, net) -> Iterator[tuple[str, Callable]]:
    """(name, builder) of ``net``: a registered name, or a builder registered for the duration
    under a name of its own. One CPU thread, restored afterwards."""
    registry_ = _net_registry(kind)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if isinstance(net, str):
            if net not in registry_:
                raise ConformanceError(f"no {kind} named '{net}' is registered (entry-point group {registry_.group})")
            yield net, registry_.get(net)
            return
        if not callable(net):
            raise ConformanceError(f"{net!r}: give a registered {kind}'s name or a builder (NetSpec -> nn.Module)")
        name = f"conformance-{kind}"
        with registry_.registered({name: net}):
            yield name, net
    finally:
        torch.set_num_threads(threads)


def tiny_net_spec(kind: str, name: str, **changes) -> NetSpec:
    """The tiny model's :class:`NetSpec` with ``name`` as its generator or discriminator."""
    import dataclasses

    base = NetSpec(size=TINY["size"], ngf=TINY["ngf"], ndf=TINY["ndf"], n_layers=TINY["n_layers"], backbone_weights="none")
    return dataclasses.replace(base, **{kind: name}, **changes)


def _built_net(kind: str, builder: Callable, spec: NetSpec, what: str) -> torch.nn.Module:
    try:
        net = builder(spec)
    except Exception as exc:
        raise ConformanceError(f"{what}: the builder failed on {spec}: {type(exc).__name__}: {exc}") from None
    if not isinstance(net, torch.nn.Module):
        raise ConformanceError(f"{what}: the builder returned {type(net).__name__}, not a torch.nn.Module")
    return net


def check_net_shapes(kind: str, net) -> None:
    """Output shapes and values for colourisation (1 -> 2 channels) and paired (3 -> 3) specs.

    A generator maps (B, in, H, W) to (B, out, H, W) in [-1, 1], at the spec's size and at a
    larger multiple of its ``stride``, with a gradient to its parameters. A discriminator maps
    (B, in + out, H, W) to finite float scores of shape (B, ...), differentiable with respect to
    its input (gradient penalties need it), and passes its convolutions through ``spec.d_wrap``.
    """
    with _net_registered(kind, net) as (name, builder):
        what = f"{kind} '{name}'"
        for c_in, c_out in ((1, 2), (3, 3)):
            wrapped: list[torch.nn.Module] = []

            def count(module: torch.nn.Module) -> torch.nn.Module:
                wrapped.append(module)
                return module

            spec = tiny_net_spec(kind, name, in_channels=c_in, out_channels=c_out, d_wrap=(count,))
            torch.manual_seed(0)
            module = _built_net(kind, builder, spec, what).train()
            size = spec.size
            gen = torch.Generator().manual_seed(0)
            if kind == "generator":
                stride = getattr(module, "stride", 1)
                if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
                    raise ConformanceError(f"{what}: its 'stride' attribute is {stride!r}; give the whole number the input's "
                                           "height and width must be a multiple of (or no such attribute)")
                big = max(size, stride) + (stride if stride > 1 else size)
                for h, w in ((size, size), (big, size)):
                    x = torch.rand((2, c_in, h, w), generator=gen) * 2 - 1
                    y = module(x)
                    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (2, c_out, h, w) or y.dtype != torch.float32:
                        raise ConformanceError(f"{what}: maps {tuple(x.shape)} to {tuple(getattr(y, 'shape', ()))}"
                                               f" ({getattr(y, 'dtype', type(y).__name__)}), not {(2, c_out, h, w)} float32")
                    if not torch.isfinite(y).all() or y.abs().max() > 1:
                        raise ConformanceError(f"{what}: outputs must be finite and in [-1, 1] (the data's range; end with tanh)")
                if y.requires_grad:
                    y.square().mean().backward()
                if not any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters()):
                    raise ConformanceError(f"{what}: no gradient reaches its parameters")
            else:
                x = (torch.rand((2, c_in + c_out, size, size), generator=gen) * 2 - 1).requires_grad_(True)
                y = module(x)
                if not isinstance(y, torch.Tensor) or y.dim() < 1 or y.shape[0] != 2 or not y.is_floating_point():
                    raise ConformanceError(f"{what}: maps {tuple(x.shape)} to {tuple(getattr(y, 'shape', ()))}; "
                                           "give float scores of shape (B, ...)")
                if not torch.isfinite(y).all():
                    raise ConformanceError(f"{what}: its scores are not finite")
                (grad,) = torch.autograd.grad(y.sum(), x)
                if grad is None or not torch.isfinite(grad).all() or grad.abs().sum() == 0:
                    raise ConformanceError(f"{what}: its scores have no gradient with respect to its input")
                if not wrapped:
                    raise ConformanceError(f"{what}: applies none of spec.d_wrap to its layers (spectral-norm would "
                                           "not reach it); pass each convolution through every callable in spec.d_wrap")


def check_net_meta(kind: str, net) -> None:
    """The builder works under ``torch.device("meta")`` (the memory estimate builds shapes only)
    and leaves every parameter there."""
    with _net_registered(kind, net) as (name, builder):
        what = f"{kind} '{name}'"
        with torch.device("meta"):
            module = _built_net(kind, builder, tiny_net_spec(kind, name), what)
        off = [n for n, p in module.named_parameters() if not p.is_meta]
        if off:
            raise ConformanceError(f"{what}: parameters {off[:3]} were not built on the meta device; create them "
                                   "without an explicit device")


def check_net_state_round_trip(kind: str, net) -> None:
    """The same seed builds the same weights; a ``state_dict`` goes through
    ``torch.save``/``torch.load(weights_only=True)`` into a network built from another seed,
    which then computes exactly what the original does."""
    with _net_registered(kind, net) as (name, builder):
        what = f"{kind} '{name}' state round trip"
        spec = tiny_net_spec(kind, name)
        nets = []
        for seed in (0, 0, 1):
            torch.manual_seed(seed)
            nets.append(_built_net(kind, builder, spec, what).eval())
        _assert_same(nets[0].state_dict(), nets[1].state_dict(), "state_dict() under one seed", what)
        buf = io.BytesIO()
        torch.save(nets[0].state_dict(), buf)
        buf.seek(0)
        try:
            state = torch.load(buf, weights_only=True)
        except pickle.UnpicklingError:
            raise ConformanceError(f"{what}: the state_dict does not load with weights_only=True") from None
        try:
            nets[2].load_state_dict(state)
        except RuntimeError as exc:
            raise ConformanceError(f"{what}: load_state_dict failed: {exc}") from None
        c = spec.in_channels if kind == "generator" else spec.in_channels + spec.out_channels
        x = torch.rand((2, c, spec.size, spec.size), generator=torch.Generator().manual_seed(0)) * 2 - 1
        with torch.no_grad():
            _assert_same(nets[0](x), nets[2](x), "output after loading", what)


def check_net_trains(kind: str, net, *, config: Mapping[str, Any] | None = None, iterations: int = ITERATIONS) -> None:
    """The network trains in ganlab's own step, built the way ``ganlab train`` builds it: a few
    iterations change its weights and keep every weight and logged value finite."""
    with _net_registered(kind, net) as (name, _):
        what = f"{kind} '{name}' in training"
        cfg = tiny_config((), **{**dict(config or {}), kind: name})
        model = build_tiny(cfg)
        module = model.G if kind == "generator" else model.D
        before = {k: v.clone() for k, v in module.state_dict().items()}
        rows = run_iterations(model, SyntheticPairs(cfg), 0, iterations)
        for step, row in rows:
            for k, v in row.items():
                if not math.isfinite(v):
                    raise ConformanceError(f"{what}: {k} = {v} at step {step}")
        after = module.state_dict()
        if all(torch.equal(before[k], after[k]) for k in before):
            raise ConformanceError(f"{what}: {iterations} iterations left its weights unchanged")
        for k, v in after.items():
            if v.is_floating_point() and not torch.isfinite(v).all():
                raise ConformanceError(f"{what}: {k} is not finite after {iterations} iterations")


NET_CHECKS = {
    "shapes": check_net_shapes,
    "meta": check_net_meta,
    "state_round_trip": check_net_state_round_trip,
    "trains": check_net_trains,
}


def check_network(kind: str, net, *, config: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Run every network check on a generator or discriminator (a registered name or a builder);
    returns ``{check: "passed"}``, raises ConformanceError on a failure."""
    out = {}
    for name, check in NET_CHECKS.items():
        if name == "trains":
            check(kind, net, config=config)
        else:
            check(kind, net)
        out[name] = "passed"
    return out


class NetConformanceTests:
    """Subclass in a test module, set ``kind`` (``"generator"`` or ``"discriminator"``) and
    ``net`` (a registered name or a builder), and pytest runs the network checks. ``config``
    overrides keys of the tiny model's TrainConfig for the training check."""

    kind: str = "generator"
    net: Any = ""
    config: Mapping[str, Any] = {}

    def test_output_shapes_and_values(self):
        check_net_shapes(self.kind, self.net)

    def test_builds_on_the_meta_device(self):
        check_net_meta(self.kind, self.net)

    def test_state_round_trip(self):
        check_net_state_round_trip(self.kind, self.net)

    def test_trains_in_the_pix2pix_step(self):
        check_net_trains(self.kind, self.net, config=self.config)
