"""The memory ``ganlab colorize`` takes on a large picture: the peak resident memory's growth
while one 30-megapixel picture (already decoded) is colourised, in strips of rows (as colorize
does above ``ganlab.infer.STRIP_PIXELS``) and, for comparison, as one whole-picture tensor.

    OMP_NUM_THREADS=1 python benchmarks/colorize_memory.py strips
    OMP_NUM_THREADS=1 python benchmarks/colorize_memory.py whole

Each mode in its own process (the peak resident size only grows). A tiny random generator: the
network sees at most --max-side 1024, so its size hardly matters; the full-size float copies do.
"""

from __future__ import annotations

import argparse
import resource

import numpy as np

import ganlab.infer as infer
from ganlab.config import TrainConfig
from ganlab.nets import generator_stride
from ganlab.train.build import build_networks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("strips", "whole"))
    parser.add_argument("--height", type=int, default=5000)
    parser.add_argument("--width", type=int, default=6000)
    args = parser.parse_args()
    _, G, _ = build_networks(TrainConfig(size=32, ngf=4, ndf=4), with_d=False, backbone=False)
    G.eval()
    h, w = args.height, args.width
    rgb = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    if args.mode == "whole":
        infer.STRIP_PIXELS = 10**12
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    infer.colorize_array(G, rgb, generator_stride(G), 1024, "cpu")
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    print(f"{args.mode}: peak grew {grown / 2**20:.0f} MiB for {h * w / 1e6:.0f} MP = {grown / (h * w):.1f} bytes a pixel "
          "beyond the decoded picture")


if __name__ == "__main__":
    main()
