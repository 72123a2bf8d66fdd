"""ganlab's trainer against a plain eager PyTorch loop: the same networks, the same update.

Both sides train the pix2pix U-Net + PatchGAN with Adam(2e-4, 0.5) and lambda_L1 = 100 for the
same number of steps, interleaved (ganlab, plain, ganlab, plain, ...) in one process so that
machine noise hits both alike. ganlab runs its real loop (``ganlab.train.train``: data
pipeline, Lab conversion, hooks, stats, TensorBoard); the plain loop gets its batches ready-made
in memory. Reported: images/s of each over the warm steps and the ratio ganlab / plain.

    python benchmarks/bench_train_vs_plain.py --size 256 --batch-size 4 --steps 12 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ganlab.bench import plain_step
from ganlab.config import TrainConfig
from ganlab.trick import NetSpec
from ganlab.nets import build_discriminator, build_generator
from ganlab.stats import read_series
from ganlab.train import train

BSDS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "bsds500" / "train"


def data_folder(tmp: Path, size: int) -> str:
    if BSDS.is_dir():
        return str(BSDS)
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, (size + 40, size + 60, 3), dtype=np.uint8)).save(tmp / f"{i}.png")
    return str(tmp)


def ganlab_ips(cfg: TrainConfig, warmup: int) -> float:
    result = train(cfg, progress=False, console=_quiet())
    series = read_series(result.run_dir / "stats.jsonl")["perf/img_per_s"]
    warm = [v for step, v in series if step >= warmup]  # windows that end after the warm-up
    return statistics.fmean(warm)


def plain_ips(size: int, batch: int, steps: int, warmup: int, ngf: int, ndf: int) -> float:
    torch.manual_seed(0)
    spec = NetSpec(size=size, ngf=ngf, ndf=ndf)
    G, D = build_generator(spec), build_discriminator(spec)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    A = torch.rand(batch, 1, size, size) * 2 - 1
    B = torch.rand(batch, 2, size, size) * 2 - 1
    t0 = None
    for step in range(steps):
        if step == warmup:
            t0 = time.perf_counter()
        plain_step(G, D, opt_g, opt_d, A, B, 100.0).item()  # the plain loop reads its loss every step
    return batch * (steps - warmup) / (time.perf_counter() - t0)


def _quiet():
    from rich.console import Console

    return Console(file=open("/dev/null", "w"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--ndf", type=int, default=64)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            data=data_folder(Path(tmp), args.size), size=args.size, batch_size=args.batch_size, steps=args.steps,
            ngf=args.ngf, ndf=args.ndf, device="cpu", out=str(Path(tmp) / "runs"), log_every=1,
            eval_every=0, save_every=0, load_size=args.size,
        ).validate()
        ours, plain = [], []
        for r in range(args.repeats):
            ours.append(ganlab_ips(cfg, args.warmup))
            plain.append(plain_ips(args.size, args.batch_size, args.steps, args.warmup, args.ngf, args.ndf))
            print(f"repeat {r}: ganlab {ours[-1]:.2f} img/s, plain loop {plain[-1]:.2f} img/s", flush=True)
    o, p = statistics.median(ours), statistics.median(plain)
    figures = {"size": args.size, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
               "ganlab_img_per_s": o, "plain_img_per_s": p, "ratio": o / p}
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
