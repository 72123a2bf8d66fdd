"""Batches made on the training device (``--device-data``, see :mod:`ganlab.runtime`).

:class:`DeviceCrops`: the decoded uint8 images live on the device in one flat buffer; a
batch's random crops and flips are one gather there, followed by the float and Lab conversion,
batched. The host only draws the random numbers (the same draws, from the same generator, as
the host path, so a run and its checkpoints do not depend on the flag) and sends six integers
per image.

The crop plan (:func:`draw_crop_plan`) is also what shards a global batch over processes
(:mod:`ganlab.train.distributed`): every process draws the plan of the whole batch and crops
its rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ganlab.data import to_network_pair

Batch = tuple[torch.Tensor, torch.Tensor]

__all__ = ["CropPlan", "DeviceConvert", "DeviceCrops", "device_batches", "draw_crop_plan", "host_crops"]


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
    indices = [data.next_index() for _ in range(batch_size)]
    return CropPlan(indices, uniforms)


def host_crops(data, plan: CropPlan, rows: range) -> torch.Tensor:
    """The crops of ``rows`` of a plan, cut on the host: uint8 (len(rows), C, size, size)."""
    crops = []
    for row in rows:
        img = data.images[plan.indices[row]]
        top, left, flip = plan.geometry(row, img.shape[-2], img.shape[-1], data.size)
        crops.append(data.crop(img, top, left, flip))
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
    """``PairedImages.convert`` for batches already on the device (the same
    :func:`ganlab.data.to_network_pair`; the colour constants are made once per device)."""

    def __init__(self, task: str, direction: str, device: torch.device):
        self.task, self.direction, self.device = task, direction, device

    def __call__(self, batch: torch.Tensor) -> Batch:
        return to_network_pair(self.task, self.direction, batch)


def device_batches(data, batch_size: int, device: torch.device, warn: Callable[[str], None] = lambda m: None) -> Callable[[], Batch]:
    """Batches made on ``device`` (crops, flips, Lab); the host path where that is not possible."""
    try:
        return DeviceCrops(data, device).batches(batch_size)
    except ValueError as exc:
        warn(f"--device-data: {exc}; cropping on the host instead")
        return data.batches(batch_size, device)
