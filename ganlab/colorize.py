"""``ganlab colorize CHECKPOINT INPUT... --out DIR``: use a trained model on your own images.

Images are processed at their original size: the network is fully convolutional, so the
input is padded (by reflection) to a multiple of the generator's stride and the output
cropped back. For colourisation the lightness L is kept from the input at full resolution
and only a/b come from the network (computed on a copy whose long side is at most
``--max-side``, then up-sampled).

A paired (A|B translation) model takes each INPUT as one image of its source domain and
translates it in the run's direction: A -> B, or B -> A for a run trained with
--direction BtoA. It does not split a side-by-side A|B file: such a file is translated as
one image (crop the source half first).

PNGs are written under --out, mirroring each folder INPUT's sub-folders
(photos/2019/IMG_0001.jpg -> OUT/2019/IMG_0001.png). Inputs that would land on the same
output (a.jpg and a.png, or two files called a.jpg) are never overwritten: the later ones
are written as a-2.png, a-3.png, ..., with one warning each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganlab.errors import UsageError

DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a run folder (its latest good checkpoint) or a checkpoint file")
    p.add_argument("inputs", metavar="INPUT", nargs="+", help="image files or folders (greyscale or colour; for a paired run: single images of its source domain)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs")
    p.add_argument("--weights", choices=("auto", "latest", "ema"), default="auto",
                   help="auto: the moving average of G when the run kept one, else G")
    p.add_argument("--max-side", type=int, default=1024, help="long side the network sees at most (default 1024); 0: no limit")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _pad_to(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


@torch.no_grad()
def run_generator(G, x: torch.Tensor, stride: int) -> torch.Tensor:
    padded, h, w = _pad_to(x, stride)
    return G(padded)[..., :h, :w]


@torch.no_grad()
def colorize_array(G, rgb: np.ndarray, stride: int, max_side: int, device) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, 3) uint8 with the input's lightness and the network's colours."""
    from ganlab.color import AB_SCALE, L_SCALE, lab_to_rgb, rgb_to_lab, to_uint8

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


def _direction(cfg) -> tuple[str, str]:
    """(source, target) domain of a paired run."""
    return ("B", "A") if cfg.direction == "BtoA" else ("A", "B")


def _inputs(paths: list[str]) -> list[tuple[Path, Path]]:
    """(file, name relative to its INPUT) for every image under the given files and folders;
    a file reached twice (a folder and a file inside it) is listed once."""
    from ganlab.data.images import find_images

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


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from PIL import Image

    from ganlab.data.images import BadImage, decode
    from ganlab.io import atomic_write
    from ganlab.nets import generator_stride
    from ganlab.runtime import resolve_runtime
    from ganlab.trainer import load_generator

    console = Console(stderr=True, soft_wrap=True)
    if args.max_side < 0:
        raise UsageError(f"--max-side {args.max_side}: must be 0 (no limit) or a positive number of pixels")
    device = resolve_runtime(args.device, "fp32", cudnn_benchmark="off").device  # photos differ in size
    files = _inputs(args.inputs)
    cfg, G = load_generator(args.checkpoint, args.weights, device)  # auto: the moving average where kept
    stride = generator_stride(G)
    out = Path(args.out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot create the folder ({exc.strerror})") from None
    done, skipped = 0, 0
    names = output_names([rel for _, rel in files])
    for (path, _), (rel, clash) in zip(files, names):
        try:
            rgb = decode(path)
        except BadImage as exc:
            console.print(f"[yellow]warning:[/] skipped {path}: {exc}", highlight=False)
            skipped += 1
            continue
        if cfg.task == "colorize":
            result = colorize_array(G, rgb, stride, args.max_side, device)
        else:
            result = translate_array(G, rgb, stride, device)
        target = out / rel
        if clash is not None:
            console.print(f"[yellow]warning:[/] {path}: {out / clash} is an earlier input's output; "
                          f"writing {target} instead", highlight=False, soft_wrap=True)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--out {args.out}: cannot create {target.parent} ({exc.strerror})") from None
        try:
            atomic_write(target, lambda fh: Image.fromarray(result).save(fh, format="PNG"))
        except OSError as exc:
            raise UsageError(f"--out {args.out}: cannot write {target.name} ({exc.strerror})") from None
        done += 1
    verb = "colourised" if cfg.task == "colorize" else "translated"
    how = "" if cfg.task == "colorize" else " ({} -> {})".format(*_direction(cfg))
    console.print(f"{verb} {done} image(s){how} into {out}" + (f" ({skipped} skipped)" if skipped else ""), highlight=False)
    return 0 if done else 1
