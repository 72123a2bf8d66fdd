"""Slimming a finished run: keep the generator a user needs afterwards (``final.pt``, weights
only, beside ``best.pt``) and drop the step checkpoints' training state."""

from __future__ import annotations

import json
from pathlib import Path

from ganlab.errors import GanlabError
from ganlab.io import atomic_torch_save
from ganlab.train.checkpoint.format import BEST_FILE, FINAL_FILE, UnsafeCheckpoint, checkpoint_files, weights_payload
from ganlab.train.checkpoint.read import read_checkpoint

__all__ = ["slim_run"]


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
