"""The safety scan: which objects a checkpoint's pickle would ask for, read from its opcodes
without unpickling anything.

A checkpoint of the current format loads with ``torch.load(..., weights_only=True)``, which is
what keeps its readers safe; the scan only tells a damaged file from one that asks for objects,
and names them in the refusal. For a file of the previous format it is the gate in front of
``ganlab checkpoint upgrade``: every global the pickle names must be on an allow-list of the
exact objects a ``ganlab-checkpoint/1`` file holds (:data:`CHECKPOINT_GLOBALS`, what torch.save
writes for tensors and state dicts, and :data:`NUMPY_RNG_GLOBALS`, numpy's array of the legacy
MT19937 state), never a module prefix: ``torch.fx.graph_module._forward_from_src`` is as
foreign as ``os.system``."""

from __future__ import annotations

import io
import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ganlab.train.checkpoint.format import PREVIOUS_FORMAT

__all__ = ["CHECKPOINT_GLOBALS", "NUMPY_RNG_GLOBALS", "PREVIOUS_FORMAT_GLOBALS", "Scan", "asks_for_objects", "foreign",
           "is_previous_format", "pickle_globals"]

# What torch.save writes for a dict of tensors: each tensor rebuilt from a typed storage (one class
# per dtype a network, an optimiser or a generator's state uses), parameters, OrderedDicts (a
# module's state_dict), bytes as pickle protocol 2 writes them.
_STORAGES = ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
CHECKPOINT_GLOBALS = frozenset({
    "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "collections.OrderedDict", "_codecs.encode",
    *(f"torch.{s}Storage" for s in _STORAGES),
})
# numpy's legacy MT19937 state (np.random.get_state()): an array of uint32, under numpy 1's and 2's names.
NUMPY_RNG_GLOBALS = frozenset({
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
    "numpy.dtypes.UInt32DType",
})
PREVIOUS_FORMAT_GLOBALS = CHECKPOINT_GLOBALS | NUMPY_RNG_GLOBALS

_STRINGS = ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING")


@dataclass
class Scan:
    """What a pickle names: ``globals`` (``module.name``, or a description of a global whose
    name the scan could not tell), whether it holds the previous format's tag, and whether every
    opcode was read (False for a damaged file: the globals of what was read)."""

    globals: set[str] = field(default_factory=set)
    tagged: bool = False
    complete: bool = True


def _pickles(path: Path) -> tuple[io.BytesIO, int] | None:
    """The stream of a torch file's pickles and how many there are: a zip archive's data.pkl;
    a file of torch's legacy format is a few pickles in a row (magic, protocol, sys info, the
    object)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                name = next((n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
                return None if name is None else (io.BytesIO(zf.read(name)), 1)
        return io.BytesIO(Path(path).read_bytes()), 4
    except (OSError, zipfile.BadZipFile, ValueError):
        return None


def pickle_globals(path: Path) -> Scan | None:
    """The globals a torch checkpoint's pickle refers to, read from its opcodes without
    unpickling anything; None when the file cannot be read.

    Every way a pickle can reach an object counts: GLOBAL and INST name it, STACK_GLOBAL takes
    its name from the two strings on top of the stack (followed through the memo, which each
    pickle starts afresh), and the copyreg extension codes (EXT1/2/4) are never one of ours."""
    opened = _pickles(path)
    if opened is None:
        return None
    stream, pickles = opened
    scan = Scan()
    try:
        for _ in range(pickles):
            strings: list[str | None] = []  # what each opcode pushed, where it was a string
            memo: dict[int, str | None] = {}
            for op, arg, _ in pickletools.genops(stream):
                name = op.name
                if name in ("GLOBAL", "INST"):
                    scan.globals.add(str(arg).replace(" ", "."))
                    strings.append(None)
                elif name in _STRINGS:
                    scan.tagged = scan.tagged or arg == PREVIOUS_FORMAT
                    strings.append(arg)
                elif name == "MEMOIZE":
                    memo[len(memo)] = strings[-1] if strings else None
                elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                    memo[int(arg)] = strings[-1] if strings else None
                elif name in ("BINGET", "LONG_BINGET", "GET"):
                    strings.append(memo.get(int(arg)))
                elif name == "STACK_GLOBAL":
                    mod, qual = (strings[-2], strings[-1]) if len(strings) >= 2 else (None, None)
                    scan.globals.add(f"{mod}.{qual}" if isinstance(mod, str) and isinstance(qual, str)
                                     else "an unnamed global")
                    strings.append(None)
                elif name in ("EXT1", "EXT2", "EXT4"):
                    scan.globals.add(f"an extension-registry global ({name} {arg})")
                    strings.append(None)
                else:
                    strings.append(None)
    except Exception:  # a damaged pickle: what was read so far
        scan.complete = False
    return scan


def foreign(found: set[str], allowed: frozenset[str] = CHECKPOINT_GLOBALS) -> list[str]:
    """The globals that are not on the allow-list, sorted."""
    return sorted(g for g in found if g not in allowed)


def asks_for_objects(path: Path) -> bool:
    """Whether a file names an object a current checkpoint never holds (or is tagged as the
    previous format): not damage, a file that wants more than data."""
    scan = pickle_globals(path)
    return scan is not None and (scan.tagged or bool(foreign(scan.globals)))


def is_previous_format(path: Path) -> bool:
    """Tagged ``ganlab-checkpoint/1`` and naming nothing beyond what such a file holds."""
    scan = pickle_globals(path)
    return scan is not None and scan.tagged and not foreign(scan.globals, PREVIOUS_FORMAT_GLOBALS)
