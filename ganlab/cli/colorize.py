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

from PIL import Image
from rich.console import Console

from ganlab.errors import UsageError
from ganlab.devices import DEVICE_HELP

DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a run folder (its latest good checkpoint, or see --checkpoint) or a checkpoint file")
    p.add_argument("inputs", metavar="INPUT", nargs="+", help="image files or folders (greyscale or colour; for a paired run: single images of its source domain)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs")
    p.add_argument("--weights", choices=("auto", "latest", "ema"), default="auto",
                   help="auto: the moving average of G when the run kept one, else G")
    p.add_argument("--checkpoint", dest="which", choices=("latest", "best"), default="latest",
                   help="which file of a run folder: latest (its newest good checkpoint, default) or best "
                        "(checkpoints/best.pt, the evaluation with the best --best-metric value)")
    p.add_argument("--max-side", type=int, default=1024, help="long side the network sees at most (default 1024); 0: no limit")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def run(args: argparse.Namespace) -> int:
    # the networks and image code load when the command runs, not for --help
    from ganlab.data.images import BadImage, decode
    from ganlab.infer import colorize_array, direction_of, input_images, open_generator, output_names, overwritten_input, translate_array
    from ganlab.io import atomic_write
    from ganlab.nets import generator_stride
    from ganlab.runtime import resolve_runtime

    console = Console(stderr=True, soft_wrap=True)
    if args.max_side < 0:
        raise UsageError(f"--max-side {args.max_side}: must be 0 (no limit) or a positive number of pixels")
    device = resolve_runtime(args.device, "fp32", cudnn_benchmark="off").device  # photos differ in size
    files = input_images(args.inputs)
    names = output_names([rel for _, rel in files])
    out = Path(args.out).expanduser()
    clash = overwritten_input(out, files, names)
    if clash is not None:
        raise UsageError(f"--out {args.out}: the output {clash[1]} would replace the input {clash[0]}; "
                         "choose an --out folder that holds none of the inputs")
    loaded = open_generator(args.checkpoint, args.weights, device, which=args.which)  # auto: the moving average where kept
    cfg, G = loaded.cfg, loaded.G
    stride = generator_stride(G)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot create the folder ({exc.strerror})") from None
    console.print(f"generator: {loaded.describe()}", highlight=False, markup=False, soft_wrap=True)
    done, skipped = 0, 0
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
    how = "" if cfg.task == "colorize" else " ({} -> {})".format(*direction_of(cfg))
    console.print(f"{verb} {done} image(s){how} into {out}" + (f" ({skipped} skipped)" if skipped else ""), highlight=False)
    return 0 if done else 1
