"""Using a trained generator: loading it from a run folder or checkpoint, and running it on
images of any size (padded to the network's stride and cropped back; for colourisation the
lightness is kept from the input and only a/b come from the network)."""

from __future__ import annotations

import errno
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganlab.color import AB_SCALE, L_SCALE, lab_to_rgb, rgb_to_lab, to_uint8
from ganlab.config import TrainConfig
from ganlab.data.images import find_images
from ganlab.errors import GanlabError, UsageError
from ganlab.train.build import build_networks
from ganlab.train.checkpoint import UnsafeCheckpoint, best_checkpoint, checkpoint_files, latest_checkpoint, read_checkpoint
from ganlab.train.checkpoint.read import checkpoint_config, load_weights
from ganlab.train.rundir import is_run_dir

__all__ = ["Loaded", "WHICH", "colorize_array", "direction_of", "input_images", "load_generator", "open_generator", "output_names", "overwritten_input", "pad_to", "run_generator",
           "translate_array"]


@dataclass(frozen=True)
class Loaded:
    """A generator ready to use and where it came from (for the commands to say)."""

    cfg: TrainConfig
    G: nn.Module
    file: Path  # the checkpoint file read
    step: int | None  # the steps trained when it was written
    weights: str  # "G" or "G_ema"
    best: dict | None  # {"metric", "value", "step"} when the file is a best.pt

    def describe(self) -> str:
        """``checkpoints/best.pt (step 400, val/swd 31.2, the moving average of G)``."""
        where = f"checkpoints/{self.file.name}" if self.file.parent.name == "checkpoints" else str(self.file)
        parts = [f"step {self.step}"] if self.step is not None else []
        if self.best:
            parts.append(f"{self.best.get('metric')} {float(self.best.get('value')):.4g}, the best evaluation")
        parts.append("the moving average of G" if self.weights == "G_ema" else "G")
        return f"{where} ({', '.join(parts)})"


WHICH = ("latest", "best")


def open_generator(path: str | os.PathLike, checkpoint: str = "latest", device="cpu", *, which: str = "latest",
                   allow_nonfinite: bool = False) -> Loaded:
    """:func:`load_generator` with what the commands print: the file, its step, the best
    evaluation where it is a best.pt. A run folder's newest checkpoint whose generator holds NaN
    or Inf is passed over (one warning) for the newest good one; a file named explicitly, or
    best.pt, is refused, unless ``allow_nonfinite`` (``ganlab eval``, which reports a diverged
    generator's image metrics as unavailable, with the reason)."""
    if which not in WHICH:
        raise UsageError(f"--checkpoint {which}: choose latest or best (a run folder's newest or best generator)")
    p = Path(path).expanduser()
    warn = lambda m: warnings.warn(m, stacklevel=3)  # noqa: E731
    if checkpoint not in ("latest", "ema", "auto"):
        ckpt_path = Path(checkpoint).expanduser()
        if not ckpt_path.is_file():
            raise UsageError(f"--checkpoint {checkpoint}: no such file; give latest, best, ema or a checkpoint file")
        file, payload = ckpt_path, read_checkpoint(ckpt_path)
    elif p.is_file():
        if which == "best":
            raise UsageError(f"{path}: --checkpoint best picks a run folder's best.pt; give the run folder, not a file")
        file, payload = p, read_checkpoint(p)
    elif p.is_dir():
        if not is_run_dir(p) and not checkpoint_files(p):
            raise UsageError(f"{path}: not a ganlab run folder (no config.json); give a run folder or a checkpoint file")
        if which == "best":
            file, payload = best_checkpoint(p)
        else:
            file, payload = latest_checkpoint(p, warn, advice="there is no generator to use")
            file, payload = _newest_finite(p, file, payload, checkpoint, warn)
    else:
        raise UsageError(f"{path}: no such run folder or checkpoint file")
    key = _weights_key(payload, checkpoint)
    bad = None if allow_nonfinite else nonfinite_tensor(payload.get(key))
    if bad is not None:  # an explicit file, or best.pt: the user named it, so it is refused, not replaced
        raise GanlabError(f"checkpoint {file} holds NaN or Inf weights ({key}.{bad}): its generator would give black "
                          "images; use an earlier checkpoint of the run (or the run folder: its newest good one)")
    cfg = checkpoint_config(file, payload)
    try:
        _, G, _ = build_networks(cfg, with_d=False, backbone=False)  # the checkpoint holds the weights
    except (ValueError, RuntimeError, TypeError, KeyError, ZeroDivisionError) as exc:
        raise GanlabError(f"checkpoint {file}: its configuration describes no network ganlab can build "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); use a checkpoint "
                          "written by ganlab train") from None
    if checkpoint == "ema" and key != "G_ema":
        raise UsageError(f"{path}: this run kept no moving average of G (train with --trick g-ema); use its latest weights (eval: --checkpoint latest, colorize: --weights latest)")
    load_weights(G, payload[key], file, key)
    step = payload.get("step")
    best = payload.get("best") if isinstance(payload.get("best"), dict) else None
    return Loaded(cfg, G.to(device).eval(), Path(file), int(step) if isinstance(step, int) else None, key, best)


def nonfinite_tensor(state) -> str | None:
    """The name of the first floating-point tensor of a state dict holding NaN or Inf, or None."""
    for name, t in (state or {}).items() if isinstance(state, dict) else ():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            return str(name)
    return None


def _weights_key(payload: dict, checkpoint: str) -> str:
    return "G_ema" if checkpoint in ("ema", "auto") and "G_ema" in payload else "G"


def _newest_finite(run_dir: Path, file: Path, payload: dict, checkpoint: str, warn) -> tuple[Path, dict]:
    """The newest checkpoint of a run, from ``file`` down, whose generator is finite: a
    diverged newest checkpoint is reported and passed over, as a damaged one is."""
    files = checkpoint_files(run_dir)
    older = files[files.index(file) + 1:] if file in files else []
    while (bad := nonfinite_tensor(payload.get(_weights_key(payload, checkpoint)))) is not None:
        warn(f"checkpoint {file} holds NaN or Inf weights ({bad}); falling back to the previous checkpoint")
        while older:
            file = older.pop(0)
            try:
                payload = read_checkpoint(file)
                break
            except UnsafeCheckpoint:
                raise
            except GanlabError as exc:
                warn(f"{exc}; falling back to the previous checkpoint")
        else:
            raise GanlabError(f"{run_dir}: every checkpoint holds NaN or Inf weights or is unusable (the run diverged "
                              "before its first good checkpoint); there is no generator to use")
    return file, payload


def load_generator(path: str | os.PathLike, checkpoint: str = "latest", device="cpu", *,
                   which: str = "latest") -> tuple[TrainConfig, nn.Module]:
    """The generator of a run folder or checkpoint file, in eval mode.

    ``checkpoint``: ``latest`` (G), ``ema`` (the moving average of G, where a trick kept one),
    ``auto`` (the moving average where there is one, else G) or the path of a checkpoint file.
    ``which`` picks the file of a run folder: ``latest`` its newest good step checkpoint (or
    ``final.pt`` once its step checkpoints were dropped), ``best`` its ``best.pt`` (the
    generator of the evaluation with the best ``--best-metric`` value).
    """
    loaded = open_generator(path, checkpoint, device, which=which)
    return loaded.cfg, loaded.G


def pad_to(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


@torch.no_grad()
def run_generator(G, x: torch.Tensor, stride: int) -> torch.Tensor:
    padded, h, w = pad_to(x, stride)
    return G(padded)[..., :h, :w]


# Above this many pixels colorize works on strips of rows of the full-size picture: its memory is
# then the input (3 bytes a pixel), the lightness (4) and the output (3), one strip's floats and
# the shrinking's buffers: measured 17-19 bytes a pixel beyond the input on a 30 MP picture (benchmarks/colorize_memory.py), where
# the whole picture's float copies at once took 134 (the peak resident memory's growth).
STRIP_PIXELS = 4_000_000


@torch.no_grad()
def colorize_array(G, rgb: np.ndarray, stride: int, max_side: int, device) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, 3) uint8 with the input's lightness and the network's colours."""
    h, w = rgb.shape[:2]
    if h * w > STRIP_PIXELS:
        return _colorize_in_strips(G, rgb, stride, max_side, device)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device).float() / 255.0
    lab = rgb_to_lab(x)
    L = lab[:, :1]
    L_in = L
    h, w = L.shape[-2:]
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        L_in = F.interpolate(L, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear", align_corners=False, antialias=True)
    ab = run_generator(G, L_in / L_SCALE - 1.0, stride).float() * AB_SCALE
    if ab.shape[-2:] != (h, w):
        ab = F.interpolate(ab, size=(h, w), mode="bilinear", align_corners=False)
    out = lab_to_rgb(torch.cat((L, ab), 1))
    return to_uint8(out)[0].permute(1, 2, 0).cpu().numpy()


def _strip_rows(w: int) -> int:
    return max(1, STRIP_PIXELS // max(1, w) // 4)


def _bilinear_rows(src: torch.Tensor, h: int, w: int, y0: int, y1: int) -> torch.Tensor:
    """Rows ``y0:y1`` of ``F.interpolate(src, (h, w), mode="bilinear", align_corners=False)``
    without making the whole (h, w) result (the same source positions and weights)."""

    def axis(n_out: int, n_in: int, start: int, stop: int):
        pos = ((torch.arange(start, stop, device=src.device, dtype=torch.float32) + 0.5) * (n_in / n_out) - 0.5).clamp_min(0.0)
        i0 = pos.floor().long().clamp(max=n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        return i0, i1, pos - i0

    r0, r1, ty = axis(h, src.shape[-2], y0, y1)
    c0, c1, tx = axis(w, src.shape[-1], 0, w)
    rows = src[..., r0, :] * (1 - ty)[:, None] + src[..., r1, :] * ty[:, None]
    return rows[..., c0] * (1 - tx) + rows[..., c1] * tx


def _colorize_in_strips(G, rgb: np.ndarray, stride: int, max_side: int, device) -> np.ndarray:
    """:func:`colorize_array` for a large picture, strip by strip of rows (the network still sees
    the whole picture, shrunk to ``max_side``)."""
    h, w = rgb.shape[:2]
    rows = _strip_rows(w)
    L = torch.empty((1, 1, h, w), dtype=torch.float32, device=device)
    for y in range(0, h, rows):
        x = torch.from_numpy(rgb[y:y + rows]).permute(2, 0, 1)[None].to(device).float() / 255.0
        L[..., y:y + rows, :] = rgb_to_lab(x)[:, :1]
    L_in = L
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        L_in = F.interpolate(L, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear", align_corners=False, antialias=True)
    ab = run_generator(G, L_in / L_SCALE - 1.0, stride).float() * AB_SCALE
    del L_in
    out = np.empty((h, w, 3), dtype=np.uint8)
    for y in range(0, h, rows):
        y1 = min(h, y + rows)
        ab_rows = ab[..., y:y1, :] if ab.shape[-2:] == (h, w) else _bilinear_rows(ab, h, w, y, y1)
        part = lab_to_rgb(torch.cat((L[..., y:y1, :], ab_rows), 1))
        out[y:y1] = to_uint8(part)[0].permute(1, 2, 0).cpu().numpy()
    return out


@torch.no_grad()
def translate_array(G, rgb: np.ndarray, stride: int, device) -> np.ndarray:
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device).float() / 127.5 - 1.0
    y = run_generator(G, x, stride).float()
    return ((y + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).cpu().numpy()


def direction_of(cfg) -> tuple[str, str]:
    """(source, target) domain of a paired run."""
    return ("B", "A") if cfg.direction == "BtoA" else ("A", "B")


def input_images(paths: list[str]) -> list[tuple[Path, Path]]:
    """(file, name relative to its INPUT) for every image under the given files and folders;
    a file reached twice (a folder and a file inside it) is listed once."""
    found = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            try:
                os.stat(p)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise UsageError(f"{raw}: a loop of symbolic links (it never reaches a file); "
                                     "give the file or folder the links were meant to point at") from None
            raise UsageError(f"{raw}: no such file or folder")
        files = find_images(p)
        if p.is_file() and not files:
            raise UsageError(f"{raw}: not an image file (jpg, png, webp, tif, bmp, gif)")
        for f in files:
            key = Path(os.path.realpath(f))  # a link loop among the files stays a path (decode skips it)
            if key not in seen:
                seen.add(key)
                found.append((f, Path(f.name) if p.is_file() else f.relative_to(p)))
    if not found:
        raise UsageError(f"{' '.join(paths)}: no image files found")
    return found


def overwritten_input(out: Path, files: list[tuple[Path, Path]], names: list[tuple[Path, Path | None]]) -> tuple[Path, Path] | None:
    """The first (input, output) pair where writing the outputs under ``out`` would replace an
    input file (the same file, reached through any links), or None. Checked before any work:
    ``--out .`` beside ``old.png``, or ``--out photos`` on the folder ``photos``, would
    otherwise put every PNG's colourised version in its place."""
    inputs = {os.path.normcase(os.path.realpath(f)): f for f, _ in files}
    for rel, _ in names:
        target = out / rel
        hit = inputs.get(os.path.normcase(os.path.realpath(target)))
        if hit is not None:
            return hit, target
    return None


def output_names(rels: list[Path]) -> list[tuple[Path, Path | None]]:
    """The output name (relative to --out) of each input, in order, and for an input whose
    natural name ``rel.png`` an earlier input already takes, that natural name (else None).

    The later inputs get ``stem-2.png``, ``stem-3.png``, ...: the smallest suffix that no
    input's natural name and no earlier output uses. Names are compared case-insensitively,
    so that nothing is overwritten on a case-insensitive file system either."""
    natural = [rel.with_suffix(".png") for rel in rels]
    taken = {str(n).casefold() for n in natural}
    used: set[str] = set()
    names: list[tuple[Path, Path | None]] = []
    for nat in natural:
        if str(nat).casefold() not in used:
            used.add(str(nat).casefold())
            names.append((nat, None))
            continue
        k = 2
        while True:
            cand = nat.with_name(f"{nat.stem}-{k}.png")
            key = str(cand).casefold()
            if key not in used and key not in taken:
                break
            k += 1
        used.add(key)
        names.append((cand, nat))
    return names
