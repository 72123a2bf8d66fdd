"""Device and precision policy, written out in one place.

``--device auto`` picks CUDA when present. On CUDA the defaults are bf16 autocast (no
GradScaler: bf16 has fp32's range), channels_last memory format, cudnn.benchmark and TF32
matmuls; each can be turned off by a flag. On the CPU everything runs in fp32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch

from ganlab.errors import UsageError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # fp32 | bf16
    channels_last: bool
    cudnn_benchmark: bool

    @property
    def autocast(self) -> Callable[[], contextlib.AbstractContextManager]:
        if self.precision == "bf16":
            return partial(torch.autocast, device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def describe(self) -> str:
        extras = [self.precision]
        if self.device.type == "cuda":
            extras += ["channels_last" if self.channels_last else "contiguous", "cudnn.benchmark" if self.cudnn_benchmark else ""]
        return f"{self.device} ({', '.join(e for e in extras if e)})"


def resolve_runtime(device: str = "auto", precision: str = "auto", channels_last: str = "auto", cudnn_benchmark: str = "auto") -> Runtime:
    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"--device {device}: no CUDA device is visible here; use --device cpu or auto")
    cuda = dev.type == "cuda"
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    on = {"on": True, "off": False}
    cl = on.get(channels_last, cuda)
    bench = on.get(cudnn_benchmark, cuda)
    if cuda:
        torch.backends.cudnn.benchmark = bench
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(dev, precision, cl, bench)
