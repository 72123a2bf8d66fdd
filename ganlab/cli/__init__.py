"""The ``ganlab`` command: train | colorize | export | eval | study | report | bench | tricks | checkpoint.

Every command module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Errors a
user can act on print one line and exit non-zero (2 for usage errors); ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from typing import Sequence

from ganlab.version import __version__
from ganlab.errors import GanlabError, UsageError
from ganlab.errors import Stopped

# name -> (module, one-line help). A module that is not installed leaves its command out.
COMMANDS = {
    "train": ("ganlab.cli.train", "train a pix2pix model (with tricks) on a folder of images or the sample set"),
    "colorize": ("ganlab.cli.colorize", "colourise (or translate) your own images with a trained model"),
    "export": ("ganlab.cli.export", "write a trained generator as a TorchScript or ONNX model that runs without ganlab"),
    "eval": ("ganlab.cli.eval", "compute image-quality and stability metrics of a run"),
    "study": ("ganlab.cli.study", "search trick combinations with Optuna"),
    "confirm": ("ganlab.cli.confirm", "re-train a study's best configurations, the baseline and ablations over fresh seeds"),
    "report": ("ganlab.cli.report", "write the report of a study: importances, Pareto front, plots"),
    "bench": ("ganlab.cli.bench", "time training steps: img/s, memory, model-FLOPs utilisation"),
    "tricks": ("ganlab.cli.tricks", "list the registered tricks, or show one"),
    "checkpoint": ("ganlab.cli.checkpoint", "convert a trusted checkpoint of the previous format (upgrade)"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem and where to look."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, _without_password(f"{self.prog}: error: {message}; see {self.prog} --help", sys.argv[1:]) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="ganlab", description="GAN-stabilisation experiments on a pix2pix trainer.")
    parser.add_argument("--version", action="version", version=f"ganlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        description = getattr(module, "DESCRIPTION", help_text)
        p = sub.add_parser(name, help=help_text, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback of an error")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        try:
            args, extras = parser.parse_known_args(argv)
        except SystemExit as exc:  # --help, --version, or a usage error already printed
            return exc.code if isinstance(exc.code, int) else 2
        if extras:  # named with the subcommand whose --help lists what it takes
            prog = f"ganlab {args.command}" if getattr(args, "command", None) else "ganlab"
            sys.stderr.write(f"{prog}: error: unrecognized arguments: {' '.join(extras)}; see {prog} --help\n")
            return 2
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        return int(args._run(args) or 0)
    except Stopped as exc:  # a signal: not an error; the run saved (or kept) its checkpoint
        if debug:
            raise
        if int(os.environ.get("RANK", "0") or 0) == 0:
            print(f"ganlab: {exc}", file=sys.stderr)
        return exc.exit_code
    except GanlabError as exc:
        if debug:
            raise
        # Under torchrun every process meets the same usage error: rank 0 says it once.
        if not (isinstance(exc, UsageError) and int(os.environ.get("RANK", "0") or 0) > 0):
            print(_without_password(f"ganlab: error: {exc}", argv), file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the environment said no: a full disk, a read-only or vanished folder
        if debug:
            raise
        where = f"cannot write or read {exc.filename}: " if exc.filename else ""
        print(_without_password(f"ganlab: error: {where}{exc.strerror or exc}", argv), file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        if debug:
            raise
        run = getattr(exc, "run_dir", None)  # set by a training run that the interrupt stopped
        print("ganlab: interrupted" + (f"; the run continues with: ganlab train --resume {run}" if run else ""),
              file=sys.stderr)
        return 130
    except MemoryError:
        if debug:
            raise
        print(f"ganlab: error: out of memory; {_memory_advice(argv)}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        # torch reports a failed allocation as a RuntimeError (torch.OutOfMemoryError on CUDA).
        if debug or not (type(exc).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(exc)):
            raise
        print(f"ganlab: error: out of memory; {_memory_advice(argv)}", file=sys.stderr)
        return 1


# What to lower when a command runs out of memory, in that command's own flags.
MEMORY_ADVICE = {
    "colorize": "lower --max-side (the long side the network sees; 0 means no limit), or use --device cpu",
    "export": "lower --max-side",
    "eval": "lower --batch-size (or --n)",
}


def _memory_advice(argv: list[str]) -> str:
    command = next((a for a in argv if a in COMMANDS), None)
    return MEMORY_ADVICE.get(command, "lower --batch-size, --size, --ngf or --ndf")


_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s'\"]*):[^@\s'\"]*@")


def _without_password(text: str, argv: list[str]) -> str:
    """An error line with the password of any URL on the command line (``--storage
    postgresql://user:PASSWORD@host/db``) replaced: a message quoting the URL must not leak it.
    A URL in the message itself loses its password too (``scheme://user@host``)."""
    if "@" not in text:
        return text
    from urllib.parse import unquote

    text = _URL_PASSWORD.sub(r"\1@", text)

    for arg in argv:
        for url in ([arg.split("=", 1)[1]] if arg.startswith("--") and "=" in arg else [arg]):
            if "://" in url and "@" in url:
                creds = url.split("://", 1)[1].rsplit("@", 1)[0]
                if ":" in creds and creds.split(":", 1)[1]:
                    secret = creds.split(":", 1)[1]
                    text = text.replace(secret, "***").replace(unquote(secret), "***")
    return text


def entry() -> None:
    """The ``ganlab`` program: :func:`main`, then a quick exit.

    After a command has finished, CPython's own shutdown spends 0.4-0.9 s tearing down
    PyTorch's modules one by one (more once ``torch._dynamo`` is loaded), work whose only
    result is freed memory the operating system reclaims anyway. The shutdown's earlier steps do
    have effects and are kept: it waits for the threads still working (and stops idle thread
    pools), then runs the ``atexit`` handlers, last-registered first. So the program registers
    one handler before anything else can (it runs last), and that handler flushes the standard
    streams and ends the process with the command's exit code, before the module teardown.
    Every file ganlab writes is closed (and fsync'ed) before the command returns. An exception
    from :func:`main` (``--debug``) takes the ordinary way out, as does ``GANLAB_ORDINARY_EXIT=1``
    (for tools that hook the interpreter's teardown).
    """
    if os.environ.get("GANLAB_ORDINARY_EXIT"):
        raise SystemExit(main())
    import atexit

    finished: list[int] = []
    atexit.register(_end_process, finished)  # the first handler registered: the last one run
    code = main()
    finished.append(code if isinstance(code, int) else 1)
    raise SystemExit(code)


def _end_process(finished: list[int]) -> None:
    if not finished:  # main raised: the ordinary shutdown
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(finished[0])


if __name__ == "__main__":  # pragma: no cover
    entry()
