"""Checkpoints: everything a resumed run needs (G, D, optimisers, trick states, every RNG),
written atomically, read back with checks that name the file when it is unusable.

A checkpoint is data. Everything in it is a tensor, a number, a string, None, or a list or dict
of these (the RNG states of numpy and Python converted to such plain values), and every reader
loads it with ``torch.load(..., weights_only=True)``: opening a checkpoint, however it was
crafted, never runs code. A file that only loads by unpickling other objects is refused with one
line; a file of the previous format (``ganlab-checkpoint/1``, whose numpy RNG state was a
pickled array) is converted, when its user trusts it, by ``ganlab checkpoint upgrade FILE
--i-trust-this-file`` (:func:`upgrade_checkpoint`).

Besides the step checkpoints (``step-NNNNNNN.pt``, the newest ``KEEP_CHECKPOINTS`` kept), a run
folder may hold two weights-only files (``"kind": "weights"``: the step, the configuration, G and
its moving average where a trick keeps one; no D, optimisers or RNG states, so nothing to resume
from): ``best.pt``, the generator of the in-loop evaluation with the best value of the run's
``--best-metric`` (:func:`save_best`), and ``final.pt``, the newest step checkpoint's generator
once a finished run's step checkpoints were dropped (:func:`slim_run`)."""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import math
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

from ganlab.config import TrainConfig
from ganlab.errors import GanlabError
from ganlab.io import atomic_torch_save
from ganlab.metrics.names import INLOOP_METRICS, inloop_value
from ganlab.train.build import Session
from ganlab.errors import Diverged

CHECKPOINT_FORMAT = "ganlab-checkpoint/2"
PREVIOUS_FORMAT = "ganlab-checkpoint/1"  # RNG states pickled as numpy arrays and tuples: not loadable as data
KEEP_CHECKPOINTS = 3
BEST_FILE = "best.pt"  # in RUN/checkpoints: the generator of the best evaluation (weights only)
FINAL_FILE = "final.pt"  # in RUN/checkpoints: a slimmed run's last generator (weights only)
WEIGHTS_KIND = "weights"  # the "kind" of a weights-only file; a full checkpoint has none
BACKUP_SUFFIX = ".v1.bak"  # where upgrade_checkpoint keeps the original (not matched by step-*.pt)

# The only objects a ganlab-checkpoint/1 file unpickles besides torch's tensors: numpy's array
# of the legacy MT19937 state. A file that asks for anything else is not one of ours.
_PREVIOUS_FORMAT_GLOBALS = frozenset({
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
    "numpy.dtypes.UInt32DType",
})

PLAIN_DATA = ("tensors, numbers, strings, booleans, None, and lists, tuples and dicts of them")

__all__ = ["BACKUP_SUFFIX", "BEST_FILE", "CHECKPOINT_FORMAT", "FINAL_FILE", "PLAIN_DATA", "PLAIN_STATE_ADVICE", "PREVIOUS_FORMAT",
           "WEIGHTS_KIND", "BestSoFar", "UnsafeCheckpoint", "best_checkpoint", "checkpoint_bytes", "checkpoint_files",
           "latest_checkpoint", "not_plain_data", "portable_optimizer_state", "read_checkpoint", "restore",
           "save_best", "save_checkpoint", "slim_run", "slimmed_refusal", "upgrade_checkpoint", "upgrade_command",
           "upgrade_targets", "weights_payload"]


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
    return in_background(write_checkpoint, run_dir, checkpoint_payload(session, train_data, step), step)


def in_background(fn, *args) -> Future:
    """``fn(*args)`` in a thread of its own; ``result()`` waits for it and re-raises its error."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ganlab-checkpoint")
    try:
        return pool.submit(fn, *args)
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
    if payload.get("kind") == WEIGHTS_KIND:
        raise GanlabError(f"checkpoint {path} holds a generator's weights only (no discriminator, optimisers or RNG "
                          "states), so a run cannot continue from it; start a new run")
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
            if _is_previous_format(path):  # so are the run's older ones: convert them all at once
                raise _previous_format_refusal(path, Path(run_dir)) from None
            raise  # never passed over: a file planted to run code is the user's to know about
        except GanlabError as exc:
            errors.append(str(exc))
            warn(f"{exc}; falling back to the previous checkpoint")
    raise GanlabError(f"{run_dir}: every checkpoint is unusable ({errors[0]}); {advice}")




def slimmed_refusal(run_dir: Path) -> GanlabError:
    """The one line for resuming a run whose training state was dropped by :func:`slim_run`."""
    return GanlabError(f"--resume {run_dir}: its training state was dropped when the study finished it (checkpoints/"
                       f"{FINAL_FILE} and {BEST_FILE} hold the generator's weights only); start a new run, or re-train "
                       "with the study's keep_checkpoints = \"all\"")


def is_slimmed(run_dir: Path) -> bool:
    return not checkpoint_files(run_dir) and (Path(run_dir) / "checkpoints" / FINAL_FILE).is_file()


# Weights-only files: the best evaluation's generator, a slimmed run's last one --------------------
def weights_payload(step: int, config: dict, G: dict, G_ema: dict | None = None, best: dict | None = None) -> dict:
    """A weights-only file's payload (plain data): the generator's state (and its moving
    average's), the step and configuration it comes from, and for ``best.pt`` the evaluation
    that chose it (``{"metric", "value", "step"}``)."""
    payload = {"format": CHECKPOINT_FORMAT, "kind": WEIGHTS_KIND, "step": int(step), "config": config, "G": G}
    if G_ema is not None:
        payload["G_ema"] = G_ema
    if best is not None:
        payload["best"] = dict(best)
    return payload


def save_best(run_dir: Path, session: Session, step: int, best: dict) -> Path | None:
    """Write ``RUN/checkpoints/best.pt`` atomically: the generator (and its moving average where
    a trick keeps one) after ``step`` steps, with ``best`` = ``{"metric", "value", "step"}``.
    Nothing is written (None) when a weight is NaN or Inf."""
    G_eval = session.stack.eval_generator(session.G, session.ctx)
    payload = weights_payload(step, json.loads(json.dumps(session.cfg.to_dict(), default=str)), session.G.state_dict(),
                              G_eval.state_dict() if G_eval is not session.G else None, best)
    if _first_nonfinite_weight(payload) is not None:
        return None
    folder = run_dir / "checkpoints"
    folder.mkdir(exist_ok=True)
    return atomic_torch_save(folder / BEST_FILE, payload)


def best_checkpoint(run_dir: Path, map_location="cpu") -> tuple[Path, dict]:
    """``RUN/checkpoints/best.pt`` and its payload; GanlabError naming the fix when there is none."""
    path = Path(run_dir) / "checkpoints" / BEST_FILE
    if not path.is_file():
        cfg = _run_config(run_dir)
        why = ("it was trained with --best-metric none" if cfg.get("best_metric") == "none" else
               "it was trained before ganlab kept one, or stopped before its first evaluation (--eval-every)")
        raise GanlabError(f"{run_dir}: no best checkpoint ({BEST_FILE}): {why}; use --checkpoint latest, or train a run "
                          "with --best-metric METRIC")
    return path, read_checkpoint(path, map_location)


def _run_config(run_dir: Path) -> dict:
    try:
        data = json.loads((Path(run_dir) / "config.json").read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


@dataclasses.dataclass
class BestSoFar:
    """The run's best evaluation of ``metric`` (``none``: not tracked): its value and the step
    it came after. ``value``/``step`` are None until an evaluation produced the metric."""

    metric: str
    value: float | None = None
    step: int | None = None
    recorded: str | None = None  # the metric of the kept record (differs from metric only under "none")

    def improves(self, metrics: dict) -> float | None:
        """The value of this evaluation when it beats the best so far (the first one always
        does), else None."""
        if self.metric == "none":
            return None
        value = inloop_value(self.metric, metrics)
        if value is None or not math.isfinite(value):
            return None
        if self.value is None or (value < self.value if INLOOP_METRICS[self.metric] == "minimize" else value > self.value):
            return value
        return None

    def record(self, value: float, step: int) -> None:
        self.value, self.step, self.recorded = float(value), int(step), self.metric

    def status(self) -> dict:
        """``{"best": {...}}`` for status.json, or {} before the first best."""
        if self.value is None:
            return {}
        return {"best": {"checkpoint": f"checkpoints/{BEST_FILE}", "metric": self.recorded or self.metric,
                         "value": self.value, "step": self.step}}

    @classmethod
    def resume(cls, run_dir: Path, metric: str, start: int, warn: Callable[[str], None] = lambda m: None) -> "BestSoFar":
        """The best so far of a run resumed from step ``start``, read back from its best.pt.

        A best.pt written after the checkpoint (the run was stopped between an evaluation and
        its next checkpoint) is kept: it was evaluated, and the steps trained again reproduce it
        (on the CPU bit for bit; a replaced best must beat it). One chosen by another metric (the
        resume changed ``--best-metric``) is removed: the next evaluation writes a new one."""
        best = cls(metric)
        path = Path(run_dir) / "checkpoints" / BEST_FILE
        if not path.is_file():
            return best
        try:
            rec = read_checkpoint(path).get("best") or {}
            value, step, was = float(rec["value"]), int(rec["step"]), str(rec["metric"])
        except UnsafeCheckpoint:
            raise  # never passed over: a file planted to run code is the user's to see
        except (GanlabError, KeyError, TypeError, ValueError):
            warn(f"{path} is unreadable; removed it, the next evaluation writes a new one")
            path.unlink(missing_ok=True)
            return best
        if metric != "none" and was != metric:
            warn(f"removed {path} (chosen by {was}, not --best-metric {metric}); the next evaluation writes a new one")
            path.unlink(missing_ok=True)
            return best
        best.value, best.step, best.recorded = value, step, was
        return best


# Disk: what a run keeps -----------------------------------------------------------------------------
_ZIP_PER_STORAGE = 182  # a tensor's zip entry: local header, alignment to 64 bytes, central directory
_PICKLE_PER_TENSOR = 132  # a tensor's reference in data.pkl (its key, shape, strides, storage)
_RNG_BYTES = 3 * 5056  # the CPU, trick and data-order generators' states (numpy's and Python's are in _FIXED)
_FIXED = 4_000  # the configuration, the format tag, the RNG lists, the zip's own records
_FIXED_WEIGHTS = 1_800  # the same for a weights-only file (no RNG states)


def checkpoint_bytes(cfg: TrainConfig) -> tuple[int, int]:
    """(bytes of one full step checkpoint, bytes of one weights-only file) of a run of ``cfg``,
    counted from its networks built on the meta device (no memory is allocated): G and D
    (parameters and buffers), Adam's two moments and step per parameter of each, and one more
    copy of G per copy a trick keeps (a moving average), plus the format's overhead per tensor
    (measured: within 1% of real files). A trick's own state beyond copies of G (the image
    pool's images) is not counted."""
    from ganlab.losses import L1_ONLY
    from ganlab.train.build import build_networks, build_stack

    stack = build_stack(cfg)
    with torch.device("meta"):
        _, G, D = build_networks(cfg, stack, with_d=cfg.gan_mode != L1_ONLY, backbone=False)
    copies = sum(t.g_copies() for t in stack.tricks)

    def tensors(sd: dict) -> tuple[int, int]:
        return sum(t.numel() * t.element_size() for t in sd.values()), len(sd)

    g_bytes, g_n = tensors(G.state_dict())
    d_bytes, d_n = tensors(D.state_dict()) if D is not None else (0, 0)
    params = [p for net in (G, D) if net is not None for p in net.parameters()]
    adam_bytes = sum(2 * p.numel() * p.element_size() + 4 for p in params)  # exp_avg, exp_avg_sq, a float32 step
    adam_n = 3 * len(params)
    storages = g_n * (1 + copies) + d_n + adam_n + 3
    references = storages + g_n * copies  # a moving average is referenced twice (G_ema, its trick's state)
    full = (g_bytes * (1 + copies) + d_bytes + adam_bytes + _RNG_BYTES + _ZIP_PER_STORAGE * storages
            + _PICKLE_PER_TENSOR * references + _FIXED)
    weights = (1 + copies) * (g_bytes + (_ZIP_PER_STORAGE + _PICKLE_PER_TENSOR) * g_n) + _FIXED_WEIGHTS
    return int(full), int(weights)


def _newest_good(run_dir: Path) -> tuple[Path, dict] | None:
    for path in checkpoint_files(run_dir):
        try:
            return path, read_checkpoint(path)
        except UnsafeCheckpoint:
            raise
        except GanlabError:
            continue
    return None


def slim_run(run_dir: Path) -> dict:
    """Keep what a finished run's user needs afterwards and drop its training state.

    Writes ``checkpoints/final.pt`` atomically, weights only (G, and its moving average where a
    trick kept one) from the newest good step checkpoint, then deletes the step checkpoints;
    ``best.pt`` stays. Returns ``{"freed_bytes": int, "kept": [paths]}``, freed_bytes the
    bytes deleted less the bytes written. Calling it again changes nothing (frees 0). A run
    whose status.json is not ``finished`` is refused (GanlabError): a running, stopped or
    killed run keeps its checkpoints so that it can be resumed."""
    run_dir = Path(run_dir)
    try:
        state = json.loads((run_dir / "status.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        state = None
    if state != "finished":
        raise GanlabError(f"{run_dir}: the run is {state or 'not finished (no readable status.json)'}, not finished; "
                          "only a finished run's step checkpoints are dropped (the others keep them to resume)")
    folder = run_dir / "checkpoints"
    final = folder / FINAL_FILE
    freed = 0
    steps = checkpoint_files(run_dir)
    if steps:
        found = _newest_good(run_dir)
        if found is None:
            raise GanlabError(f"{run_dir}: every step checkpoint is unusable; nothing was deleted")
        _, payload = found
        written = atomic_torch_save(final, weights_payload(payload["step"], payload["config"], payload["G"],
                                                           payload.get("G_ema")))
        read_checkpoint(written)  # it opens before anything is deleted
        freed -= written.stat().st_size
        for path in steps:
            freed += path.stat().st_size
            path.unlink()
    elif not final.is_file():
        raise GanlabError(f"{run_dir}: no checkpoint to keep (no step-*.pt and no {FINAL_FILE})")
    for stale in folder.glob(".*.tmp"):  # left by a process killed while writing
        stale.unlink(missing_ok=True)
    kept = [p for p in (final, folder / BEST_FILE) if p.is_file()]
    return {"freed_bytes": freed, "kept": kept}


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
