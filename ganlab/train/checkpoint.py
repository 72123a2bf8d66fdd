"""Checkpoints: everything a resumed run needs (G, D, optimisers, trick states, every RNG),
written atomically, read back with checks that name the file when it is unusable."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ganlab.errors import GanlabError
from ganlab.io import atomic_torch_save
from ganlab.train.build import Session
from ganlab.train.errors import Diverged

CHECKPOINT_FORMAT = "ganlab-checkpoint/1"
KEEP_CHECKPOINTS = 3

__all__ = ["CHECKPOINT_FORMAT", "checkpoint_files", "latest_checkpoint", "portable_optimizer_state", "read_checkpoint",
           "restore", "save_checkpoint"]


def checkpoint_files(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, newest first."""
    return sorted((run_dir / "checkpoints").glob("step-*.pt"), reverse=True)


def _rng_state(session: Session, train_data) -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "tricks": session.ctx.rng.get_state(),
        "data": train_data.state_dict(),
    }
    if session.runtime.device.type == "cuda":  # the training GPU's generator only (dropout draws)
        state["cuda"] = torch.cuda.get_rng_state(session.runtime.device)
    return state


def _set_rng_state(state: dict, session: Session, train_data) -> None:
    # Generator states must be CPU byte tensors, whatever device the checkpoint was mapped to.
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    session.ctx.rng.set_state(state["tricks"].cpu())
    train_data.load_state_dict(state["data"])
    cuda = state.get("cuda")
    if isinstance(cuda, (list, tuple)):  # older checkpoints: every visible GPU's; the first one trained
        cuda = cuda[0] if cuda else None
    if cuda is not None and session.runtime.device.type == "cuda":
        torch.cuda.set_rng_state(cuda.cpu(), session.runtime.device)


def save_checkpoint(run_dir: Path, session: Session, train_data, step: int) -> Path:
    G_eval = session.stack.eval_generator(session.G, session.ctx)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "config": session.cfg.to_dict(),
        "G": session.G.state_dict(),
        "D": session.D.state_dict() if session.D is not None else {},  # {}: the L1-only control has no D
        "opt_g": portable_optimizer_state(session.opt_g),
        "opt_d": portable_optimizer_state(session.opt_d) if session.opt_d is not None else {},
        "tricks": session.stack.state_dict(),
        "rng": _rng_state(session, train_data),
    }
    if G_eval is not session.G:
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




def portable_optimizer_state(opt: torch.optim.Optimizer) -> dict:
    """``opt.state_dict()`` with plain-number learning rates and ``capturable`` off, so that a
    checkpoint written under ``--cuda-graphs`` loads into any run (and the other way round)."""
    state = opt.state_dict()
    for group in state["param_groups"]:
        if isinstance(group.get("lr"), torch.Tensor):
            group["lr"] = float(group["lr"])
        if "capturable" in group:
            group["capturable"] = False
    return state


def restore(session: Session, train_data, path: Path, payload: dict) -> int:
    """Load a checkpoint read with ``for_resume`` into a freshly built session (networks,
    optimisers, trick states and every RNG); returns the step it was written at."""
    try:
        session.G.load_state_dict(payload["G"])
        if session.D is not None:
            session.D.load_state_dict(payload["D"])
        session.opt_g.load_state_dict(payload["opt_g"])
        if session.opt_d is not None:
            session.opt_d.load_state_dict(payload["opt_d"])
        session.stack.load_state_dict(payload["tricks"])
        _set_rng_state(payload["rng"], session, train_data)
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise GanlabError(f"checkpoint {path} does not fit this run's networks ({type(exc).__name__}); start a new run") from None
    return int(payload["step"])
