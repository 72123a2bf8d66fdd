"""``ganlab train``: flags map one-to-one onto :class:`ganlab.config.TrainConfig`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ganlab import config as C
from ganlab.errors import UsageError

DESCRIPTION = """\
Train a pix2pix model: U-Net generator, PatchGAN discriminator, adversarial + lambda*L1 loss.

With no --data it trains on the built-in sample set (colour photographs from scikit-image)
with a small preset (64 px crops, ngf/ndf 32, 600 steps) that finishes in minutes on a CPU;
any flag overrides the preset. A --config TOML file holds the same keys as the flags
(dashes or underscores); flags override it.

Examples:
  ganlab train
  ganlab train --data photos/ --size 256 --epochs 20
  ganlab train --data facades/train --task paired --direction BtoA
  ganlab train --trick soft-labels --trick label-flip:p=0.05
  ganlab train --resume runs/00003-colorize-photos
  torchrun --nproc-per-node 4 -m ganlab train --data photos/ --batch-size 64
"""

# Flags that --resume may change: the run's length and where/how often it reports.
RESUMABLE = {"steps", "epochs", "device", "save_every", "eval_every", "log_every"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = C.TrainConfig()
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="PATH", help="folder of images (default: the built-in sample set)")
    g.add_argument("--val-data", metavar="PATH", help="validation folder (default: a deterministic 80/20 split of --data)")
    g.add_argument("--task", choices=C.TASKS, help=f"colorize (grey L in, ab out) or paired A|B translation (default {d.task})")
    g.add_argument("--direction", choices=C.DIRECTIONS, help="for --task paired: which half is the input")
    g.add_argument("--size", type=int, help=f"crop size, a multiple of 32 (default {d.size}; sample set 64)")
    g.add_argument("--load-size", type=int, help="resize the short side to this before cropping (default size*286/256; 0 keeps the original)")
    g.add_argument("--val-split", type=float, help=f"share of --data held out for validation (default {d.val_split})")
    g.add_argument("--cache-gb", type=float, help=f"memory for decoded images (default {d.cache_gb})")
    g = p.add_argument_group("length")
    g.add_argument("--batch-size", type=int, help=f"images per step (default {d.batch_size}, the paper's; sample set 4)")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="adversarial training steps")
    length.add_argument("--epochs", type=int, help="passes over the training set (default 200 when neither is given)")
    g.add_argument("--pretrain-steps", type=int, help="L1-only generator steps before the adversarial stage (default 0)")
    g = p.add_argument_group("networks")
    g.add_argument("--generator", choices=C.GENERATORS, help=f"default {d.generator}")
    g.add_argument("--backbone-weights", metavar="imagenet|PATH|none", help="ResNet-18 encoder weights for --generator resnet18-unet (default imagenet)")
    g.add_argument("--discriminator", choices=C.DISCRIMINATORS, help="patch (70x70 PatchGAN at 3 layers) or pixel (1x1)")
    g.add_argument("--n-layers", type=int, help=f"PatchGAN depth (default {d.n_layers})")
    g.add_argument("--ngf", type=int, help=f"generator width (default {d.ngf}; sample set 32)")
    g.add_argument("--ndf", type=int, help=f"discriminator width (default {d.ndf}; sample set 32)")
    g.add_argument("--norm", choices=C.NORMS, help=f"default {d.norm}")
    g = p.add_argument_group("losses and optimisation")
    g.add_argument("--gan-mode", choices=C.GAN_MODES, help=f"adversarial loss (default {d.gan_mode})")
    g.add_argument("--lambda-l1", type=float, help=f"weight of the L1 term (default {d.lambda_l1:g})")
    g.add_argument("--lr", type=float, help=f"Adam learning rate (default {d.lr:g})")
    g.add_argument("--beta1", type=float, help=f"Adam beta1 (default {d.beta1})")
    g.add_argument("--beta2", type=float, help=f"Adam beta2 (default {d.beta2})")
    g.add_argument("--lr-decay-steps", type=int, help="decay the learning rates linearly to 0 over the last N steps")
    g.add_argument("--trick", action="append", metavar="NAME[:key=value,...]", help="switch a trick on (repeatable; see ganlab tricks)")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, help=f"default {d.seed}")
    g.add_argument("--device", help="auto (CUDA when present), cpu, cuda or cuda:N")
    g.add_argument("--precision", choices=C.PRECISIONS, help="auto: bf16 autocast on CUDA, fp32 on the CPU")
    g.add_argument("--channels-last", choices=C.SWITCHES, help="channels_last memory format (auto: on for CUDA)")
    g.add_argument("--cudnn-benchmark", choices=C.SWITCHES, help="cudnn.benchmark (auto: on for CUDA)")
    g.add_argument("--fused-adam", choices=C.SWITCHES, help="the fused Adam kernel (auto: on)")
    g.add_argument("--device-data", choices=C.SWITCHES, help="crop, flip and convert batches on the GPU (auto: on for CUDA)")
    g.add_argument("--compile", choices=C.ON_OFF, help="torch.compile the G and D forwards (default off; penalties stay eager)")
    g.add_argument("--cuda-graphs", choices=C.ON_OFF, help="capture the plain step in one CUDA graph, for batch 1 (default off)")
    g.add_argument("--out", metavar="DIR", help=f"where run folders go (default {d.out})")
    g.add_argument("--name", help="run name (default: task and data folder)")
    g.add_argument("--save-every", type=int, help=f"checkpoint every N steps, and at the end (default {d.save_every})")
    g.add_argument("--eval-every", type=int, help=f"validate and draw samples every N steps (default {d.eval_every})")
    g.add_argument("--log-every", type=int, help=f"write scalars every N steps (default {d.log_every})")
    g.add_argument("--val-samples", type=int, help=f"validation images in the sample grid (default {d.val_samples})")
    g.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file (flags override it)")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last good checkpoint")
    g.add_argument("--dry-run", action="store_true", help="print the resolved configuration and trick stack, train nothing")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")


def flags_of(args: argparse.Namespace) -> dict:
    fields = {f for f in C.TrainConfig.__dataclass_fields__}
    flags = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if args.trick:
        flags["tricks"] = list(args.trick)
    return flags


def resolve_resume(args: argparse.Namespace, flags: dict) -> C.TrainConfig:
    run = Path(args.resume).expanduser()
    cfg_path = run / "config.json"
    if not run.is_dir():
        raise UsageError(f"--resume {args.resume}: no such run folder")
    if not cfg_path.is_file():
        raise UsageError(f"--resume {args.resume}: not a ganlab run folder (no config.json)")
    try:
        saved = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError):
        raise UsageError(f"--resume {args.resume}: config.json is unreadable; the run cannot be resumed") from None
    extra = sorted(set(flags) - RESUMABLE)
    if extra or args.config:
        what = "--config" if args.config else "--" + extra[0].replace("_", "-")
        raise UsageError(f"{what} cannot change a resumed run; only --steps, --epochs, --device, --save-every, --eval-every and --log-every can")
    if "steps" in flags:
        saved["epochs"] = None
    if "epochs" in flags:
        saved["steps"] = None
    saved.update(flags)
    return C.TrainConfig.from_dict(saved, f"{cfg_path}").validate()


def run(args: argparse.Namespace) -> int:
    from ganlab.trainer import build_stack, train

    flags = flags_of(args)
    if args.resume:
        cfg = resolve_resume(args, flags)
    else:
        cfg = C.resolve(flags, args.config)
    stack = build_stack(cfg)  # refuse an unknown trick or an impossible stack before any work
    if args.dry_run:
        print(json.dumps({"config": cfg.to_dict(), "tricks": stack.describe()}, indent=2, default=str))
        return 0
    train(cfg, resume=args.resume, progress=not args.no_progress)
    return 0
