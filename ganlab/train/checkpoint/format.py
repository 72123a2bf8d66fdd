"""The checkpoint format: its tag, its files' names, what "plain data" means and the checks
every writer and reader applies (a value that ``weights_only`` loading would refuse, a weight
that is not finite)."""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any

import torch

from ganlab.errors import GanlabError

CHECKPOINT_FORMAT = "ganlab-checkpoint/2"
PREVIOUS_FORMAT = "ganlab-checkpoint/1"  # RNG states pickled as numpy arrays and tuples: not loadable as data
KEEP_CHECKPOINTS = 3
BEST_FILE = "best.pt"  # in RUN/checkpoints: the generator of the best evaluation (weights only)
FINAL_FILE = "final.pt"  # in RUN/checkpoints: a slimmed run's last generator (weights only)
WEIGHTS_KIND = "weights"  # the "kind" of a weights-only file; a full checkpoint has none
BACKUP_SUFFIX = ".v1.bak"  # where upgrade_checkpoint keeps the original (not matched by step-*.pt)

PLAIN_DATA = ("tensors, numbers, strings, booleans, None, and lists, tuples and dicts of them")
PLAIN_STATE_ADVICE = (f"a checkpoint holds only {PLAIN_DATA} and is loaded with torch.load(..., weights_only=True): "
                      "store the object's tensors and numbers (e.g. its own state_dict()) and rebuild it in load_state_dict()")

__all__ = ["BACKUP_SUFFIX", "BEST_FILE", "CHECKPOINT_FORMAT", "FINAL_FILE", "KEEP_CHECKPOINTS", "PLAIN_DATA",
           "PLAIN_STATE_ADVICE", "PREVIOUS_FORMAT", "WEIGHTS_KIND", "UnsafeCheckpoint", "checkpoint_files",
           "first_nonfinite_weight", "not_plain_data", "upgrade_command", "weights_payload"]


class UnsafeCheckpoint(GanlabError):
    """A file that only loads by unpickling arbitrary objects: refused, and nothing in it ran.
    Never passed over for an older checkpoint: a file planted to run code is the user's to see."""


def upgrade_command(path: str | os.PathLike) -> str:
    return f"ganlab checkpoint upgrade {path} --i-trust-this-file"


def checkpoint_files(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, newest first."""
    return sorted((Path(run_dir) / "checkpoints").glob("step-*.pt"), reverse=True)


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


def first_nonfinite_weight(payload: dict) -> str | None:
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
