"""``--device`` names, checked without torch (``--help`` and the configuration need them before
any tensor library is loaded); :mod:`ganlab.runtime` resolves them to a device."""

from __future__ import annotations

from ganlab.errors import UsageError

DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N"


def check_device_name(name: str, flag: str = "--device") -> str:
    """Refuse a ``--device`` that is not auto, cpu, cuda or cuda:N (without touching a GPU)."""
    if not (name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())):
        raise UsageError(f"{flag} {name}: choose auto, cpu, cuda or cuda:N")
    return name
