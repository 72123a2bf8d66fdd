"""``ganlab checkpoint upgrade FILE... --i-trust-this-file``: convert checkpoints of the previous format.

ganlab opens every checkpoint as data (torch.load with weights_only=True), so opening a file
never runs code in it. Checkpoints written before that (format ganlab-checkpoint/1) kept their
RNG states as pickled numpy objects and are refused. If you trust such a file (you wrote it
yourself, with an earlier ganlab), this command converts it, only with --i-trust-this-file, and
only for a file whose pickle (its opcodes, read without running anything) names nothing beyond
the exact objects a ganlab-checkpoint/1 file holds: torch's tensors and storages, OrderedDicts
and numpy's array of the RNG state (an allow-list; any other torch function is refused like
any other code). The file is then loaded as data with just that array added.

Each FILE is converted in place, atomically; the original is kept beside it as FILE.v1.bak
(which no ganlab command reads). A run folder converts every checkpoint in it. A file already in
the current format is left as it is.

Examples:
  ganlab checkpoint upgrade runs/00003-colorize-photos/checkpoints/step-0020000.pt --i-trust-this-file
  ganlab checkpoint upgrade runs/00003-colorize-photos --i-trust-this-file
"""

from __future__ import annotations

import argparse

from ganlab.errors import UsageError

DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("upgrade",), help="upgrade: convert checkpoints of the previous format")
    p.add_argument("files", metavar="FILE", nargs="+", help="checkpoint files, or run folders (all their checkpoints)")
    p.add_argument("--i-trust-this-file", dest="trusted", action="store_true",
                   help="convert: unpickles the file, which runs any code it holds; only for files you trust")


def run(args: argparse.Namespace) -> int:
    from ganlab.train.checkpoint import PREVIOUS_FORMAT, upgrade_checkpoint, upgrade_targets  # loads torch when it runs

    if not args.trusted:
        raise UsageError(f"ganlab checkpoint upgrade: refused without --i-trust-this-file: converting a {PREVIOUS_FORMAT} "
                         "file unpickles it, which runs any code it holds; add the flag only for files you trust")
    for path in upgrade_targets(args.files):
        _, backup = upgrade_checkpoint(path)
        print(f"{path}: already in the current format" if backup is None else f"{path}: converted (original kept as {backup.name})")
    return 0
