"""The training loop: run folders, checkpoints and resume, evaluation cadence, logging.

``train(cfg)`` builds the data, the trick stack, the networks and the optimisers, then runs
``Pix2PixStep`` for the configured number of iterations. Everything a run makes lives in a
numbered folder ``<out>/<NNNNN>-<name>/``::

    config.json      the configuration as layered (auto values stay auto; env.json says what ran)
    tricks.json      the trick stack in its fold order, with parameters
    env.json         versions and device
    status.json      running | finished | diverged (with the step)
    stats.jsonl      every logged scalar, one row per step
    events.out...    TensorBoard
    samples/         grey input | generated | ground truth grids
    checkpoints/     step-NNNNNNN.pt, written atomically, the last few kept
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import random
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ganlab import __version__
from ganlab.config import TrainConfig
from ganlab.errors import GanlabError, UsageError
from ganlab.hooks import NetSpec, OptimSpec, StepContext, TrickStack
from ganlab.io import atomic_torch_save, atomic_write, atomic_write_json
from ganlab.nets import build_discriminator, build_generator, count_params
from ganlab.accel import portable_optimizer_state
from ganlab.runtime import Runtime, runtime_for
from ganlab.stats import JsonlSink, StatsBus, TensorBoardSink, report, truncate_stats
from ganlab.step import Pix2PixStep

CHECKPOINT_FORMAT = "ganlab-checkpoint/1"
KEEP_CHECKPOINTS = 3


class Diverged(GanlabError):
    """A logged value became NaN or Inf; the run stops and records where."""

    def __init__(self, step: int, name: str, value: float):
        super().__init__(
            f"training diverged at step {step}: {name} = {value}; lower --lr, add a stabilising "
            f"--trick, or resume from an earlier checkpoint"
        )
        self.step, self.name, self.value = step, name, value


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def net_spec(cfg: TrainConfig) -> NetSpec:
    return NetSpec(
        generator=cfg.generator,
        discriminator=cfg.discriminator,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        size=cfg.size,
        ngf=cfg.ngf,
        ndf=cfg.ndf,
        n_layers=cfg.n_layers,
        g_norm=cfg.norm,
        d_norm=cfg.norm,
        backbone_weights=cfg.backbone_weights if cfg.generator == "resnet18-unet" else "none",
    )


def optim_spec(cfg: TrainConfig) -> OptimSpec:
    betas = (cfg.beta1, cfg.beta2)
    return OptimSpec(lr_g=cfg.lr, lr_d=cfg.lr, betas_g=betas, betas_d=betas)


def build_stack(cfg: TrainConfig) -> TrickStack:
    return TrickStack.from_specs([(t.name, t.values) for t in cfg.tricks], cfg.gan_mode)


def make_optimizer(params, lr: float, betas, weight_decay: float, device: torch.device, fused: bool | None = None) -> torch.optim.Adam:
    """Adam; ``fused`` (default: on CUDA) runs the fused kernel, one pass over the parameters."""
    kwargs: dict[str, Any] = {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay}
    if device.type == "cuda" if fused is None else fused:
        kwargs["fused"] = True
    return torch.optim.Adam(params, **kwargs)


def linear_decay(total: int, decay_steps: int) -> Callable[[int], float]:
    """LR factor: 1 until the last ``decay_steps`` iterations, then linearly down to 0."""
    start = total - decay_steps

    def factor(step: int) -> float:
        if decay_steps <= 0 or step < start:
            return 1.0
        return max(0.0, 1.0 - (step - start + 1) / (decay_steps + 1))

    return factor


def total_steps(cfg: TrainConfig, n_train: int) -> int:
    if cfg.steps is not None:
        adversarial = cfg.steps
    else:
        epochs = cfg.epochs if cfg.epochs is not None else 200
        adversarial = math.ceil(epochs * n_train / cfg.batch_size)
    return cfg.pretrain_steps + adversarial


@dataclass
class Model:
    """The networks, optimisers, learning-rate schedule and trick stack of a run."""

    cfg: TrainConfig
    runtime: Runtime
    stack: TrickStack
    spec: NetSpec
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    lr_factor: Callable[[int], float]
    ctx: StepContext
    step_fn: Pix2PixStep


def build_model(cfg: TrainConfig, runtime: Runtime, total: int, dist=None) -> Model:
    """``dist`` (a :class:`ganlab.distributed.Dist`) trains over processes: BatchNorm becomes
    synchronised BatchNorm and the step runs G and D wrapped in DistributedDataParallel;
    ``Model.G``/``Model.D`` stay the plain modules (their checkpoints are the same)."""
    stack = build_stack(cfg)
    torch.manual_seed(cfg.seed)
    spec = stack.configure_nets(net_spec(cfg))
    G, D = stack.configure_modules(build_generator(spec), build_discriminator(spec))
    if dist is not None and dist.enabled:
        G, D = dist.sync_batchnorm(G), dist.sync_batchnorm(D)
    G = G.to(runtime.device, memory_format=runtime.memory_format)
    D = D.to(runtime.device, memory_format=runtime.memory_format)
    ospec = stack.configure_optim(optim_spec(cfg))
    opt_g = make_optimizer(G.parameters(), ospec.lr_g, ospec.betas_g, ospec.weight_decay, runtime.device, runtime.fused_adam)
    opt_d = make_optimizer(D.parameters(), ospec.lr_d, ospec.betas_d, ospec.weight_decay, runtime.device, runtime.fused_adam)
    for opt in (opt_g, opt_d):
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    gen = torch.Generator(device=runtime.device).manual_seed(cfg.seed + 1)
    mode = stack.configure_loss(cfg.gan_mode)  # a trick may replace the adversarial loss
    ctx = StepContext(cfg=cfg, G=G, D=D, opt_g=opt_g, opt_d=opt_d, generator=gen, device=runtime.device, gan_mode=mode, total_steps=total)
    stack.setup(ctx)
    G_run, D_run = (dist.wrap(G), dist.wrap(D)) if dist is not None and dist.enabled else (G, D)
    step_fn = Pix2PixStep(G_run, D_run, opt_g, opt_d, gan_mode=mode, lambda_l1=cfg.lambda_l1, stack=stack, ctx=ctx,
                          autocast=runtime.autocast, compile=runtime.compile)
    if runtime.cuda_graphs:
        from ganlab.accel import GraphedStep

        step_fn = GraphedStep(step_fn)
    return Model(cfg, runtime, stack, spec, G, D, opt_g, opt_d, linear_decay(total, cfg.lr_decay_steps), ctx, step_fn)


def set_learning_rates(model: Model, step: int) -> None:
    """The learning rates at ``step``: each optimiser's base rate times the decay factor."""
    factor = model.lr_factor(step)
    for opt in (model.opt_g, model.opt_d):
        for group in opt.param_groups:
            if isinstance(group["lr"], torch.Tensor):  # a captured CUDA graph reads this tensor
                group["lr"].fill_(group["base_lr"] * factor)
            else:
                group["lr"] = group["base_lr"] * factor


# ---------------------------------------------------------------------------------------------
# Run folders
# ---------------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "run"


def default_name(cfg: TrainConfig) -> str:
    data = "sample" if cfg.data is None else Path(cfg.data).expanduser().resolve().name
    return _slug(f"{cfg.task}-{data}")


def new_run_dir(out: str, name: str) -> Path:
    root = Path(out).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".ganlab-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write there ({exc.strerror}); choose a writable folder") from None
    while True:
        numbers = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
        run = root / f"{max(numbers, default=-1) + 1:05d}-{name}"
        try:
            run.mkdir()
            return run
        except FileExistsError:  # another process took this number
            continue


def environment(runtime: Runtime) -> dict[str, Any]:
    env = {
        "ganlab": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(runtime.device),
        "precision": runtime.precision,
        "channels_last": runtime.channels_last,
        "cpu_threads": torch.get_num_threads(),
    }
    if runtime.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(runtime.device)
        env["cuda"] = torch.version.cuda
    return env


def is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def checkpoint_files(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, newest first."""
    return sorted((run_dir / "checkpoints").glob("step-*.pt"), reverse=True)


def _rng_state(model: Model, train_data) -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "tricks": model.ctx.generator.get_state(),
        "data": train_data.state_dict(),
    }
    if model.runtime.device.type == "cuda":  # the training GPU's generator only (dropout draws)
        state["cuda"] = torch.cuda.get_rng_state(model.runtime.device)
    return state


def _set_rng_state(state: dict, model: Model, train_data) -> None:
    # Generator states must be CPU byte tensors, whatever device the checkpoint was mapped to.
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    model.ctx.generator.set_state(state["tricks"].cpu())
    train_data.load_state_dict(state["data"])
    cuda = state.get("cuda")
    if isinstance(cuda, (list, tuple)):  # older checkpoints: every visible GPU's; the first one trained
        cuda = cuda[0] if cuda else None
    if cuda is not None and model.runtime.device.type == "cuda":
        torch.cuda.set_rng_state(cuda.cpu(), model.runtime.device)


def save_checkpoint(run_dir: Path, model: Model, train_data, step: int) -> Path:
    G_eval = model.stack.eval_generator(model.G, model.ctx)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "config": model.cfg.to_dict(),
        "G": model.G.state_dict(),
        "D": model.D.state_dict(),
        "opt_g": portable_optimizer_state(model.opt_g),
        "opt_d": portable_optimizer_state(model.opt_d),
        "tricks": model.stack.state_dict(),
        "rng": _rng_state(model, train_data),
    }
    if G_eval is not model.G:
        payload["G_ema"] = G_eval.state_dict()
    bad = _first_nonfinite_weight(payload)
    if bad is not None:  # never write a checkpoint that a resume would have to refuse
        raise Diverged(step, f"weight {bad}", float("nan"))
    folder = run_dir / "checkpoints"
    folder.mkdir(exist_ok=True)
    path = atomic_torch_save(folder / f"step-{step:07d}.pt", payload)
    for old in checkpoint_files(run_dir)[KEEP_CHECKPOINTS:]:
        old.unlink(missing_ok=True)
    for stale in folder.glob(".step-*.tmp"):  # left by a process killed while writing
        stale.unlink(missing_ok=True)
    return path


def _first_nonfinite_weight(payload: dict) -> str | None:
    """The name of the first G or D tensor holding NaN or Inf, or None."""
    named = [(f"{net}.{name}", t) for net in ("G", "D", "G_ema") for name, t in (payload.get(net) or {}).items()
             if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not named:
        return None
    ok = torch.stack([torch.isfinite(t).all() for _, t in named]).cpu()  # one read-back, not one per tensor
    bad = (~ok).nonzero()
    return named[int(bad[0])][0] if len(bad) else None


def read_checkpoint(path: Path, map_location="cpu", *, for_resume: bool = False) -> dict:
    """Load and validate one checkpoint file; raise GanlabError naming it if it is unusable.
    ``for_resume`` also asks for everything a resumed run needs, all of it finite (an explicit
    file given to eval or colorize may hold a diverged G, or only G, on purpose)."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise GanlabError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT or "G" not in payload:
        raise GanlabError(f"checkpoint {path} is not a ganlab checkpoint")
    if not for_resume:
        return payload
    missing = [k for k in ("step", "config", "G", "D", "opt_g", "opt_d", "rng") if k not in payload]
    if missing or not isinstance(payload["step"], int) or not all(isinstance(payload[k], dict) for k in ("G", "D")):
        raise GanlabError(f"checkpoint {path} is incomplete ({', '.join(missing) or 'malformed'})")
    bad = _first_nonfinite_weight(payload)
    if bad is not None:
        raise GanlabError(f"checkpoint {path} holds NaN or Inf weights ({bad})")
    return payload


def latest_checkpoint(run_dir: Path, warn: Callable[[str], None] = lambda m: None, map_location="cpu", *,
                      for_resume: bool = False, advice: str = "start a new run") -> tuple[Path, dict]:
    """The newest checkpoint that loads; a corrupt newer one is reported and passed over.
    ``advice`` ends the error when none loads (what the caller's user can do then)."""
    files = checkpoint_files(run_dir)
    if not files:
        raise GanlabError(f"{run_dir}: no checkpoint yet (the run stopped or diverged before its first --save-every); {advice}")
    errors = []
    for path in files:
        try:
            return path, read_checkpoint(path, map_location, for_resume=for_resume)
        except GanlabError as exc:
            errors.append(str(exc))
            warn(f"{exc}; falling back to the previous checkpoint")
    raise GanlabError(f"{run_dir}: every checkpoint is unusable ({errors[0]}); {advice}")


# ---------------------------------------------------------------------------------------------
# Evaluation (the cheap in-loop metrics)
# ---------------------------------------------------------------------------------------------


def sample_grid(task: str, cond: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Rows of input | generated | ground truth, as one uint8 (3, H, W) image."""
    from torchvision.utils import make_grid

    from ganlab.color import to_uint8
    from ganlab.data import to_rgb

    if task == "colorize":
        shown_input = ((cond.float() + 1.0) / 2.0).clamp(0, 1).expand(-1, 3, -1, -1)
    else:
        shown_input = ((cond.float() + 1.0) / 2.0).clamp(0, 1)
    cols = torch.stack((shown_input, to_rgb(task, cond, fake), to_rgb(task, cond, real)), dim=1).flatten(0, 1)
    return to_uint8(make_grid(cols.cpu(), nrow=3, padding=2, pad_value=1.0))


def save_png(path: Path, image_u8: torch.Tensor) -> Path:
    from PIL import Image

    arr = image_u8.permute(1, 2, 0).cpu().numpy()
    return atomic_write(path, lambda fh: Image.fromarray(arr).save(fh, format="PNG"))


EVAL_IMAGES = 64  # the fixed validation subset of the in-loop evaluation


@torch.no_grad()
def evaluate(model: Model, val_data, step: int, run_dir: Path | None, writer=None, feature_extractor=None) -> dict[str, float]:
    """Validation L1 and the cheap metrics (KID too where the Inception weights are present) on
    the first ``EVAL_IMAGES`` validation images, and the sample grid."""
    cfg, rt = model.cfg, model.runtime
    G = model.stack.eval_generator(model.G, model.ctx)
    was_training = G.training
    G.eval()
    from ganlab.color import to_uint8
    from ganlab.data import to_rgb

    total, count = 0.0, 0
    conds, fakes, reals = [], [], []
    try:
        for cond, real in val_data.fixed_batches(max(cfg.batch_size, 8), rt.device, EVAL_IMAGES):
            with rt.autocast():
                fake = G(cond.contiguous(memory_format=rt.memory_format)).float()
            total += (fake - real).abs().mean(dim=(1, 2, 3)).sum().item()
            count += cond.shape[0]
            conds.append(cond)
            fakes.append(fake)
            reals.append(real)
    finally:
        G.train(was_training)
    cond, fake, real = torch.cat(conds), torch.cat(fakes), torch.cat(reals)
    metrics = {"val/L1": total / max(count, 1)}
    from ganlab.metrics.inloop import inloop_metrics

    real_u8 = to_uint8(to_rgb(cfg.task, cond, real))
    fake_u8 = to_uint8(to_rgb(cfg.task, cond, fake))
    metrics.update(inloop_metrics(real_u8, fake_u8, seed=cfg.seed, feature_extractor=feature_extractor))
    n = cfg.val_samples
    grid = sample_grid(cfg.task, cond[:n], fake[:n], real[:n])
    if writer is not None:
        writer.add_image("samples/input|generated|truth", grid, step)
    if run_dir is not None:
        (run_dir / "samples").mkdir(exist_ok=True)
        save_png(run_dir / "samples" / f"step-{step + 1:07d}.png", grid)  # named by steps done, as checkpoints are
    return metrics


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    run_dir: Path
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    images_per_second: float = 0.0
    status: str = "finished"


def _quietly(fn, *args) -> OSError | None:
    """Run a clean-up write; an OSError (the disk that stopped the run) is returned, not raised."""
    try:
        fn(*args)
    except OSError as exc:
        return exc
    return None


def _write_failed(exc: OSError, run_dir: Path, step: int) -> GanlabError:
    """One line for a write that failed mid-run: what, why, and where the run can go on from."""
    what = exc.filename or run_dir
    good = checkpoint_files(run_dir) if run_dir.is_dir() else []
    then = (f"its newest checkpoint {good[0].name} is intact; fix that and continue with: ganlab train --resume {run_dir}"
            if good else "no checkpoint was written yet; fix that and start it again")
    return GanlabError(f"cannot write {what} ({exc.strerror or exc}); the run stopped after step {step}; {then}")


def _first_nonfinite(rows) -> tuple[int, str, float] | None:
    for step, row in rows:
        for name, value in row.items():
            if not math.isfinite(value):
                return step, name, value
    return None


def train(
    cfg: TrainConfig,
    *,
    resume: str | os.PathLike | None = None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    on_start: Callable[[Path], None] | None = None,
    datasets=None,
    console=None,
    progress: bool = True,
) -> RunResult:
    """Train (or resume) a run. ``on_eval(step, metrics)`` is called after every evaluation and
    may raise to stop the run (a study's pruner does); ``on_start(run_dir)`` once the run folder
    exists. ``datasets`` passes ready (train, val) splits (a study shares them between trials)."""
    from rich.console import Console

    console = console or Console(stderr=True, soft_wrap=True)

    def warn(msg: str) -> None:
        from rich.markup import escape

        # File names may hold "[...]": printed as they are, never read as console markup.
        console.print(f"[yellow]warning:[/] {escape(msg)}", highlight=False, soft_wrap=True)

    from ganlab import distributed
    from ganlab.distributed import Null

    build_stack(cfg)  # an impossible trick stack is refused before any work
    if cfg.generator == "resnet18-unet" and cfg.backbone_weights not in ("none", "") and resume is None:
        from ganlab.nets.resnet_unet import resnet18_weights_file

        resnet18_weights_file(cfg.backbone_weights)  # absent offline: one line, before any data or run folder
    dist = distributed.setup(cfg)  # one process unless started by torchrun
    if not dist.is_main:  # only rank 0 prints and writes
        console, progress = Console(quiet=True), False
    runtime = runtime_for(cfg.replace(device=dist.device_arg(cfg.device)))
    from ganlab.memory import check_fits

    close = check_fits(cfg, runtime, batch=len(dist.rows(cfg.batch_size)))  # one line, not an out-of-memory kill
    if close:
        warn(close)

    from ganlab.data import build_datasets

    train_data, val_data = datasets if datasets is not None else build_datasets(cfg, warn)
    total = total_steps(cfg, len(train_data))
    if resume is not None:
        run_dir = Path(resume)
        try:  # a run folder that became read-only: say so before any work
            probe = run_dir / f".ganlab-write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UsageError(f"--resume {resume}: cannot write there ({exc.strerror}); make the run folder writable") from None
    else:
        run_dir = dist.broadcast(lambda: new_run_dir(cfg.out, cfg.name or default_name(cfg)))
    model = build_model(cfg, runtime, total, dist)
    train_data.seed(cfg.seed)
    start = 0
    if resume is not None:
        path, payload = latest_checkpoint(run_dir, warn, map_location=runtime.device, for_resume=True)
        try:
            model.G.load_state_dict(payload["G"])
            model.D.load_state_dict(payload["D"])
            model.opt_g.load_state_dict(payload["opt_g"])
            model.opt_d.load_state_dict(payload["opt_d"])
            model.stack.load_state_dict(payload["tricks"])
            _set_rng_state(payload["rng"], model, train_data)
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise GanlabError(f"checkpoint {path} does not fit this run's networks ({type(exc).__name__}); start a new run") from None
        start = int(payload["step"])
        if start >= total:
            raise UsageError(f"--resume {resume}: the run is finished at step {start} of {total}; "
                             f"give --steps N (more than {start - cfg.pretrain_steps}) to train it further")
        console.print(f"resuming {run_dir} from step {start} ({path.name})", highlight=False, markup=False)
    elif dist.is_main:
        atomic_write_json(run_dir / "config.json", cfg.to_dict())
        atomic_write_json(run_dir / "env.json", environment(runtime))
    dist.seed_workers(cfg.seed, start)
    if dist.is_main:
        atomic_write_json(run_dir / "tricks.json", model.stack.describe())
    if on_start is not None:
        on_start(run_dir)
    if dist.is_main:
        atomic_write_json(run_dir / "status.json", {"status": "running", "step": start, "total": total})

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir), purge_step=start if resume is not None else None) if dist.is_main else Null()
    if dist.is_main and resume is not None:  # the steps after the checkpoint are computed again
        truncate_stats(run_dir / "stats.jsonl", before=start)
    jsonl = JsonlSink(run_dir / "stats.jsonl") if dist.is_main else Null()
    bus = StatsBus([TensorBoardSink(writer), jsonl])
    _banner(console, cfg, model, train_data, val_data, run_dir, runtime, total, start)
    if start == 0:
        writer.add_text("config", "```json\n" + __import__("json").dumps(cfg.to_dict(), indent=2) + "\n```", 0)

    from ganlab.metrics.inloop import inloop_feature_extractor

    extractor = inloop_feature_extractor(device=runtime.device)  # None where the weights are absent
    next_batch = dist.batches(train_data, cfg.batch_size, runtime, warn)  # this process's rows
    if runtime.channels_last:
        raw = next_batch
        next_batch = lambda: tuple(t.contiguous(memory_format=torch.channels_last) for t in raw())  # noqa: E731
    result = RunResult(run_dir, start)
    last_row: dict[str, float] = {}
    t_start = time.perf_counter()
    t_window, n_window = time.perf_counter(), 0
    images_done = 0

    from ganlab.metrics.stability import StabilityWindow

    stability_window = StabilityWindow()  # stability/... scalars: the terms over the last 200 updates

    def flush(step: int) -> None:
        nonlocal t_window, n_window, last_row
        elapsed = time.perf_counter() - t_window
        rows = bus.flush()
        if rows and dist.is_main:  # stability terms over a moving window, for TensorBoard
            for name, value in stability_window.update(rows).items():
                writer.add_scalar(f"stability/{name}", value, rows[-1][0])
        if n_window and elapsed > 0 and rows:
            ips = n_window * cfg.batch_size / elapsed
            rows[-1][1]["perf/img_per_s"] = ips
            writer.add_scalar("perf/img_per_s", ips, rows[-1][0])
            jsonl(rows[-1][0], {"perf/img_per_s": ips})
        jsonl.flush()
        t_window, n_window = time.perf_counter(), 0
        bad = _first_nonfinite(rows)
        if bad is not None:
            raise Diverged(*bad)
        for _, row in rows:
            last_row.update(row)

    status = "finished"
    prog = _progress(console, progress)
    try:
        with bus.activate(), prog:
            task = prog.add_task("train", total=total, completed=start, info="")
            step = start
            for step in range(start, total):
                model.ctx.step = bus.step = step
                set_learning_rates(model, step)
                if step < cfg.pretrain_steps:
                    model.step_fn.pretrain(next_batch)
                else:
                    model.step_fn(next_batch)
                report("lr/G", model.opt_g.param_groups[0]["base_lr"] * model.lr_factor(step))
                report("lr/D", model.opt_d.param_groups[0]["base_lr"] * model.lr_factor(step))
                n_window += 1
                images_done += cfg.batch_size
                done = step + 1
                if done % cfg.log_every == 0 or done == total:
                    flush(step)
                    prog.update(task, completed=done, info=_loss_info(last_row))
                if dist.is_main and ((cfg.eval_every and done % cfg.eval_every == 0) or done == total):
                    bus.step = step
                    metrics = evaluate(model, val_data, step, run_dir, writer, extractor)
                    for k, v in metrics.items():
                        report(k, v)
                    flush(step)
                    result.metrics = metrics
                    if on_eval is not None:
                        on_eval(done, metrics)
                if (cfg.save_every and done % cfg.save_every == 0) or done == total:
                    flush(step)  # every rank: a NaN logged since the last flush stops the run before it is saved
                    if dist.is_main:
                        save_checkpoint(run_dir, model, train_data, done)
                        if done < total:  # how far a run got, also after it is killed
                            atomic_write_json(run_dir / "status.json", {"status": "running", "step": done, "total": total})
                result.step = done
    except Diverged as exc:
        status = "diverged"
        if dist.is_main:
            _quietly(atomic_write_json, run_dir / "status.json", {"status": "diverged", "step": exc.step, "value": exc.name, "total": total})
        raise
    except OSError as exc:  # a full disk, a folder gone read-only: one line, the checkpoints intact
        status = "stopped"
        raise _write_failed(exc, run_dir, result.step) from None
    except BaseException:
        status = "stopped"
        raise
    finally:
        # Closing the logs on a full disk fails too; that must not hide why the run stopped.
        _quietly(writer.flush)
        _quietly(writer.close)
        _quietly(jsonl.close)
        if status != "diverged" and dist.is_main:
            final: dict[str, Any] = {"status": status, "step": result.step, "total": total}
            if status == "finished":  # the degenerate-run label (ganlab.metrics.stability), read from stats.jsonl
                from ganlab.metrics.stability import degenerate_from_run

                if (label := degenerate_from_run(run_dir)) is not None:
                    final["degenerate"] = label
            failed = _quietly(atomic_write_json, run_dir / "status.json", final)
            if failed is not None and status == "finished":
                warn(f"could not write {run_dir / 'status.json'} ({failed.strerror or failed})")
        dist.close(finished=status == "finished")
    result.seconds = time.perf_counter() - t_start
    result.images_per_second = images_done / result.seconds if result.seconds > 0 else 0.0
    result.last = last_row
    _summary(console, result, cfg)
    return result


# ---------------------------------------------------------------------------------------------
# Console
# ---------------------------------------------------------------------------------------------


def _progress(console, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]step"),
        MofNCompleteColumn(),
        BarColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=not enabled,
        transient=False,
    )


def _loss_info(row: dict[str, float]) -> str:
    keys = (("perf/img_per_s", "img/s", "{:.1f}"), ("D/total", "D", "{:.3f}"), ("G/adv", "G_adv", "{:.3f}"),
            ("G/L1", "L1", "{:.4f}"), ("pretrain/L1", "L1", "{:.4f}"))
    return "  ".join(fmt.format(row[k]).join((f"{label} ", "")) for k, label, fmt in keys if k in row)


def _banner(console, cfg, model: Model, train_data, val_data, run_dir: Path, runtime, total: int, start: int) -> None:
    data = cfg.data or "built-in sample set (scikit-image photographs)"
    from rich.markup import escape

    console.print(f"[bold]ganlab train[/] ({cfg.task}): [cyan]{escape(str(run_dir))}[/]", highlight=False)
    console.print(
        f"  data: {data}: {len(train_data)} train / {len(val_data)} val images, {train_data.skipped.summary()}",
        highlight=False, markup=False,
    )
    console.print(
        f"  nets: {cfg.generator} G ({count_params(model.G) / 1e6:.2f}M), {cfg.discriminator} D "
        f"({count_params(model.D) / 1e6:.2f}M), {cfg.size}px, batch {cfg.batch_size}, {total} steps"
        + (f" ({cfg.pretrain_steps} L1 pre-training)" if cfg.pretrain_steps else ""),
        highlight=False,
    )
    order = " -> ".join(f"{t.name}" for t in model.stack.tricks) or "none (plain pix2pix)"
    console.print(f"  tricks (in order): {order}", highlight=False)
    console.print(f"  device: {runtime.describe()}", highlight=False)


def _summary(console, result: RunResult, cfg: TrainConfig) -> None:
    from rich.table import Table

    table = Table(title=f"run {result.run_dir.name}: {result.step} steps in {result.seconds:.0f} s", show_header=True)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("images/s", f"{result.images_per_second:.1f}")
    for key in ("D/loss_real", "D/loss_fake", "G/adv", "G/L1", "D/acc_real", "D/acc_fake"):
        if key in result.last:
            table.add_row(key, f"{result.last[key]:.4f}")
    for key, value in result.metrics.items():
        table.add_row(key, f"{value:.4f}")
    console.print(table)
    ckpts = checkpoint_files(result.run_dir)
    console.print(f"TensorBoard logs: {result.run_dir}", highlight=False, markup=False)
    console.print(f"samples:          {result.run_dir / 'samples'}", highlight=False, markup=False)
    if ckpts:
        console.print(f"checkpoint:       {ckpts[0]}", highlight=False, markup=False)
    console.print(f"look at it with:  tensorboard --logdir {result.run_dir.parent}", highlight=False, markup=False)
    if cfg.task == "colorize":
        console.print(f"colourise photos: ganlab colorize {result.run_dir} PHOTO_OR_FOLDER --out colorized", highlight=False, markup=False)


# ---------------------------------------------------------------------------------------------
# Using a trained generator
# ---------------------------------------------------------------------------------------------


def load_generator(path: str | os.PathLike, checkpoint: str = "latest", device="cpu") -> tuple[TrainConfig, nn.Module]:
    """The generator of a run folder or checkpoint file, in eval mode.

    ``checkpoint``: ``latest`` (the run's newest good checkpoint), ``ema`` (its moving average
    of G, where a trick kept one), ``auto`` (the moving average where there is one, else G) or
    the path of a checkpoint file.
    """
    p = Path(path).expanduser()
    if checkpoint not in ("latest", "ema", "auto"):
        ckpt_path = Path(checkpoint).expanduser()
        if not ckpt_path.is_file():
            raise UsageError(f"--checkpoint {checkpoint}: no such file; give latest, ema or a checkpoint file")
        payload = read_checkpoint(ckpt_path)
    elif p.is_file():
        payload = read_checkpoint(p)
    elif p.is_dir():
        if not is_run_dir(p) and not checkpoint_files(p):
            raise UsageError(f"{path}: not a ganlab run folder (no config.json); give a run folder or a checkpoint file")
        _, payload = latest_checkpoint(p, lambda m: warnings.warn(m, stacklevel=2), advice="there is no generator to use")
    else:
        raise UsageError(f"{path}: no such run folder or checkpoint file")
    cfg = TrainConfig.from_dict(payload["config"])
    stack = build_stack(cfg)
    spec = stack.configure_nets(net_spec(cfg))
    spec = dataclasses.replace(spec, backbone_weights="none")  # the checkpoint holds the weights
    G, _ = stack.configure_modules(build_generator(spec), None)
    key = "G_ema" if checkpoint in ("ema", "auto") and "G_ema" in payload else "G"
    if checkpoint == "ema" and key != "G_ema":
        raise UsageError(f"{path}: this run kept no moving average of G (train with --trick g-ema); use its latest weights (eval: --checkpoint latest, colorize: --weights latest)")
    G.load_state_dict(payload[key])
    return cfg, G.to(device).eval()
