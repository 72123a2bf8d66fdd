"""Writing a step checkpoint: the payload checked before any file is written (plain data, finite
weights), the file written atomically, in the caller's thread or in one of its own."""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from ganlab.errors import Diverged, GanlabError
from ganlab.io import atomic_torch_save
from ganlab.train.checkpoint.format import (BEST_FILE, CHECKPOINT_FORMAT, FINAL_FILE, KEEP_CHECKPOINTS, PLAIN_STATE_ADVICE, checkpoint_files,
                                            first_nonfinite_weight, not_plain_data)
from ganlab.train.checkpoint.rng import rng_state

__all__ = ["checkpoint_payload", "in_background", "portable_optimizer_state", "remove_stale_temporaries", "save_checkpoint",
           "save_checkpoint_in_background", "write_checkpoint"]


def save_checkpoint(run_dir: Path, session, train_data, step: int) -> Path:
    return write_checkpoint(run_dir, checkpoint_payload(session, train_data, step), step)


def save_checkpoint_in_background(run_dir: Path, session, train_data, step: int) -> Future:
    """The checkpoint of this moment (weights, optimisers, generators' states, checked now), its
    file written by a thread: for the run's last step, where nothing changes the weights any more
    and the final evaluation runs while the file goes to disk. ``result()`` re-raises a failed
    write."""
    return in_background(write_checkpoint, run_dir, checkpoint_payload(session, train_data, step), step)


def in_background(fn, *args) -> Future:
    """``fn(*args)`` in a thread of its own; ``result()`` waits for it and re-raises its error."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ganlab-checkpoint")
    try:
        return pool.submit(fn, *args)
    finally:
        pool.shutdown(wait=False)


def checkpoint_payload(session, train_data, step: int) -> dict:
    """What a checkpoint holds, refused (before any file is written) when it is not plain data
    or a weight is not finite."""
    G_eval = session.stack.eval_generator(session.G, session.ctx)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "config": json.loads(json.dumps(session.cfg.to_dict(), default=str)),  # as config.json holds it
        "G": session.G.state_dict(),
        "D": session.D.state_dict() if session.D is not None else {},  # {}: the L1-only control has no D
        "opt_g": portable_optimizer_state(session.opt_g),
        "opt_d": portable_optimizer_state(session.opt_d) if session.opt_d is not None else {},
        "tricks": session.stack.state_dict(),
        "rng": rng_state(session, train_data),
    }
    if G_eval is not session.G:
        payload["G_ema"] = G_eval.state_dict()
    for name, state in payload["tricks"].items():  # a checkpoint that could not be opened as data is never written
        found = not_plain_data(state, "state_dict()")
        if found:
            raise GanlabError(f"trick '{name}': {found} is not plain data; {PLAIN_STATE_ADVICE}")
    found = not_plain_data(payload, "checkpoint")  # an optimiser's state, say
    if found:
        raise GanlabError(f"{found} is not plain data; {PLAIN_STATE_ADVICE}")
    bad = first_nonfinite_weight(payload)
    if bad is not None:  # never write a checkpoint that a resume would have to refuse
        raise Diverged(step, f"weight {bad}", float("nan"))
    return payload


def write_checkpoint(run_dir: Path, payload: dict, step: int) -> Path:
    folder = run_dir / "checkpoints"
    folder.mkdir(exist_ok=True)
    path = atomic_torch_save(folder / f"step-{step:07d}.pt", payload)
    for old in checkpoint_files(run_dir)[KEEP_CHECKPOINTS:]:
        old.unlink(missing_ok=True)
    for stale in folder.glob(".step-*.tmp"):  # left by a process killed while writing
        stale.unlink(missing_ok=True)
    return path


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


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Remove the temporary files (``.best.pt.<hex>.tmp``, ``.final.pt.<hex>.tmp``,
    ``.step-....tmp``) that a process killed while writing left in ``RUN/checkpoints``. Called by
    a resume, which holds the run's lock, before it writes anything: no writer of them is alive."""
    folder = Path(run_dir) / "checkpoints"
    gone = []
    for name in (f".{BEST_FILE}.*.tmp", f".{FINAL_FILE}.*.tmp", ".step-*.tmp"):
        for stale in folder.glob(name):
            stale.unlink(missing_ok=True)
            gone.append(stale)
    return gone
