"""The sort inside the sliced Wasserstein distance: NumPy's against torch's, side by side.

SWD sorts the projections of every patch descriptor onto 128 random directions, 4 times per
pyramid level, for the real and the generated set: at 64 px an in-loop evaluation of 100 images
sorts (128, 12,800) arrays 24 times, ``ganlab eval`` of 200 images (128, 25,600) arrays 48
times. ``ganlab.metrics.swd`` sorts them with NumPy on the CPU (vectorised with AVX-512 or AVX2
where the CPU has them; the values are the same to the last bit). This times both on the same
arrays, alternating, in one process, and prints the median time of each and their ratio.

    OMP_NUM_THREADS=1 python benchmarks/swd_sort.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, numpy {np.__version__}, {args.threads} thread(s)")
    print("| projections sorted | torch.sort ms | numpy sort ms | numpy / torch |")
    print("|---|---|---|---|")
    for images in (100, 200, 400):
        x = torch.randn(128, images * 128, generator=gen)
        t_torch, t_numpy = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            a = torch.sort(x, dim=1).values
            t1 = time.perf_counter()
            b = torch.from_numpy(np.sort(x.numpy(), axis=1))
            t2 = time.perf_counter()
            t_torch.append(t1 - t0)
            t_numpy.append(t2 - t1)
            assert torch.equal(a, b)
        mt, mn = statistics.median(t_torch), statistics.median(t_numpy)
        print(f"| (128, {images * 128:,}): {images} images | {1e3 * mt:.1f} | {1e3 * mn:.1f} | {mn / mt:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
