"""Reading checkpoints, as data only (``torch.load(..., weights_only=True)``: opening a file,
however it was crafted, never runs code), with checks that name the file when it is unusable;
restoring a resumed run from one."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable

import torch

from ganlab.errors import GanlabError
from ganlab.train.checkpoint.format import (BEST_FILE, CHECKPOINT_FORMAT, FINAL_FILE, PREVIOUS_FORMAT, WEIGHTS_KIND,
                                            UnsafeCheckpoint, checkpoint_files, first_nonfinite_weight, upgrade_command)
from ganlab.train.checkpoint.rng import set_rng_state
from ganlab.train.checkpoint.scan import asks_for_objects, foreign, is_previous_format, pickle_globals

__all__ = ["checkpoint_config", "is_slimmed", "latest_checkpoint", "load_weights", "read_checkpoint", "restore",
           "slimmed_refusal", "state_mismatch"]


def previous_format_refusal(path: Path, target: Path | None = None) -> UnsafeCheckpoint:
    return UnsafeCheckpoint(
        f"checkpoint {path} is in the previous format ({PREVIOUS_FORMAT}), which loads only by unpickling objects that "
        f"could run code, so it was not opened; if you trust the file (you wrote it yourself), convert "
        f"{'every checkpoint of the run' if target is not None else 'it'} with: {upgrade_command(target or path)}")


def _refusal(path: Path) -> UnsafeCheckpoint:
    if is_previous_format(path):
        return previous_format_refusal(path)
    scan = pickle_globals(path)
    names = foreign(scan.globals) if scan else []
    what = f" ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})" if names else ""
    return UnsafeCheckpoint(f"checkpoint {path} refused: it only loads by unpickling objects{what} that could run code, "
                            "and a ganlab checkpoint is data (tensors, numbers, strings); nothing in it was run")


def _load_data(path: Path, map_location="cpu"):
    """``torch.load(path, weights_only=True)``; UnsafeCheckpoint for a file that asks for more,
    GanlabError for one that is damaged."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if asks_for_objects(path):  # not damage: a file that wants more than data
            raise _refusal(path) from None
        raise GanlabError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__})") from None
    except Exception as exc:
        raise GanlabError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__})") from None


def read_checkpoint(path: Path, map_location="cpu", *, for_resume: bool = False) -> dict:
    """Load and validate one checkpoint file, as data (``weights_only=True``: nothing in it runs);
    raise GanlabError naming it if it is unusable, UnsafeCheckpoint if it needs unpickling.
    ``for_resume`` also asks for everything a resumed run needs, all of it finite (an explicit
    file given to eval or colorize may hold a diverged G, or only G, on purpose)."""
    path = Path(path)
    payload = _load_data(path, map_location)
    if isinstance(payload, dict) and payload.get("format") == PREVIOUS_FORMAT:  # a /1 file with nothing numpy in it
        raise previous_format_refusal(path)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT or "G" not in payload:
        raise GanlabError(f"checkpoint {path} is not a ganlab checkpoint")
    if not for_resume:
        return payload
    if payload.get("kind") == WEIGHTS_KIND:
        raise GanlabError(f"checkpoint {path} holds a generator's weights only (no discriminator, optimisers or RNG "
                          "states), so a run cannot continue from it; start a new run")
    missing = [k for k in ("step", "config", "G", "D", "opt_g", "opt_d", "rng") if k not in payload]
    if missing or not isinstance(payload["step"], int) or not all(isinstance(payload[k], dict) for k in ("G", "D")):
        raise GanlabError(f"checkpoint {path} is incomplete ({', '.join(missing) or 'malformed'})")
    bad = first_nonfinite_weight(payload)
    if bad is not None:
        raise GanlabError(f"checkpoint {path} holds NaN or Inf weights ({bad})")
    return payload


def latest_checkpoint(run_dir: Path, warn: Callable[[str], None] = lambda m: None, map_location="cpu", *,
                      for_resume: bool = False, advice: str = "start a new run") -> tuple[Path, dict]:
    """The newest checkpoint that loads; a corrupt newer one is reported and passed over.
    ``advice`` ends the error when none loads (what the caller's user can do then)."""
    files = checkpoint_files(run_dir)
    final = Path(run_dir) / "checkpoints" / FINAL_FILE
    if not files and final.is_file():  # a finished run whose step checkpoints were dropped (slim_run)
        if for_resume:
            raise slimmed_refusal(run_dir)
        return final, read_checkpoint(final, map_location)
    if not files:
        raise GanlabError(f"{run_dir}: no checkpoint yet (the run stopped or diverged before its first --save-every); {advice}")
    errors = []
    for path in files:
        try:
            return path, read_checkpoint(path, map_location, for_resume=for_resume)
        except UnsafeCheckpoint:
            if is_previous_format(path):  # so are the run's older ones: convert them all at once
                raise previous_format_refusal(path, Path(run_dir)) from None
            raise  # never passed over: a file planted to run code is the user's to know about
        except GanlabError as exc:
            errors.append(str(exc))
            warn(f"{exc}; falling back to the previous checkpoint")
    raise GanlabError(f"{run_dir}: every checkpoint is unusable ({errors[0]}); {advice}")


def slimmed_refusal(run_dir: Path) -> GanlabError:
    """The one line for resuming a run whose training state was dropped by ``slim_run``."""
    return GanlabError(f"--resume {run_dir}: its training state was dropped when the study finished it (checkpoints/"
                       f"{FINAL_FILE} and {BEST_FILE} hold the generator's weights only); start a new run, or re-train "
                       "with the study's keep_checkpoints = \"all\"")


def is_slimmed(run_dir: Path) -> bool:
    return not checkpoint_files(run_dir) and (Path(run_dir) / "checkpoints" / FINAL_FILE).is_file()


def _shape(value) -> str:
    return f"({', '.join(str(n) for n in value.shape)})" if isinstance(value, torch.Tensor) else type(value).__name__


def state_mismatch(module: torch.nn.Module, saved, what: str = "G") -> str | None:
    """How a saved state dict disagrees with ``module`` (a missing or unexpected tensor, or the
    first tensor whose shape differs), as ``what``'s tensor name and both shapes; None when it
    fits."""
    if not isinstance(saved, dict):
        return f"{what} is a {type(saved).__name__}, not a state dict"
    expected = module.state_dict()
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    for name, tensor in expected.items():
        if name in saved and (not isinstance(saved[name], torch.Tensor) or saved[name].shape != tensor.shape):
            return f"{what} {name} is {_shape(saved[name])} in the file, {_shape(tensor)} in the network"
    if missing:
        return f"{what} {missing[0]} is missing from the file" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
    if unexpected:
        return f"{what} {unexpected[0]} is in the file but not in the network" + (
            f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
    return None


def checkpoint_config(path: Path, payload: dict):
    """The TrainConfig a checkpoint was written with; GanlabError naming the file when it has
    none or it does not parse."""
    from ganlab.config import TrainConfig

    config = payload.get("config")
    if not isinstance(config, dict):
        why = "no configuration (no 'config' entry)" if config is None else f"a {type(config).__name__} as its 'config'"
        raise GanlabError(f"checkpoint {path} holds {why}, so its networks cannot be built; use a checkpoint written by "
                          "ganlab train")
    try:
        return TrainConfig.from_dict(config, f"checkpoint {path}: config")
    except GanlabError as exc:
        raise GanlabError(f"{exc} (its configuration does not parse; use a checkpoint written by ganlab train)") from None


def load_weights(module: torch.nn.Module, saved, path: Path, what: str = "G") -> None:
    """``module.load_state_dict(saved)``, or GanlabError naming the file and the first tensor
    that does not fit the network its configuration describes."""
    wrong = state_mismatch(module, saved, what)
    if wrong is None:
        try:
            module.load_state_dict(saved)
            return
        except (RuntimeError, ValueError, TypeError) as exc:
            wrong = f"{what}: {type(exc).__name__}"
    raise GanlabError(f"checkpoint {path} does not fit the networks its configuration describes ({wrong}): its "
                      "configuration disagrees with its weights; use a checkpoint written by ganlab train")


def restore(session, train_data, path: Path, payload: dict) -> int:
    """Load a checkpoint read with ``for_resume`` into a freshly built session (networks,
    optimisers, trick states and every RNG); returns the step it was written at."""
    for net, what in ((session.G, "G"), (session.D, "D")):
        wrong = state_mismatch(net, payload.get(what), what) if net is not None else None
        if wrong is not None:
            raise GanlabError(f"checkpoint {path} does not fit this run's networks ({wrong}; the networks are built from "
                              f"the run's config.json); start a new run")
    try:
        session.G.load_state_dict(payload["G"])
        if session.D is not None:
            session.D.load_state_dict(payload["D"])
        session.opt_g.load_state_dict(payload["opt_g"])
        if session.opt_d is not None:
            session.opt_d.load_state_dict(payload["opt_d"])
        session.stack.load_state_dict(payload["tricks"])
        set_rng_state(payload["rng"], session, train_data)
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise GanlabError(f"checkpoint {path} does not fit this run's networks ({type(exc).__name__}); start a new run") from None
    return int(payload["step"])
