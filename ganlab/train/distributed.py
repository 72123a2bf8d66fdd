"""Training over several processes: ``torchrun --nproc-per-node K ganlab train ...``.

torchrun starts K processes and tells each its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
:func:`setup` reads them and joins the process group (NCCL on GPUs, one per process; gloo on
the CPU). Then:

- ``--batch-size`` is the *global* batch: every process draws the crop plan of the whole
  batch from the same generator (so the batches are exactly those of a one-process run) and
  cuts its own B/K rows;
- BatchNorm becomes synchronised BatchNorm: plain BatchNorm would normalise each process's
  rows by their own statistics, a different network from the one-process run.
  :class:`torch.nn.SyncBatchNorm` on CUDA; :class:`GlobalBatchNorm` (the same arithmetic,
  through differentiable all-reduces) on the CPU, where SyncBatchNorm does not run;
- G and D run wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, which averages
  their gradients over the processes, so that after N steps the weights are those of the
  one-process run with the same global batch (to fp32 rounding);
- only rank 0 writes: the run folder, config, logs, TensorBoard, samples and checkpoints.
  The statistics it logs are its own rows'. Dropout masks are drawn per process.

With one process (no torchrun) every function here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.distributed as tdist
from torch import nn

from ganlab.data.device import DeviceConvert, DeviceCrops, device_batches, draw_crop_plan, host_crops
from ganlab.errors import UsageError


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch, on any backend.

    The mean and the variance are all-reduced over the process group (two passes, for fp32
    accuracy) through :func:`torch.distributed.nn.functional.all_reduce`, whose backward
    all-reduces the gradient: the same forward and backward as one process with the whole
    batch. In eval mode, or without a process group, it is plain BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        n_local = x.numel() // x.shape[1]
        total = all_reduce(torch.cat((x.sum(dims), x.new_full((1,), float(n_local)))))
        n = total[-1]
        mean = total[:-1] / n
        centred = x - mean.reshape(shape)
        var = all_reduce(centred.square().sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                # n / (n - 1) on the device: reading n back would stop the host once per layer.
                unbiased = var.detach() * (n / (n - 1).clamp_min(1.0))
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
        y = centred * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y


def _global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm in ``module`` by a :class:`GlobalBatchNorm` sharing its
    parameters and buffers (so state dicts and optimisers are unchanged)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, _global_batchnorm(child))
    return module


@dataclass(frozen=True)
class Dist:
    """Where this process stands: its rank among ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None
    owns_group: bool = field(default=False, compare=False)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # Configuration -----------------------------------------------------------------------------
    def device_arg(self, requested: str) -> str:
        """The ``--device`` of this process: its own GPU (``cuda:LOCAL_RANK``) or the CPU."""
        return requested if not self.enabled or self.device is None else str(self.device)

    # Networks ------------------------------------------------------------------------------------
    def sync_batchnorm(self, module: nn.Module) -> nn.Module:
        if not self.enabled:
            return module
        if self.device is not None and self.device.type == "cuda":
            return nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return _global_batchnorm(module)

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DistributedDataParallel (buffers are not broadcast: synchronised
        BatchNorm already keeps the running statistics equal everywhere)."""
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        cuda = self.device is not None and self.device.type == "cuda"
        return DistributedDataParallel(
            module,
            device_ids=[self.device.index] if cuda else None,
            broadcast_buffers=False,
            gradient_as_bucket_view=True,
        )

    def seed_workers(self, seed: int, step: int = 0) -> None:
        """Different dropout masks on every process (rank 0 keeps the one-process stream)."""
        if self.enabled and self.rank > 0:
            torch.manual_seed((seed * 1_000_003 + self.rank * 7919 + step) % 2**63)

    # Data ----------------------------------------------------------------------------------------
    def rows(self, batch_size: int) -> range:
        local = batch_size // self.world_size
        return range(self.rank * local, (self.rank + 1) * local)

    def batches(self, data, batch_size: int, runtime, warn: Callable[[str], None] = lambda m: None):
        """This process's share of each global batch, ready on ``runtime.device``."""
        device = runtime.device
        if not self.enabled:
            if runtime.device_data:
                return device_batches(data, batch_size, device, warn)
            return data.batches(batch_size, device)
        rows = self.rows(batch_size)
        crop = None
        if runtime.device_data:
            try:
                crops = DeviceCrops(data, device)
                crop = lambda plan: crops.crops(plan, rows)  # noqa: E731
            except ValueError as exc:
                warn(f"--device-data: {exc}; cropping on the host instead")
        if crop is not None:
            convert = DeviceConvert(data.task, data.direction, device)
            return lambda: convert(crop(draw_crop_plan(data, batch_size)))
        crop = lambda plan: host_crops(data, plan, rows)  # noqa: E731
        return lambda: data.convert(crop(draw_crop_plan(data, batch_size)), device)

    # Coordination ------------------------------------------------------------------------------
    def broadcast(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on rank 0, its result (or its exception) on every process."""
        if not self.enabled:
            return fn()
        box: list[Any] = [None]
        if self.is_main:
            try:
                box = [("ok", fn())]
            except Exception as exc:  # every process raises it, none waits forever
                box = [("error", exc)]
        tdist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            raise value
        return value

    def close(self, finished: bool = True) -> None:
        """Leave the process group; after a finished run, only once every process is done with
        it (after a failure, a barrier could wait forever on a peer stuck in a collective)."""
        if self.owns_group and tdist.is_initialized():
            if finished:
                try:
                    tdist.barrier()
                except Exception:  # noqa: BLE001 - a peer that already failed: tear down anyway
                    pass
            tdist.destroy_process_group()


def setup(cfg) -> Dist:
    """Join the process group torchrun describes in the environment (one process: no-op)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if cfg.batch_size % world:
        raise UsageError(
            f"--batch-size {cfg.batch_size}: the global batch is split over {world} processes; "
            f"give a multiple of {world}"
        )
    if cfg.cuda_graphs == "on":
        raise UsageError("--cuda-graphs on runs in one process; use it without torchrun")
    want = cfg.device
    cuda = want.startswith("cuda") or (want == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise UsageError(f"--device {want}: no CUDA device is visible here; use --device cpu")
        if local >= torch.cuda.device_count():
            raise UsageError(f"torchrun started {world} processes but only {torch.cuda.device_count()} GPUs are visible here")
        torch.cuda.set_device(local)
        device, backend = torch.device("cuda", local), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    owns = False
    if not tdist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend}
        if cuda:
            kwargs["device_id"] = device
        tdist.init_process_group(**kwargs)
        owns = True
    return Dist(rank=rank, world_size=world, local_rank=local, device=device, owns_group=owns)


class Null:
    """Stands in for a writer or a sink on the processes that do not write (rank > 0)."""

    def __call__(self, *args, **kwargs) -> None:
        return None

    def __getattr__(self, name: str):
        return self
