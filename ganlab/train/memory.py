"""Will a training step fit in memory? An estimate made before any work, so that an impossible
``--batch-size``, ``--size`` or ``--ngf`` is one line instead of an out-of-memory kill.

The networks are built on PyTorch's ``meta`` device (shapes only, no memory) and run forward
once at batch 1 with autograd's saved-tensor hooks counting what a backward pass would keep.
A step keeps the generator's graph and two discriminator graphs (real and fake) alive at once,
plus the weights, their gradients and Adam's two moments. Measured against the peak resident
memory of real CPU steps (sizes 64-256, batches 2-16, ngf 32-64, with and without WGAN-GP and
R1), the activations at large batches are 1.1-1.2 times the saved tensors (``ACTIVATION_FACTOR``
1.25); small batches add up to ~60 MiB more (``OVERHEAD``). On a GPU the same count is used,
scaled for bf16 autocast; the caching allocator's fragmentation is left to the 80% warning.

``GANLAB_MEMORY_CHECK=off`` skips the check (for machines whose memory the estimate misreads,
e.g. with swap).
"""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import dataclass

import torch

from ganlab.config import TrainConfig
from ganlab.errors import UsageError
from ganlab.losses import L1_ONLY
from ganlab.nets import count_params
from ganlab.runtime import Runtime
from ganlab.train.build import build_networks, build_stack

__all__ = ["Estimate", "available_bytes", "check_fits", "estimate", "human", "peak_rss_bytes"]

ACTIVATION_FACTOR = 1.25  # peak activations / saved tensors of one G and two D passes, at large batches
OVERHEAD = 96 * 2**20  # allocator, threads and the batch itself at small sizes
BF16_SCALE = 0.6  # autocast keeps most activations in bf16


@dataclass(frozen=True)
class Estimate:
    fixed_bytes: int  # weights, gradients, Adam's moments (and an EMA copy)
    per_image_bytes: int  # activations kept for the backward pass, per image of the batch

    def total(self, batch: int) -> int:
        return self.fixed_bytes + batch * self.per_image_bytes + OVERHEAD

    def max_batch(self, available: int) -> int:
        return max(0, (available - self.fixed_bytes - OVERHEAD) // max(1, self.per_image_bytes))


def _saved_bytes(module: torch.nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    params = {id(p) for p in module.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in params:
            seen[id(t)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(x)
    return sum(seen.values()), out


def estimate(cfg: TrainConfig, precision: str = "fp32") -> Estimate:
    """The memory a training step of ``cfg`` needs (see the module's description)."""
    stack = build_stack(cfg)
    with torch.device("meta"), torch.enable_grad():
        _, G, D = build_networks(cfg, stack, with_d=cfg.gan_mode != L1_ONLY, backbone=False)  # shapes only
        x = torch.zeros(1, cfg.in_channels, cfg.size, cfg.size)
        g, fake = _saved_bytes(G, x)
        d = _saved_bytes(D, torch.cat([x, fake], 1))[0] if D is not None else 0
    copies = sum(t.g_copies() for t in stack.tricks)  # e.g. a moving average of G
    # D graphs alive at once in a D update: the real and the fake pass, and any a trick adds
    # (a consistency term's passes on augmented copies: Trick.extra_passes)
    d_graphs = 2 + sum(int(t.extra_passes(0).get("d_update", 0)) for t in stack.tricks)
    # weights, gradients and Adam's two moments, 4 bytes each (and an fp32 copy of G per copy a trick keeps)
    fixed = 16 * (count_params(G) + (count_params(D) if D is not None else 0)) + 4 * copies * count_params(G)
    per_image = ACTIVATION_FACTOR * (g + d_graphs * d) * (BF16_SCALE if precision == "bf16" else 1.0)
    return Estimate(int(fixed), int(per_image))


def available_bytes(device: torch.device) -> tuple[int, str] | None:
    """(bytes free for this process, where), or None where it cannot be told."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"free on {torch.cuda.get_device_name(device)}"
    if device.type != "cpu":
        return None
    avail = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except OSError:
        return None
    try:  # a container's own limit (cgroup v2)
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        if limit != "max":
            current = int(open("/sys/fs/cgroup/memory.current").read())
            avail = min(avail, int(limit) - current) if avail is not None else int(limit) - current
    except (OSError, ValueError):
        pass
    return (avail, "available on this machine") if avail is not None else None


def peak_rss_bytes() -> int:
    """This process's peak resident memory. Linux's VmHWM belongs to the process image; the
    ``ru_maxrss`` of getrusage carries over a forked parent's peak across exec."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit in ("B", "KiB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check_fits(cfg: TrainConfig, runtime: Runtime, batch: int | None = None) -> str | None:
    """Raise UsageError when a step of ``cfg`` clearly cannot fit on ``runtime.device``; return
    a warning sentence when it comes close (over 80% of what is free), else None."""
    if os.environ.get("GANLAB_MEMORY_CHECK", "on").lower() in ("off", "0", "no", "false"):
        return None
    try:
        est = estimate(cfg, runtime.precision)
        where = available_bytes(runtime.device)
    except Exception:  # the estimate is a courtesy: it never stops a run it cannot judge
        return None
    if where is None:
        return None
    free, place = where
    batch = cfg.batch_size if batch is None else batch
    need = est.total(batch)
    if need <= free:
        if need > 0.8 * free:
            return f"a training step needs about {human(need)} and {human(free)} is {place}: close to the limit"
        return None
    skip = "(GANLAB_MEMORY_CHECK=off skips this check)"
    if est.fixed_bytes + OVERHEAD > free:
        raise UsageError(f"--ngf {cfg.ngf} --ndf {cfg.ndf}: the networks with their gradients and Adam's state take about "
                         f"{human(est.fixed_bytes)} and {human(free)} is {place}; lower --ngf/--ndf {skip}")
    msg = f"--batch-size {cfg.batch_size} at --size {cfg.size}: a training step needs about {human(need)} and {human(free)} is {place}"
    fit = est.max_batch(free)
    if fit < 1:
        raise UsageError(f"{msg}; not even one image fits: lower --size {skip}")
    raise UsageError(f"{msg}; about {fit} image{'s' if fit > 1 else ''} fit{'' if fit > 1 else 's'} per step: "
                     f"lower --batch-size (or --size) {skip}")
