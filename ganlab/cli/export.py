"""``ganlab export RUN_OR_CHECKPOINT --out FILE``: a trained generator as a self-contained model.

The file needs no ganlab to run: a TorchScript file loads with torch alone
(``torch.jit.load``), an ONNX file (``--format onnx`` or an --out ending in .onnx; needs the
onnx package: pip install 'ganlab[export]') runs in any ONNX runtime.

It takes a uint8 batch of any size and returns uint8 RGB of the same size. A colourisation
model takes (N, 3, H, W) RGB or (N, 1, H, W) grey and returns (N, 3, H, W) RGB with the
input's lightness and the network's colours: the Lab conversion, the padding to the network's
stride, the crop back and (for a long side over --max-side) the shrunken copy the network sees
are inside the graph, as ganlab colorize does them. A paired model maps (N, 3, H, W) RGB of its
source domain to its target domain, in the run's direction.

The file says the run, step, weights, task, direction and ganlab version: in TorchScript the
extra file ganlab.json (torch.jit.load(path, _extra_files={"ganlab.json": ""})), in ONNX its
metadata_props. Before the file is written, the exported model is checked against ganlab
colorize on an odd-sized test image (at most 1 level of 255 apart).

Example (Python, torch only):
  model = torch.jit.load("colorizer.pt")
  rgb = model(torch.from_numpy(np.asarray(Image.open("old.jpg").convert("RGB"))).permute(2, 0, 1)[None])
"""

from __future__ import annotations

import argparse

from rich.console import Console

DESCRIPTION = __doc__

# The named weights --checkpoint takes (any other value is a checkpoint file); ganlab.infer's
# load_generator resolves each.
CHECKPOINTS = ("auto", "latest", "ema", "best")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="a run folder (its newest good checkpoint) or a checkpoint file")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write (model.pt, or model.onnx for ONNX)")
    p.add_argument("--checkpoint", default="auto", metavar="|".join(CHECKPOINTS) + "|FILE",
                   help="auto (default): the moving average of G where the run kept one (--trick g-ema), else G; "
                        "latest: G of the newest checkpoint; ema: the moving average; best: the generator of the "
                        "run's best evaluation (checkpoints/best.pt, see --best-metric); or a checkpoint file")
    p.add_argument("--format", dest="fmt", choices=("torchscript", "onnx"), default=None,
                   help="default: onnx for an --out ending in .onnx, else torchscript")
    p.add_argument("--overwrite", action="store_true", help="replace --out if the file exists (default: refuse)")
    p.add_argument("--max-side", type=int, default=1024,
                   help="colourisation: the long side the network sees at most, as ganlab colorize (default 1024); 0: no limit")


def run(args: argparse.Namespace) -> int:
    from ganlab.export import export_model  # the networks and exporters load when the command runs

    console = Console(stderr=True, soft_wrap=True)
    result = export_model(args.source, args.out, checkpoint=args.checkpoint, fmt=args.fmt, max_side=args.max_side,
                          overwrite=args.overwrite)
    meta = result.metadata
    if result.max_diff is not None:
        check = f"; matches ganlab colorize within {result.max_diff}/255 on a test image"
    else:  # only ONNX without onnxruntime: the file was written without running it
        check = "; not checked against ganlab colorize (onnxruntime is not installed: pip install onnxruntime)"
    weights = "the moving average of G" if meta["weights"] == "G_ema" else "G"
    console.print(f"exported {meta['task']} model of run {meta['run']} (step {meta['step']}, {weights}, "
                  f"{meta['direction']}) as {result.format}: {result.path}{check}", highlight=False)
    console.print(f"input {meta['input']}; output {meta['output']}", highlight=False)
    return 0
