"""The data pipeline alone against what the trainer consumes, interleaved in one process.

The pipeline is the trainer's own (``Dist().batches``: cached uint8 images, random crops and
flips, the float and Lab conversion, on the training device; on CUDA with --device-data, the
crops are a gather on the GPU). "Consumes" is the trainer's step rate at the same size and
batch (``ganlab bench``'s trainer variant: the step, statistics and data included). Rounds
alternate: a burst of pipeline batches, then trainer steps, so that a busy machine slows both.

    python benchmarks/data_pipeline.py --size 256 --batch-size 4 --rounds 5
    python benchmarks/data_pipeline.py --device cuda --batch-size 64 --json pipeline.json

Reported: images/s of each (median over rounds) and the ratio pipeline / trainer, which should
be at least 10 so that data never holds the trainer up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ganlab.bench import Variant, _trainer_runner, synthetic_images
from ganlab.config import TrainConfig
from ganlab.train.distributed import Dist
from ganlab.runtime import runtime_for

BSDS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "bsds500" / "train"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data", default=str(BSDS) if BSDS.is_dir() else None, help="image folder (default: BSDS500 train if present, else synthetic)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, default=20, help="pipeline batches per round")
    ap.add_argument("--steps", type=int, default=1, help="trainer steps per round")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    cfg = TrainConfig(data=args.data, size=args.size, batch_size=args.batch_size, device=args.device, steps=1).validate()
    runtime = runtime_for(cfg)
    if args.data:
        from ganlab.data import build_datasets

        t0 = time.perf_counter()
        pipe_data = build_datasets(cfg)[0]
        train_data = build_datasets(cfg)[0]
        decode_s = (time.perf_counter() - t0) / 2
    else:
        pipe_data, train_data, decode_s = synthetic_images(cfg), synthetic_images(cfg), 0.0
    pipe_data.seed(0)
    next_batch = Dist().batches(pipe_data, cfg.batch_size, runtime)
    trainer = _trainer_runner(Variant("trainer"), cfg, train_data, 10, print)
    next_batch()
    trainer.run()  # warm-up of both

    pipe_ips, train_ips = [], []
    for r in range(args.rounds):
        _sync(runtime.device)
        t = time.perf_counter()
        for _ in range(args.batches):
            cond, target = next_batch()
        _sync(runtime.device)
        pipe_ips.append(args.batches * cfg.batch_size / (time.perf_counter() - t))
        t = time.perf_counter()
        for _ in range(args.steps):
            trainer.run()
        _sync(runtime.device)
        train_ips.append(args.steps * cfg.batch_size / (time.perf_counter() - t))
        print(f"round {r}: pipeline {pipe_ips[-1]:.1f} img/s, trainer {train_ips[-1]:.2f} img/s", flush=True)
    ratios = [p / t for p, t in zip(pipe_ips, train_ips)]
    figures = {
        "device": str(runtime.device),
        "device_data": runtime.device_data,
        "size": cfg.size,
        "batch_size": cfg.batch_size,
        "images": len(pipe_data),
        "data": args.data or "synthetic",
        "decode_and_cache_seconds": decode_s,
        "threads": torch.get_num_threads(),
        "pipeline_img_per_s": statistics.median(pipe_ips),
        "trainer_img_per_s": statistics.median(train_ips),
        "ratio": statistics.median(ratios),
        "ratio_per_round": ratios,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
