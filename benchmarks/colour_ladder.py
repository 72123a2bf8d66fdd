"""How every image metric ranks a ladder of colour errors: does it see what a person sees?

A colouriser's quality objective must rank the true colours best and every *mild* error above
every *severe* one. From the real photographs (centre crops, Lab), the ladder makes:

    true        the photographs themselves
    cast+5      a and b both + 5 (a slight colour cast)                         mild
    sat0.8      a, b x 0.8 (slightly washed out)                                mild
    cast+10     a and b both + 10                                               (between)
    sat0.5      a, b x 0.5                                                      (between)
    tint        every pixel's (a, b) = the set's mean (a, b): one brownish hue  severe
    sat0.3      a, b x 0.3                                                      severe
    grey        a = b = 0                                                       severe

(L is kept; Lab -> RGB, clipped, rounded to uint8, as every metric expects.) Each metric then
compares each variant with the real photographs exactly as the training loop's evaluation does
(``ganlab.metrics.inloop_metrics``, same seed), and the table shows its value and rank, and
whether it orders the ladder: true best, every mild error better than every severe one.

    python benchmarks/colour_ladder.py --split val --size 64
    python benchmarks/colour_ladder.py --split test --size 128 --n 50 --markdown out.md

``--data DIR`` reads another folder of photographs (default: BSDS500 ``SPLIT`` under
``--bsds``); ``--n N`` takes the first N files (in name order) for speed.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

MILD = ("cast+5", "sat0.8")
SEVERE = ("tint", "sat0.3", "grey")
VARIANTS = ("true", "cast+5", "sat0.8", "cast+10", "sat0.5", "tint", "sat0.3", "grey")
BSDS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "bsds500"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def load_crops(folder: Path, size: int, n: int | None) -> torch.Tensor:
    """Centre crops (uint8 RGB ``(N, 3, size, size)``) of the images in ``folder``, in name order,
    the short side first resized to ``size * 286 / 256`` (ganlab's validation crops)."""
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[: n or None]
    if not files:
        raise SystemExit(f"error: no images in {folder}; give --data DIR or --bsds DIR")
    load = round(size * 286 / 256)
    out = []
    for f in files:
        try:
            im = Image.open(f)
            im.load()
        except OSError as exc:
            raise SystemExit(f"error: {f}: not a readable image ({exc}); remove it or give another --data") from None
        with im:
            im = im.convert("RGB")
            w, h = im.size
            s = load / min(w, h)
            im = im.resize((max(load, round(w * s)), max(load, round(h * s))), Image.BICUBIC)
            w, h = im.size
            left, top = (w - size) // 2, (h - size) // 2
            out.append(np.asarray(im.crop((left, top, left + size, top + size))))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def ladder(real: torch.Tensor) -> dict[str, torch.Tensor]:
    """The variants of :data:`VARIANTS` made from ``real`` (uint8 RGB)."""
    from ganlab.color import lab_to_rgb, rgb_to_lab, to_uint8

    lab = rgb_to_lab(real.float() / 255.0)
    mean_ab = lab[:, 1:].mean(dim=(0, 2, 3), keepdim=True)

    def with_ab(ab: torch.Tensor) -> torch.Tensor:
        return to_uint8(lab_to_rgb(torch.cat((lab[:, :1], ab.expand_as(lab[:, 1:])), dim=1)))

    ab = lab[:, 1:]
    return {
        "true": real.clone(),
        "cast+5": with_ab(ab + 5.0),
        "sat0.8": with_ab(ab * 0.8),
        "cast+10": with_ab(ab + 10.0),
        "sat0.5": with_ab(ab * 0.5),
        "tint": with_ab(mean_ab),
        "sat0.3": with_ab(ab * 0.3),
        "grey": with_ab(torch.zeros_like(ab)),
    }


def measure(real: torch.Tensor, seed: int = 0) -> dict[str, dict[str, float]]:
    """{metric: {variant: value}} for every in-loop metric, turned so that lower is better
    (PSNR and SSIM negated, the colourfulness gap as its absolute value)."""
    from ganlab.metrics.inloop import inloop_metrics
    from ganlab.metrics.color_hist import color_histogram_distance

    table: dict[str, dict[str, float]] = {}
    for name, fake in ladder(real).items():
        m = inloop_metrics(real, fake, seed=seed)
        m["val/color_hist_js"] = color_histogram_distance(real, fake, kind="js")
        for key, v in m.items():
            if key in ("val/psnr", "val/ssim"):
                v = -v
            elif key == "val/colorfulness_gap":
                v = abs(v)
            table.setdefault(key, {})[name] = float(v)
    return table


def orders_the_ladder(values: dict[str, float]) -> bool:
    """True best (strictly), and every mild variant strictly better than every severe one."""
    others = [values[v] for v in VARIANTS if v != "true"]
    return values["true"] < min(others) and max(values[m] for m in MILD) < min(values[s] for s in SEVERE)


def _fmt(v: float) -> str:
    if math.isinf(v) or abs(v) >= 1000:
        return f"{v:.0f}" if not math.isinf(v) else str(v)
    return f"{v:.3g}" if abs(v) >= 1 else f"{v:.3f}"


def markdown(table: dict[str, dict[str, float]], title: str) -> str:
    lines = [f"**{title}** (lower is better; PSNR and SSIM negated; the rank in brackets)", "",
             "| metric | " + " | ".join(VARIANTS) + " | orders the ladder |",
             "|---|" + "---:|" * len(VARIANTS) + "---|"]
    for key, values in table.items():
        order = sorted(VARIANTS, key=lambda v: values[v])
        cells = [f"{_fmt(values[v])} ({order.index(v) + 1})" for v in VARIANTS]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {'yes' if orders_the_ladder(values) else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="val", help="BSDS500 split: train, val or test (default val)")
    ap.add_argument("--bsds", type=Path, default=BSDS, help=f"BSDS500 folder (default {BSDS})")
    ap.add_argument("--data", type=Path, help="a folder of photographs instead of a BSDS500 split")
    ap.add_argument("--size", type=int, nargs="+", default=[64, 128], help="crop sizes (default 64 128)")
    ap.add_argument("--n", type=int, default=None, help="the first N images only (default all)")
    ap.add_argument("--seed", type=int, default=0, help="the metrics' seed (default 0)")
    ap.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = ap.parse_args(argv)
    folder = args.data or args.bsds / args.split
    if not folder.is_dir():
        print(f"error: {folder} is not a folder; give --data DIR or --bsds DIR", file=sys.stderr)
        return 2
    if args.n is not None and args.n < 1:
        print("error: --n must be a positive number of images", file=sys.stderr)
        return 2
    if any(s < 16 or s % 16 for s in args.size):
        print("error: --size must be multiples of 16 (the SWD pyramid goes down to 16 px)", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    out = []
    for size in args.size:
        real = load_crops(folder, size, args.n)
        title = f"{folder.name if args.data else 'BSDS500 ' + args.split}, {real.shape[0]} photos, {size} px"
        text = markdown(measure(real, args.seed), title)
        print(text + "\n", flush=True)
        out.append(text)
    if args.markdown:
        args.markdown.write_text("\n\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
