"""Converting a trusted file of the previous format (``ganlab-checkpoint/1``, whose numpy and
Python RNG states were pickled objects) to the current one, in place, keeping the original
beside it.

Nothing is unpickled that was not first proved plain data: the opcode scan
(:mod:`ganlab.train.checkpoint.scan`) refuses a file that names any global beyond the exact
ones such a file holds, and the file is then loaded with ``weights_only=True`` and only numpy's
array of the RNG state added to what that loader accepts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from ganlab.errors import GanlabError
from ganlab.io import atomic_torch_save
from ganlab.train.checkpoint.format import (BACKUP_SUFFIX, CHECKPOINT_FORMAT, PREVIOUS_FORMAT, UnsafeCheckpoint,
                                            checkpoint_files, not_plain_data)
from ganlab.train.checkpoint.read import read_checkpoint
from ganlab.train.checkpoint.rng import plain_numpy_state, plain_python_state
from ganlab.train.checkpoint.scan import PREVIOUS_FORMAT_GLOBALS, foreign, pickle_globals

__all__ = ["upgrade_checkpoint", "upgrade_payload", "upgrade_targets"]


def _numpy_rng_globals() -> list:
    """numpy's array of the legacy RNG state, for torch's weights-only loader, under the names a
    file written with numpy 1 or numpy 2 gives its rebuild function."""
    reconstruct = np.ndarray.__reduce__(np.zeros(1, dtype=np.uint32))[0]  # numpy's own _reconstruct
    out = [(reconstruct, "numpy.core.multiarray._reconstruct"), (reconstruct, "numpy._core.multiarray._reconstruct"),
           np.ndarray, np.dtype]
    uint32 = type(np.dtype(np.uint32))
    if uint32 is not np.dtype:  # numpy 2: a class per dtype
        out.append((uint32, "numpy.dtypes.UInt32DType"))
    return out


def upgrade_payload(payload: dict) -> dict:
    """A ganlab-checkpoint/1 payload in the current format: its RNG states as plain data."""
    out = dict(payload, format=CHECKPOINT_FORMAT)
    if isinstance(out.get("config"), dict):
        out["config"] = json.loads(json.dumps(out["config"], default=str))
    rng = out.get("rng")
    if isinstance(rng, dict):
        rng = dict(rng)
        if "numpy" in rng and not isinstance(rng["numpy"], dict):
            rng["numpy"] = plain_numpy_state(rng["numpy"])
        if "python" in rng and not isinstance(rng["python"], dict):
            rng["python"] = plain_python_state(rng["python"])
        cuda = rng.get("cuda")
        if isinstance(cuda, (list, tuple)):  # the oldest files: every visible GPU's; the first one trained
            rng["cuda"] = cuda[0] if cuda else None
            if rng["cuda"] is None:
                del rng["cuda"]
        out["rng"] = rng
    return out


def _load_previous(path: Path) -> dict:
    """A ganlab-checkpoint/1 file's payload, loaded as data: GanlabError naming what it holds
    beyond a v1 checkpoint (nothing in it run)."""
    scan = pickle_globals(path)
    if scan is None:
        raise GanlabError(f"checkpoint {path} is corrupt or unreadable; nothing in it was run")
    extra = foreign(scan.globals, PREVIOUS_FORMAT_GLOBALS)
    if extra:
        raise GanlabError(f"checkpoint {path} not converted: it refers to {', '.join(extra[:3])}"
                          f"{', ...' if len(extra) > 3 else ''}, which no ganlab checkpoint holds; nothing in it was run")
    if not scan.tagged or not scan.complete:
        raise GanlabError(f"checkpoint {path} not converted: it is not a {PREVIOUS_FORMAT} file; nothing in it was run")
    try:
        with torch.serialization.safe_globals(_numpy_rng_globals()):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GanlabError(f"checkpoint {path} not converted: it does not load as data ({type(exc).__name__}); "
                          "nothing in it was run") from None
    if not isinstance(payload, dict) or payload.get("format") != PREVIOUS_FORMAT or "G" not in payload:
        raise GanlabError(f"checkpoint {path} not converted: it is not a {PREVIOUS_FORMAT} file")
    return payload


def upgrade_checkpoint(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """Convert one trusted ``ganlab-checkpoint/1`` file to the current format, in place.

    The file is opened only after a look at its opcodes, which runs nothing, shows it holds the
    previous format's tag and names no object beyond those a v1 checkpoint holds, and then as
    data (``weights_only=True`` plus numpy's RNG array). The converted checkpoint replaces the
    file atomically; the original is kept beside it as ``FILE.v1.bak``. Returns (file, backup),
    backup None when the file was already in the current format. GanlabError naming the file
    otherwise."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise GanlabError(f"{path}: no such checkpoint file")
    try:
        read_checkpoint(path)
        return path, None  # already data: nothing to convert
    except UnsafeCheckpoint:
        pass
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    payload = _load_previous(path)
    if backup.exists():
        raise GanlabError(f"checkpoint {path} not converted: {backup} already exists; move it away first")
    payload = upgrade_payload(payload)
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
