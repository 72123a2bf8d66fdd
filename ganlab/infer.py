"""Using a trained generator: loading it from a run folder or checkpoint, and running it on
images of any size (padded to the network's stride and cropped back; for colourisation the
lightness is kept from the input and only a/b come from the network)."""

from __future__ import annotations

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
from ganlab.train.checkpoint import best_checkpoint, checkpoint_files, latest_checkpoint, read_checkpoint
from ganlab.train.checkpoint.read import checkpoint_config, load_weights
from ganlab.train.rundir import is_run_dir

__all__ = ["Loaded", "WHICH", "colorize_array", "direction_of", "input_images", "load_generator", "open_generator", "output_names", "pad_to", "run_generator",
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


def open_generator(path: str | os.PathLike, checkpoint: str = "latest", device="cpu", *, which: str = "latest") -> Loaded:
    """:func:`load_generator` with what the commands print: the file, its step, the best
    evaluation where it is a best.pt."""
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
    else:
        raise UsageError(f"{path}: no such run folder or checkpoint file")
    cfg = checkpoint_config(file, payload)
    try:
        _, G, _ = build_networks(cfg, with_d=False, backbone=False)  # the checkpoint holds the weights
    except (ValueError, RuntimeError, TypeError, KeyError, ZeroDivisionError) as exc:
        raise GanlabError(f"checkpoint {file}: its configuration describes no network ganlab can build "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); use a checkpoint "
                          "written by ganlab train") from None
    key = "G_ema" if checkpoint in ("ema", "auto") and "G_ema" in payload else "G"
    if checkpoint == "ema" and key != "G_ema":
        raise UsageError(f"{path}: this run kept no moving average of G (train with --trick g-ema); use its latest weights (eval: --checkpoint latest, colorize: --weights latest)")
    load_weights(G, payload[key], file, key)
    step = payload.get("step")
    best = payload.get("best") if isinstance(payload.get("best"), dict) else None
    return Loaded(cfg, G.to(device).eval(), Path(file), int(step) if isinstance(step, int) else None, key, best)


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


@torch.no_grad()
def colorize_array(G, rgb: np.ndarray, stride: int, max_side: int, device) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, 3) uint8 with the input's lightness and the network's colours."""
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
            raise UsageError(f"{raw}: no such file or folder")
        files = find_images(p)
        if p.is_file() and not files:
            raise UsageError(f"{raw}: not an image file (jpg, png, webp, tif, bmp, gif)")
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                found.append((f, Path(f.name) if p.is_file() else f.relative_to(p)))
    if not found:
        raise UsageError(f"{' '.join(paths)}: no image files found")
    return found


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
