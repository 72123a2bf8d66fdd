"""Checkpoints: everything a resumed run needs (G, D, optimisers, trick states, every RNG),
written atomically, read back with checks that name the file when it is unusable.

A checkpoint is data. Everything in it is a tensor, a number, a string, None, or a list or dict
of these (the RNG states of numpy and Python converted to such plain values), and every reader
loads it with ``torch.load(..., weights_only=True)``: opening a checkpoint, however it was
crafted, never runs code. A file that only loads by unpickling other objects is refused with one
line; a file of the previous format (``ganlab-checkpoint/1``, whose numpy RNG state was a
pickled array) is converted, when its user trusts it, by ``ganlab checkpoint upgrade FILE
--i-trust-this-file`` (:func:`upgrade_checkpoint`)."""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import pickletools
import random
import shutil
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ganlab.errors import GanlabError
from ganlab.io import atomic_torch_save
from ganlab.train.build import Session
from ganlab.errors import Diverged

CHECKPOINT_FORMAT = "ganlab-checkpoint/2"
PREVIOUS_FORMAT = "ganlab-checkpoint/1"  # RNG states pickled as numpy arrays and tuples: not loadable as data
KEEP_CHECKPOINTS = 3
BACKUP_SUFFIX = ".v1.bak"  # where upgrade_checkpoint keeps the original (not matched by step-*.pt)

# The only objects a ganlab-checkpoint/1 file unpickles besides torch's tensors: numpy's array
# of the legacy MT19937 state. A file that asks for anything else is not one of ours.
_PREVIOUS_FORMAT_GLOBALS = frozenset({
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
    "numpy.dtypes.UInt32DType",
})

PLAIN_DATA = ("tensors, numbers, strings, booleans, None, and lists, tuples and dicts of them")

__all__ = ["BACKUP_SUFFIX", "CHECKPOINT_FORMAT", "PLAIN_DATA", "PLAIN_STATE_ADVICE", "PREVIOUS_FORMAT", "UnsafeCheckpoint", "checkpoint_files",
           "latest_checkpoint", "not_plain_data", "portable_optimizer_state", "read_checkpoint", "restore",
           "save_checkpoint", "upgrade_checkpoint", "upgrade_command", "upgrade_targets"]


class UnsafeCheckpoint(GanlabError):
    """A file that only loads by unpickling arbitrary objects: refused, and nothing in it ran.
    Never passed over for an older checkpoint: a file planted to run code is the user's to see."""


def upgrade_command(path: str | os.PathLike) -> str:
    return f"ganlab checkpoint upgrade {path} --i-trust-this-file"


def checkpoint_files(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, newest first."""
    return sorted((run_dir / "checkpoints").glob("step-*.pt"), reverse=True)


# RNG states as plain data ----------------------------------------------------------------------
def _plain_numpy_state(state) -> dict:
    """numpy's legacy ``(name, uint32[624], pos, has_gauss, cached_gaussian)`` as plain values."""
    name, key, pos, has_gauss, gauss = state
    return {"bit_generator": str(name), "key": [int(k) for k in key], "pos": int(pos), "has_gauss": int(has_gauss),
            "cached_gaussian": float(gauss)}


def _numpy_state(plain: dict) -> tuple:
    return (str(plain["bit_generator"]), np.asarray(plain["key"], dtype=np.uint32), int(plain["pos"]),
            int(plain["has_gauss"]), float(plain["cached_gaussian"]))


def _plain_python_state(state) -> dict:
    """``random.getstate()``'s ``(version, (625 ints), gauss_next)`` as plain values."""
    version, internal, gauss_next = state
    return {"version": int(version), "state": [int(x) for x in internal],
            "gauss_next": None if gauss_next is None else float(gauss_next)}


def _python_state(plain: dict) -> tuple:
    return (int(plain["version"]), tuple(int(x) for x in plain["state"]), plain["gauss_next"])


def _rng_state(session: Session, train_data) -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": _plain_numpy_state(np.random.get_state(legacy=True)),
        "python": _plain_python_state(random.getstate()),
        "tricks": session.ctx.rng.get_state(),
        "data": train_data.state_dict(),
    }
    if session.runtime.device.type == "cuda":  # the training GPU's generator only (dropout draws)
        state["cuda"] = torch.cuda.get_rng_state(session.runtime.device)
    return state


def _set_rng_state(state: dict, session: Session, train_data) -> None:
    # Generator states must be CPU byte tensors, whatever device the checkpoint was mapped to.
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(_numpy_state(state["numpy"]))
    random.setstate(_python_state(state["python"]))
    session.ctx.rng.set_state(state["tricks"].cpu())
    train_data.load_state_dict(state["data"])
    cuda = state.get("cuda")
    if cuda is not None and session.runtime.device.type == "cuda":
        torch.cuda.set_rng_state(cuda.cpu(), session.runtime.device)


# Plain data ------------------------------------------------------------------------------------
_PLAIN_SCALARS = (int, float, bool, str, bytes, type(None), torch.Size, torch.dtype, torch.device)


def not_plain_data(obj: Any, where: str = "") -> str | None:
    """Where ``obj`` holds something ``torch.load(..., weights_only=True)`` would refuse, as
    ``where[key]...: TypeName``; None when it is plain data (see PLAIN_DATA)."""
    if isinstance(obj, torch.Tensor):
        return None if type(obj) in (torch.Tensor, torch.nn.Parameter) else f"{where or 'the value'}: {type(obj).__name__}"
    if type(obj) in _PLAIN_SCALARS:
        return None
    if type(obj) in (dict, collections.OrderedDict):
        for k, v in obj.items():
            if type(k) not in (str, int):
                return f"{where or 'the value'}: a {type(k).__name__} key"
            found = not_plain_data(v, f"{where}[{k!r}]")
            if found:
                return found
        return None
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            found = not_plain_data(v, f"{where}[{i}]")
            if found:
                return found
        return None
    return f"{where or 'the value'}: {type(obj).__module__}.{type(obj).__qualname__}"


def save_checkpoint(run_dir: Path, session: Session, train_data, step: int) -> Path:
    return write_checkpoint(run_dir, checkpoint_payload(session, train_data, step), step)


def save_checkpoint_in_background(run_dir: Path, session: Session, train_data, step: int) -> Future:
    """The checkpoint of this moment (weights, optimisers, generators' states, checked now), its
    file written by a thread: for the run's last step, where nothing changes the weights any more
    and the final evaluation runs while the file goes to disk. ``result()`` re-raises a failed
    write."""
    payload = checkpoint_payload(session, train_data, step)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ganlab-checkpoint")
    try:
        return pool.submit(write_checkpoint, run_dir, payload, step)
    finally:
        pool.shutdown(wait=False)


def checkpoint_payload(session: Session, train_data, step: int) -> dict:
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
        "rng": _rng_state(session, train_data),
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
    bad = _first_nonfinite_weight(payload)
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


def _first_nonfinite_weight(payload: dict) -> str | None:
    """The name of the first G or D tensor holding NaN or Inf, or None."""
    named = [(f"{net}.{name}", t) for net in ("G", "D", "G_ema") for name, t in (payload.get(net) or {}).items()
             if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not named:
        return None
    # A tensor's largest magnitude is finite exactly when all of it is (NaN propagates; no sum that
    # could overflow); one pass over it, no boolean copy; one read-back, not one per tensor.
    peaks = [torch.linalg.vector_norm(t, float("inf")).float() if t.numel() else t.new_zeros((), dtype=torch.float32)
             for _, t in named]
    ok = torch.isfinite(torch.stack(peaks)).cpu()
    bad = (~ok).nonzero()
    return named[int(bad[0])][0] if len(bad) else None


PLAIN_STATE_ADVICE = (f"a checkpoint holds only {PLAIN_DATA} and is loaded with torch.load(..., weights_only=True): "
                       "store the object's tensors and numbers (e.g. its own state_dict()) and rebuild it in load_state_dict()")


def _pickle_globals(path: Path) -> tuple[set[str], bool] | None:
    """The ``module.name`` globals a torch checkpoint's pickle refers to and whether it holds
    the previous format's tag, read from its opcodes without unpickling anything; None when
    the file cannot be read. (A zip archive's data.pkl; a file of torch's legacy format is a
    few pickles in a row.)"""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                name = next((n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
                if name is None:
                    return None
                stream, pickles = io.BytesIO(zf.read(name)), 1
        else:
            stream, pickles = io.BytesIO(Path(path).read_bytes()), 4  # magic, protocol, sys info, the object
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    found: set[str] = set()
    tagged = False
    strings: list[Any] = []  # what the recent opcodes pushed (for STACK_GLOBAL), strings only
    memo: dict[int, Any] = {}
    try:
        for op, arg, _ in (item for _ in range(pickles) for item in pickletools.genops(stream)):
            if op.name == "GLOBAL":
                found.add(str(arg).replace(" ", "."))
                strings.append(None)
            elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
                             "BINSTRING", "STRING"):
                tagged = tagged or arg == PREVIOUS_FORMAT
                strings.append(arg)
            elif op.name == "MEMOIZE":
                memo[len(memo)] = strings[-1] if strings else None
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(arg)] = strings[-1] if strings else None
            elif op.name in ("BINGET", "LONG_BINGET", "GET"):
                strings.append(memo.get(int(arg)))
            elif op.name == "STACK_GLOBAL":
                mod, qual = (strings[-2], strings[-1]) if len(strings) >= 2 else (None, None)
                found.add(f"{mod}.{qual}" if isinstance(mod, str) and isinstance(qual, str) else "an unnamed global")
                strings.append(None)
            else:
                strings.append(None)
    except Exception:  # a damaged pickle: what was read so far
        pass
    return found, tagged


def _foreign(found: set[str]) -> list[str]:
    """The globals that are not torch's own (tensors, storages) nor among the few plain ones
    ``weights_only`` allows (an OrderedDict, bytes as protocol 2 writes them)."""
    return sorted(g for g in found if not (g.startswith("torch.") or g in ("collections.OrderedDict", "_codecs.encode")))


def _asks_for_objects(path: Path) -> bool:
    scan = _pickle_globals(path)
    return scan is not None and (scan[1] or bool(_foreign(scan[0])))


def _is_previous_format(path: Path) -> bool:
    scan = _pickle_globals(path)
    return scan is not None and scan[1] and set(_foreign(scan[0])) <= _PREVIOUS_FORMAT_GLOBALS


def _previous_format_refusal(path: Path, target: Path | None = None) -> UnsafeCheckpoint:
    return UnsafeCheckpoint(
        f"checkpoint {path} is in the previous format ({PREVIOUS_FORMAT}), which loads only by unpickling objects that "
        f"could run code, so it was not opened; if you trust the file (you wrote it yourself), convert "
        f"{'every checkpoint of the run' if target is not None else 'it'} with: {upgrade_command(target or path)}")


def _refusal(path: Path) -> UnsafeCheckpoint:
    if _is_previous_format(path):
        return _previous_format_refusal(path)
    scan = _pickle_globals(path)
    foreign = _foreign(scan[0]) if scan else []
    what = f" ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''})" if foreign else ""
    return UnsafeCheckpoint(f"checkpoint {path} refused: it only loads by unpickling objects{what} that could run code, "
                            "and a ganlab checkpoint is data (tensors, numbers, strings); nothing in it was run")


def _load_data(path: Path, map_location="cpu"):
    """``torch.load(path, weights_only=True)``; UnsafeCheckpoint for a file that asks for more,
    GanlabError for one that is damaged."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if _asks_for_objects(path):  # not damage: a file that wants more than data
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
        raise _previous_format_refusal(path)
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
        except UnsafeCheckpoint:
            if _is_previous_format(path):  # so are the run's older ones: convert them all at once
                raise _previous_format_refusal(path, Path(run_dir)) from None
            raise  # never passed over: a file planted to run code is the user's to know about
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


# Converting a trusted file of the previous format -------------------------------------------------
def _upgrade_payload(payload: dict) -> dict:
    """A ganlab-checkpoint/1 payload in the current format: its RNG states as plain data."""
    out = dict(payload, format=CHECKPOINT_FORMAT)
    if isinstance(out.get("config"), dict):
        out["config"] = json.loads(json.dumps(out["config"], default=str))
    rng = out.get("rng")
    if isinstance(rng, dict):
        rng = dict(rng)
        if "numpy" in rng and not isinstance(rng["numpy"], dict):
            rng["numpy"] = _plain_numpy_state(rng["numpy"])
        if "python" in rng and not isinstance(rng["python"], dict):
            rng["python"] = _plain_python_state(rng["python"])
        cuda = rng.get("cuda")
        if isinstance(cuda, (list, tuple)):  # the oldest files: every visible GPU's; the first one trained
            rng["cuda"] = cuda[0] if cuda else None
            if rng["cuda"] is None:
                del rng["cuda"]
        out["rng"] = rng
    return out


def upgrade_checkpoint(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """Convert one trusted ``ganlab-checkpoint/1`` file to the current format, in place.

    The file is unpickled (``weights_only=False``: this runs whatever code it holds, which is
    why the command asks for ``--i-trust-this-file``), but only after a look at its opcodes,
    which runs nothing, shows it holds the previous format's tag and refers to no object
    besides torch's and numpy's arrays. The converted checkpoint replaces the file atomically;
    the original is kept beside it as ``FILE.v1.bak``. Returns (file, backup), backup None when
    the file was already in the current format. GanlabError naming the file otherwise."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise GanlabError(f"{path}: no such checkpoint file")
    try:
        read_checkpoint(path)
        return path, None  # already data: nothing to convert
    except UnsafeCheckpoint:
        pass
    if not _is_previous_format(path):
        scan = _pickle_globals(path)
        foreign = [g for g in _foreign(scan[0]) if g not in _PREVIOUS_FORMAT_GLOBALS] if scan else []
        why = f"it refers to {', '.join(foreign[:3])}, which no ganlab checkpoint holds" if foreign else \
            f"it is not a {PREVIOUS_FORMAT} file"
        raise GanlabError(f"checkpoint {path} not converted: {why}; nothing in it was run")
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    if backup.exists():
        raise GanlabError(f"checkpoint {path} not converted: {backup} already exists; move it away first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)  # trusted by the user's explicit word
    except Exception as exc:
        raise GanlabError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != PREVIOUS_FORMAT or "G" not in payload:
        raise GanlabError(f"checkpoint {path} not converted: it is not a {PREVIOUS_FORMAT} file")
    payload = _upgrade_payload(payload)
    found = not_plain_data(payload, "checkpoint")
    if found:
        raise GanlabError(f"checkpoint {path} not converted: {found} is not plain data")
    try:
        os.link(path, backup)  # the original's bytes stay under the backup's name when the file is replaced
    except OSError:
        shutil.copy2(path, backup)
    try:
        atomic_torch_save(path, payload)
        read_checkpoint(path)  # the converted file opens as data
    except BaseException:
        os.replace(backup, path)  # put the original back
        raise
    return path, backup


def upgrade_targets(paths: list[str]) -> list[Path]:
    """The files an upgrade converts: each file given, and every checkpoint of each run folder."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            files = checkpoint_files(p) or sorted(p.glob("step-*.pt"), reverse=True)
            if not files:
                raise GanlabError(f"{raw}: no checkpoints in this folder (give checkpoint files or a run folder)")
            out.extend(files)
        elif p.is_file():
            out.append(p)
        else:
            raise GanlabError(f"{raw}: no such checkpoint file or run folder")
    return out
