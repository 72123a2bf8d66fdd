"""Device and precision policy, written out in one place.

``--device auto`` picks CUDA when present. On CUDA the defaults are bf16 autocast (no
GradScaler: bf16 has fp32's range) where the GPU has native bf16 (compute capability 8.0 and
up), channels_last memory format, cudnn.benchmark and TF32 matmuls; each can be turned off by a
flag. On a CPU with native bf16 matrix instructions (AMX, or AVX512-BF16, as
``torch.cpu.get_capabilities()`` reports them, with oneDNN present) the defaults are bf16
autocast and channels_last (oneDNN's bf16 convolutions run fastest in NHWC); on any other CPU
everything runs in fp32, contiguous. The choice and its reason are written to ``env.json`` and
said in the run's start-up lines.

Further speed settings, each with its flag: the fused Adam kernel (``--fused-adam``, on by
default on CUDA and the CPU), batches cropped, flipped and converted on the device
(``--device-data``, on by default on CUDA), ``torch.compile`` of the G and D forwards
(``--compile``, off by default) and the whole plain step captured in one CUDA graph
(``--cuda-graphs``, off by default; for the batch-1 recipe, where kernel launches dominate).
The CPU threads of a run (``--threads``, a study or confirmation worker's share of the cores)
are set by :mod:`ganlab.threads`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Callable

import torch

from ganlab.devices import DEVICE_HELP, check_device_name
from ganlab.errors import UsageError

if TYPE_CHECKING:
    from ganlab.config import TrainConfig


__all__ = ["DEVICE_HELP", "Runtime", "check_device_name", "cpu_bf16", "cpu_capabilities", "resolve_device", "resolve_runtime",
           "runtime_for"]


def resolve_device(name: str, flag: str = "--device") -> torch.device:
    """The device a ``--device`` names on this machine; ``auto`` is CUDA when present."""
    check_device_name(name, flag)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{flag} {name}: no CUDA device is visible here; use {flag} cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise UsageError(f"{flag} {name}: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}")
    return dev


# torch.cpu.get_capabilities() names of native bf16 matrix instructions, best first, and how
# ganlab says them.
CPU_BF16_FEATURES = (("amx_bf16", "AMX bf16 matrix units"), ("avx512_bf16", "AVX512-BF16 dot-product instructions"))


def cpu_capabilities() -> dict:
    """What torch reports of this CPU's instruction sets (``torch.cpu.get_capabilities()``)."""
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is not None:
        return dict(get())
    # Older torch: the two probes it has.
    probes = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
    return {key: bool(getattr(torch.cpu, fn, lambda: False)()) for key, fn in probes.items()}


def cpu_bf16(caps: dict | None = None) -> tuple[bool, str]:
    """(whether bf16 autocast is native on this CPU, the reason in words)."""
    caps = cpu_capabilities() if caps is None else caps
    if not torch.backends.mkldnn.is_available():
        return False, "this torch has no oneDNN, which runs bf16 convolutions on the CPU"
    for key, words in CPU_BF16_FEATURES:
        if caps.get(key):
            return True, f"the CPU has {words} ({key})"
    return False, "the CPU has no native bf16 matrix instructions (no amx_bf16 or avx512_bf16)"


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # fp32 | bf16
    channels_last: bool
    cudnn_benchmark: bool
    fused_adam: bool = False  # the fused Adam kernel
    device_data: bool = False  # crops, flips and Lab conversion batched on the device
    compile: bool = False  # torch.compile of the G and D forwards
    cuda_graphs: bool = False  # the plain step captured in one CUDA graph
    precision_why: str = ""  # how the precision was chosen, in words
    channels_last_why: str = ""

    @property
    def autocast(self) -> Callable[[], contextlib.AbstractContextManager]:
        if self.precision == "bf16":
            # Inside a CUDA graph the cast weights must not be cached across the capture.
            return partial(torch.autocast, device_type=self.device.type, dtype=torch.bfloat16, cache_enabled=not self.cuda_graphs)
        return contextlib.nullcontext

    def why(self) -> str:
        """How the precision and the memory format were chosen, in words."""
        parts = [f"{self.precision}: {self.precision_why}" if self.precision_why else "",
                 f"{'channels_last' if self.channels_last else 'contiguous'}: {self.channels_last_why}" if self.channels_last_why else ""]
        return "; ".join(p for p in parts if p)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def describe(self) -> str:
        extras = [self.precision]
        extras += ["channels_last" if self.channels_last else ("contiguous" if self.device.type == "cuda" else "")]
        if self.device.type == "cuda":
            extras += ["cudnn.benchmark" if self.cudnn_benchmark else ""]
            extras += ["data on the device" if self.device_data else "", "CUDA graphs" if self.cuda_graphs else ""]
        extras += ["fused Adam" if self.fused_adam else "", "compiled G and D" if self.compile else ""]
        return f"{self.device} ({', '.join(e for e in extras if e)})"


def resolve_runtime(
    device: str = "auto",
    precision: str = "auto",
    channels_last: str = "auto",
    cudnn_benchmark: str = "auto",
    *,
    fused_adam: str = "auto",
    device_data: str = "auto",
    compile: str = "off",
    cuda_graphs: str = "off",
) -> Runtime:
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    if cuda:
        # Make the run's GPU the current one: streams, events, graphs and generators made
        # without a device then live where the run's tensors do.
        dev = torch.device("cuda", torch.cuda.current_device() if dev.index is None else dev.index)
        torch.cuda.set_device(dev)
    precision, precision_why = _auto_precision(dev) if precision == "auto" else (precision, f"--precision {precision}")
    on = {"on": True, "off": False}
    if channels_last == "auto":
        # CUDA: tensor-core convolutions want NHWC. CPU: oneDNN's bf16 convolutions are faster
        # in NHWC; its fp32 ones measured slower there.
        cl = cuda or precision == "bf16"
        cl_why = "auto: on for CUDA" if cuda else ("auto: on for bf16 on the CPU" if cl else "auto: off for fp32 on the CPU")
    else:
        cl, cl_why = on[channels_last], f"--channels-last {channels_last}"
    bench = on.get(cudnn_benchmark, cuda)
    if cuda:
        torch.backends.cudnn.benchmark = bench
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if cuda_graphs == "on" and not cuda:
        raise UsageError(f"--cuda-graphs on needs a CUDA device (this run is on {dev}); use --cuda-graphs off")
    return Runtime(
        dev,
        precision,
        cl,
        bench,
        fused_adam=on.get(fused_adam, cuda or dev.type == "cpu"),
        device_data=on.get(device_data, cuda),
        compile=compile == "on",
        cuda_graphs=cuda_graphs == "on",
        precision_why=precision_why,
        channels_last_why=cl_why,
    )


def _auto_precision(dev: torch.device) -> tuple[str, str]:
    """``--precision auto``: bf16 where it is native, with the reason."""
    if dev.type == "cuda":
        # Emulated bf16 on older GPUs (V100, T4) is slower than fp32.
        cc = torch.cuda.get_device_capability(dev)
        if cc >= (8, 0):
            return "bf16", f"auto: the GPU has native bf16 (compute capability {cc[0]}.{cc[1]})"
        return "fp32", f"auto: the GPU has no native bf16 (compute capability {cc[0]}.{cc[1]} < 8.0)"
    native, why = cpu_bf16()
    return ("bf16" if native else "fp32"), "auto: " + why


def runtime_for(cfg: "TrainConfig") -> Runtime:
    """The runtime of a :class:`~ganlab.config.TrainConfig` (device, precision and every speed flag)."""
    return resolve_runtime(
        cfg.device,
        cfg.precision,
        cfg.channels_last,
        cfg.cudnn_benchmark,
        fused_adam=cfg.fused_adam,
        device_data=cfg.device_data,
        compile=cfg.compile,
        cuda_graphs=cfg.cuda_graphs,
    )
