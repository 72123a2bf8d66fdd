"""``ganlab train``: its flags are generated from :class:`ganlab.config.TrainConfig`, one per setting."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ganlab.cli.flags import add_setting_flags, resumable_settings, setting_values
from ganlab.config import TrainConfig, flag_name, resolve
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

def add_arguments(p: argparse.ArgumentParser) -> None:
    groups = add_setting_flags(p)
    g = groups["run"]
    g.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file (flags override it)")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last good checkpoint")
    g.add_argument("--dry-run", action="store_true", help="print the resolved configuration and trick stack, train nothing")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")


def resolve_resume(args: argparse.Namespace, flags: dict) -> TrainConfig:
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
    resumable = resumable_settings()
    extra = sorted(set(flags) - set(resumable))
    if extra or args.config:
        what = "--config" if args.config else flag_name(extra[0])
        allowed = ", ".join(flag_name(n) for n in resumable[:-1]) + " and " + flag_name(resumable[-1])
        raise UsageError(f"{what} cannot change a resumed run; only {allowed} can")
    if "steps" in flags:
        saved["epochs"] = None
    if "epochs" in flags:
        saved["steps"] = None
    saved.update(flags)
    return TrainConfig.from_dict(saved, f"{cfg_path}").validate()


def run(args: argparse.Namespace) -> int:
    from ganlab.train import build_stack, train  # the trainer loads when the command runs, not for --help

    flags = setting_values(args)
    if args.resume:
        cfg = resolve_resume(args, flags)
    else:
        cfg = resolve(flags, args.config)
    stack = build_stack(cfg)  # refuse an unknown trick or an impossible stack before any work
    if args.dry_run:
        print(json.dumps({"config": cfg.to_dict(), "tricks": stack.describe()}, indent=2, default=str))
        return 0
    train(cfg, resume=args.resume, progress=not args.no_progress)
    return 0
