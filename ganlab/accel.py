"""The GPU fast paths of the trainer, each behind its flag (see :mod:`ganlab.runtime`).

- :class:`DeviceCrops` (``--device-data``): the decoded uint8 images live on the device in
  one flat buffer; a batch's random crops and flips are one gather there, followed by the
  float and Lab conversion, batched. The host only draws the random numbers (the same draws,
  from the same generator, as the host path, so a run and its checkpoints do not depend on the
  flag) and sends six integers per image.
- :class:`GraphedStep` (``--cuda-graphs``): the whole plain step (G forward, the D update, the
  G update, both fused Adam steps, the statistics) captured once in a CUDA graph and replayed;
  for the batch-1 recipe, where launching hundreds of small kernels costs more than running
  them.
- :func:`portable_optimizer_state`: an optimiser's state as a checkpoint keeps it, loadable
  with or without CUDA graphs.

The crop plan (:func:`draw_crop_plan`) is also what shards a global batch over processes
(:mod:`ganlab.distributed`): every process draws the plan of the whole batch and crops its rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import torch

from ganlab.stats import StatsBus, report

Batch = tuple[torch.Tensor, torch.Tensor]


# ---------------------------------------------------------------------------------------------
# Crops
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CropPlan:
    """What a batch draws: the image of each row and three uniform numbers (top, left, flip)."""

    indices: list[int]
    uniforms: list[list[float]]

    def geometry(self, row: int, height: int, width: int, size: int) -> tuple[int, int, bool]:
        r = self.uniforms[row]
        return int(r[0] * (height - size + 1)), int(r[1] * (width - size + 1)), r[2] < 0.5


def draw_crop_plan(data, batch_size: int) -> CropPlan:
    """Advance ``data``'s generator and epoch order exactly as ``data.draw_uint8`` does."""
    uniforms = torch.rand(batch_size, 3, generator=data.generator).tolist()
    indices = [data._next_index() for _ in range(batch_size)]
    return CropPlan(indices, uniforms)


def host_crops(data, plan: CropPlan, rows: range) -> torch.Tensor:
    """The crops of ``rows`` of a plan, cut on the host: uint8 (len(rows), C, size, size)."""
    crops = []
    for row in rows:
        img = data.images[plan.indices[row]]
        top, left, flip = plan.geometry(row, img.shape[-2], img.shape[-1], data.size)
        crops.append(data._crop(img, top, left, flip))
    return torch.stack(crops)


class DeviceCrops:
    """All cached images of a split on ``device``; crops and flips as one gather there.

    Raises :class:`ValueError` when an image is not cached in memory (past ``--cache-gb``) or
    the images would take more than ``max_fraction`` of the device's memory.
    """

    def __init__(self, data, device: torch.device, max_fraction: float = 0.25):
        items = data.images.items
        if any(item.tensor is None for item in items):
            raise ValueError("not every image is cached in memory (raise --cache-gb)")
        tensors = [item.tensor for item in items]
        channels = {t.shape[0] for t in tensors}
        if len(channels) != 1:
            raise ValueError("the images have different channel counts")
        nbytes = sum(t.numel() for t in tensors)
        device = torch.device(device)
        if device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            if nbytes > max_fraction * total:
                raise ValueError(f"the images take {nbytes / 2**30:.1f} GiB, more than {max_fraction:.0%} of the GPU's memory")
        self.data, self.device, self.channels = data, device, channels.pop()
        self.flat = torch.cat([t.reshape(-1) for t in tensors]).to(device)
        offsets, shapes, start = [], [], 0
        for t in tensors:
            offsets.append(start)
            shapes.append((t.shape[-2], t.shape[-1]))
            start += t.numel()
        self.offsets, self.shapes = offsets, shapes
        s = data.size
        self._ar = torch.arange(s, device=device)
        self._rev = s - 1 - self._ar
        self._chan = torch.arange(self.channels, device=device)
        self._pin = device.type == "cuda"

    def crops(self, plan: CropPlan, rows: range) -> torch.Tensor:
        """The crops of ``rows`` of ``plan``: uint8 (len(rows), C, size, size) on the device."""
        s = self.data.size
        params = []
        for row in rows:
            i = plan.indices[row]
            h, w = self.shapes[i]
            top, left, flip = plan.geometry(row, h, w, s)
            params.append((self.offsets[i], h * w, w, top, left, int(flip)))
        host = torch.tensor(params, dtype=torch.int64)
        if self._pin:
            host = host.pin_memory()
        p = host.to(self.device, non_blocking=True)
        offset, plane, width, top, left, flip = (p[:, k] for k in range(6))
        cols = left[:, None] + torch.where(flip[:, None].bool(), self._rev, self._ar)  # (n, s)
        ys = top[:, None] + self._ar  # (n, s)
        index = (
            (offset[:, None] + self._chan[None, :] * plane[:, None])[:, :, None, None]
            + (ys * width[:, None])[:, None, :, None]
            + cols[:, None, None, :]
        )
        return self.flat[index]

    def draw_uint8(self, batch_size: int) -> torch.Tensor:
        """Same crops as ``data.draw_uint8(batch_size)``, made on the device."""
        return self.crops(draw_crop_plan(self.data, batch_size), range(batch_size))

    def batches(self, batch_size: int) -> Callable[[], Batch]:
        convert = DeviceConvert(self.data.task, self.data.direction, self.device)
        return lambda: convert(self.draw_uint8(batch_size))


class DeviceConvert:
    """``PairedImages.convert`` for batches already on the device, with the colour constants
    made once: building them per batch (``torch.tensor(..., device=cuda)``) is a host-to-device
    copy that waits for the GPU, once per step. Same arithmetic, same results."""

    def __init__(self, task: str, direction: str, device: torch.device):
        from ganlab import color

        self.task, self.direction = task, direction
        self.matrix = torch.tensor(color._XYZ_FROM_RGB, dtype=torch.float32, device=device)
        self.white = torch.tensor(color._WHITE_D65, dtype=torch.float32, device=device).view(3, 1, 1)

    def lab(self, rgb: torch.Tensor) -> torch.Tensor:
        from ganlab import color

        lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
        xyz = color._apply(self.matrix, lin) / self.white
        f = torch.where(xyz > color._EPS, xyz.clamp_min(color._EPS) ** (1.0 / 3.0), color._KAPPA * xyz + 16.0 / 116.0)
        fx, fy, fz = f.unbind(-3)
        return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)

    def __call__(self, batch: torch.Tensor) -> Batch:
        from ganlab import color

        if self.task == "colorize":
            lab = self.lab(batch.float() / 255.0)
            return lab[..., :1, :, :] / color.L_SCALE - 1.0, lab[..., 1:, :, :] / color.AB_SCALE
        x = batch.float() / 127.5 - 1.0
        a, b = x[:, :3], x[:, 3:]
        return (a, b) if self.direction == "AtoB" else (b, a)


def device_batches(data, batch_size: int, device: torch.device, warn: Callable[[str], None] = lambda m: None) -> Callable[[], Batch]:
    """Batches made on ``device`` (crops, flips, Lab); the host path where that is not possible."""
    try:
        return DeviceCrops(data, device).batches(batch_size)
    except ValueError as exc:
        warn(f"--device-data: {exc}; cropping on the host instead")
        return data.batches(batch_size, device)


# ---------------------------------------------------------------------------------------------
# CUDA graphs
# ---------------------------------------------------------------------------------------------


class GraphedStep:
    """The plain pix2pix step captured in one CUDA graph (``--cuda-graphs on``).

    The first ``warmup`` iterations run eagerly on a side stream (they initialise cuDNN's
    choices and Adam's state, and they are real training steps); the next one is captured and
    every iteration from then on copies its batch into the graph's input buffers and replays.
    What the graph needs, and what this sets up:

    - Adam runs fused and ``capturable`` with its learning rate a device tensor, so the
      learning-rate schedule writes into the tensor the graph reads
      (:func:`ganlab.trainer.set_learning_rates` does);
    - the gradients are allocated inside the capture and never set to None afterwards;
    - dropout draws from the CUDA generator, which a graph advances on every replay;
    - the statistics the step reports inside the capture are gathered into one device vector
      that each replay refreshes; it is copied once per iteration and reported as usual.

    Only the plain step can be captured: a trick runs Python between the step's kernels (the
    configuration refuses ``--cuda-graphs on`` with ``--trick``). L1 pre-training runs eagerly.
    """

    def __init__(self, step, warmup: int = 3):
        self.step = step
        self.warmup = warmup
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.names: list[str] = []
        self.constants: list[tuple[str, float]] = []
        self._side: torch.cuda.Stream | None = None  # one side stream for the warm-up and the capture

    def __getattr__(self, name: str):  # G, D, ctx, generate, ... of the eager step
        return getattr(self.__dict__["step"], name)

    def pretrain(self, next_batch: Callable[[], Batch]) -> None:
        self.step.pretrain(next_batch)

    def _make_capturable(self) -> None:
        for opt in (self.step.opt_g, self.step.opt_d):
            for group in opt.param_groups:
                group["capturable"] = True
                if not isinstance(group["lr"], torch.Tensor):
                    device = group["params"][0].device
                    group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
                for p in group["params"]:
                    # Non-fused Adam keeps its step counter on the host; a captured step needs
                    # it beside the parameter.
                    st = opt.state.get(p)
                    if st and isinstance(st.get("step"), torch.Tensor) and st["step"].device != p.device:
                        st["step"] = st["step"].to(device=p.device, dtype=torch.float32)

    def _capture(self, cond: torch.Tensor, real: torch.Tensor) -> None:
        self._make_capturable()
        self.static_cond = cond.clone(memory_format=torch.preserve_format)
        self.static_real = real.clone(memory_format=torch.preserve_format)
        self.step.opt_g.zero_grad(set_to_none=True)
        self.step.opt_d.zero_grad(set_to_none=True)
        bus = StatsBus()
        graph = torch.cuda.CUDAGraph()
        with bus.activate(), warnings.catch_warnings(), torch.cuda.device(cond.device):
            warnings.simplefilter("ignore")
            with torch.cuda.graph(graph, stream=self._side_stream(cond.device)):
                self.step(lambda: (self.static_cond, self.static_real))
                tensors, self.names, self.constants = [], [], []
                for name, values in bus._buf.get(bus.step, {}).items():
                    ts = [v for v in values if isinstance(v, torch.Tensor)]
                    if ts:
                        self.names.append(name)
                        tensors.append(torch.stack([t.float().reshape(()) for t in ts]).mean())
                    else:
                        self.constants.append((name, sum(values) / len(values)))
                self.static_stats = torch.stack(tensors) if tensors else torch.zeros(0, device=cond.device)
        self.graph = graph

    def _side_stream(self, device: torch.device) -> torch.cuda.Stream:
        """One side stream, on the batch's GPU, for the warm-up steps and the capture."""
        if self._side is None:
            self._side = torch.cuda.Stream(device=device)
        return self._side

    def __call__(self, next_batch: Callable[[], Batch]) -> None:
        cond, real = next_batch()
        if self.graph is None and self.calls < self.warmup:
            side = self._side_stream(cond.device)
            side.wait_stream(torch.cuda.current_stream(cond.device))
            with torch.cuda.stream(side):
                self.step(lambda: (cond, real))
            torch.cuda.current_stream(cond.device).wait_stream(side)
            self.calls += 1
            return
        if self.graph is None:
            self._capture(cond, real)
        else:
            self.static_cond.copy_(cond)
            self.static_real.copy_(real)
        self.graph.replay()
        values = self.static_stats.clone()
        for i, name in enumerate(self.names):
            report(name, values[i])
        for name, value in self.constants:
            report(name, value)
        self.calls += 1


def portable_optimizer_state(opt: torch.optim.Optimizer) -> dict:
    """``opt.state_dict()`` with plain-number learning rates and ``capturable`` off, so that a
    checkpoint written under ``--cuda-graphs`` loads into any run (and the other way round)."""
    state = opt.state_dict()
    for group in state["param_groups"]:
        if isinstance(group.get("lr"), torch.Tensor):
            group["lr"] = float(group["lr"])
        if "capturable" in group:
            group["capturable"] = False
    return state
