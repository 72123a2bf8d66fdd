"""``ganlab eval RUN_DIR``: every available image-quality metric and the instability score of a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from ganlab.metrics.formula import FORMULA

FID_FEATURES_HELP = (
    "a TorchScript feature network (uint8 RGB N x 3 x H x W -> float N x D) used instead of Inception for FID "
    "and KID; its numbers carry the file's sha256 and do not compare with Inception FIDs. A TorchScript file "
    "is a program: ganlab runs the network inside it, so only use files you trust"
)
from ganlab.devices import DEVICE_HELP

DESCRIPTION = f"""\
Compute the image-quality metrics of a run's generator on a fixed validation set, and the
run's instability score, print them as a table and write RUN_DIR/metrics.json.

Metrics (all on uint8 RGB after Lab -> RGB; each with its sample count N):
  FID, KID      Inception-v3 pool3 features (pytorch-fid's network and FID weights); real
                features cached per validation set. Needs the weights file (see below).
  SWD           sliced Wasserstein distance on Laplacian-pyramid patches (x1e3), weight-free
  ab-hist       sliced W1 distance between the a/b colour histograms (Lab units), weight-free
  PSNR, SSIM, UIQI, ab-L1, colourfulness (Hasler-Suesstrunk, real vs generated)
  LPIPS         AlexNet v0.1, where its weights are present

Inception weights: --inception-weights PATH, $GANLAB_INCEPTION_WEIGHTS, or the torch hub
cache (downloaded on first use where there is internet), checked by checksum. Without them
FID and KID are listed as unavailable and everything else is still computed.

--fid-features FILE: a TorchScript feature network (uint8 RGB (N, 3, H, W) -> float (N, D))
used instead of Inception for FID and KID, e.g. to compare runs at equal N where Inception's
weights are absent. Its numbers carry the file's SHA-256 and never compare with Inception
FIDs. A TorchScript file is a program: ganlab runs the network inside it, so only use files
you trust.

Instability score (from RUN_DIR/stats.jsonl):
{FORMULA}"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by 'ganlab train', or a checkpoint file in one (= RUN --checkpoint FILE)")
    parser.add_argument("--data", metavar="VAL_DIR", default=None, help="validation images (default: the run's validation split)")
    parser.add_argument(
        "--checkpoint",
        default="latest",
        metavar="latest|best|ema|PATH",
        help="the generator to evaluate: the newest checkpoint's G; best: checkpoints/best.pt, the evaluation with the "
             "best --best-metric value (its moving average of G where kept, as it was evaluated); the newest "
             "checkpoint's moving average of G; or a checkpoint file",
    )
    parser.add_argument("--n", type=int, default=None, metavar="N", help="evaluate on the first N validation images (default: all)")
    parser.add_argument("--inception-weights", metavar="PATH", default=None, help="the FID Inception weights file")
    parser.add_argument("--fid-features", metavar="FILE", default=None, help=FID_FEATURES_HELP)
    parser.add_argument("--no-download", action="store_true", help="never try to download missing weights")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.add_argument("--seed", type=int, default=None, help="seed of SWD patches and KID subsets (default: the run's seed)")
    parser.add_argument("--no-cache", action="store_true", help="recompute the real-image features")


def run(args) -> int:
    import dataclasses

    from ganlab.evaluate import EvalOptions, evaluate_run, json_safe, print_table  # the metrics load when the command runs
    from ganlab.io import atomic_write_json

    result = evaluate_run(EvalOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(EvalOptions)}))
    out_dir = Path(result["run"])
    print_table(result)
    path = atomic_write_json(out_dir / "metrics.json", json_safe(result))
    Console(stderr=True).print(f"wrote {path}", highlight=False)
    return 0
