"""``ganlab bench``: time warm training steps, side by side, and report model-FLOPs utilisation."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from rich.console import Console

from ganlab.cli.flags import add_setting_flags, setting_values
from ganlab.errors import UsageError

DESCRIPTION = """\
Time warm training steps of ganlab's trainer and print img/s, ms per step, peak memory and
model-FLOPs utilisation (MFU), for several variants side by side in one process.

Every variant builds its own networks and optimisers exactly as `ganlab train` does, draws its
batches through the trainer's data pipeline (cached uint8 images, crops, flips, Lab) and runs
the trainer's step, statistics included. Variants are warmed up first (compilation, CUDA-graph
capture and cuDNN's algorithm search happen there), then timed in interleaved rounds
(A B C, then B C A, then C A B, ...) so that a busy machine slows them alike. Step times come from CUDA
events on the GPU (no synchronisation inside the timed steps) and from the clock on the CPU;
the table shows the median step.

MFU = the step's FLOPs / time / the device's peak. The FLOPs are counted analytically for the
step that ran (ganlab.train.flops: G forward and backward, every D pass, the G update's D pass, the
extra passes of WGAN-GP or a step ratio), the peak comes from a table of known devices (bf16
or TF32 dense tensor-core rates; on a CPU an estimate from its cores, clock and vector width);
--peak-tflops overrides it.

Variants (--variants, comma-separated; each is settings joined by '+'):
  trainer          ganlab's step with `ganlab train`'s defaults for the device
  plain            a plain eager PyTorch loop over the same networks: fp32, default Adam,
                   batches made beforehand, the loss read every step (the reference)
  fp32, bf16       precision (bf16 autocast, no GradScaler)
  channels-last, cudnn-benchmark, fused-adam, device-data, compile, cuda-graphs
                   switch that optimisation on; no-<name> switches it off
  Default: CUDA: plain,fp32,trainer,trainer+compile (and trainer+cuda-graphs at batch 1);
           CPU:  plain,trainer

Examples:
  ganlab bench
  ganlab bench --size 256 --batch-size 64 --steps 20
  ganlab bench --batch-size 1 --variants trainer,trainer+cuda-graphs
  ganlab bench --trick wgan-gp --variants trainer,trainer+compile
  ganlab bench --device cpu --batch-size 4 --steps 3 --json bench.json
"""

# The ganlab train settings the bench takes, and the defaults it times at (a GPU-sized batch).
MODEL_SETTINGS = ("task", "size", "batch_size", "generator", "discriminator", "n_layers", "ngf", "ndf", "norm", "gan_mode",
                  "tricks", "device", "data", "log_every", "seed")
BENCH_DEFAULTS = {"size": 256, "batch_size": 64}
BENCH_HELP = {
    "size": "crop size (default {default})",
    "batch_size": "images per step (default {default})",
    "ngf": "generator width (default {default})",
    "ndf": "discriminator width (default {default})",
    "data": "time on these images (default: 16 synthetic images held in memory)",
    "tricks": "run the step with this trick (repeatable)",
    "log_every": "statistics read back every N steps, as in training (default {default})",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to time")
    g.add_argument("--steps", type=int, default=20, help="timed steps per variant and round (default 20)")
    g.add_argument("--warmup", type=int, default=5, help="untimed steps per variant first (default 5; CUDA graphs capture after 3)")
    g.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    g.add_argument("--variants", help="comma-separated variants (see above; default depends on the device)")
    add_setting_flags(p, only=MODEL_SETTINGS, defaults=BENCH_DEFAULTS, helps=BENCH_HELP, group_title="model (the settings of ganlab train)")
    g = p.add_argument_group("report")
    g.add_argument("--peak-tflops", type=float, help="the device's peak TFLOP/s for MFU (default: from the table of known devices)")
    g.add_argument("--json", metavar="FILE", help="also write every figure (and every step time) to this JSON file")


def run(args: argparse.Namespace) -> int:
    from ganlab.bench import BenchOptions, bench  # the trainer loads when the command runs, not for --help

    console = Console(soft_wrap=True, width=max(120, shutil.get_terminal_size((120, 24)).columns))
    settings = {**BENCH_DEFAULTS, **setting_values(args, only=MODEL_SETTINGS)}
    options = BenchOptions(steps=args.steps, warmup=args.warmup, rounds=args.rounds, variants=args.variants,
                           peak_tflops=args.peak_tflops)
    result = bench(options, console, settings)
    if args.json:
        path = Path(args.json).expanduser()
        try:
            path.write_text(json.dumps(result, indent=2))
        except OSError as exc:
            raise UsageError(f"--json {args.json}: cannot write there ({exc.strerror})") from None
        console.print(f"figures written to {path}", highlight=False)
    return 0
