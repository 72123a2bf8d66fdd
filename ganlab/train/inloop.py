"""The in-loop evaluation: validation L1 and the cheap quality metrics on a fixed validation
subset every ``--eval-every`` steps, and the sample grid (input | generated | ground truth)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganlab.color import to_uint8
from ganlab.data import to_rgb
from ganlab.io import atomic_write
from ganlab.metrics.inloop import inloop_metrics
from ganlab.train.build import Session

__all__ = ["EVAL_IMAGES", "add_png", "encode_png", "evaluate", "sample_grid", "save_png"]


def sample_grid(task: str, cond: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Rows of input | generated | ground truth, as one uint8 (3, H, W) image."""
    if task == "colorize":
        shown_input = ((cond.float() + 1.0) / 2.0).clamp(0, 1).expand(-1, 3, -1, -1)
    else:
        shown_input = ((cond.float() + 1.0) / 2.0).clamp(0, 1)
    cols = torch.stack((shown_input, to_rgb(task, cond, fake), to_rgb(task, cond, real)), dim=1)
    return to_uint8(_grid(cols.cpu()))


def _grid(rows: torch.Tensor, pad: int = 2) -> torch.Tensor:
    """(N, K, 3, H, W) images as one (3, H', W') grid of N rows and K columns, each image framed
    by ``pad`` white pixels (torchvision's make_grid layout, without importing torchvision,
    whose import costs a second or more at start-up)."""
    n, k, c, h, w = rows.shape
    out = torch.ones(c, n * (h + pad) + pad, k * (w + pad) + pad, dtype=rows.dtype)
    view = out[:, pad:, pad:].unflatten(1, (n, h + pad)).unflatten(3, (k, w + pad))  # (c, n, h+pad, k, w+pad)
    view[:, :, :h, :, :w] = rows.permute(2, 0, 3, 1, 4)
    return out


def encode_png(image_u8: torch.Tensor) -> bytes:
    """A uint8 (3, H, W) image as PNG bytes (zlib level 1: a few times faster than the default,
    files a little larger)."""
    buf = io.BytesIO()
    Image.fromarray(image_u8.permute(1, 2, 0).cpu().numpy()).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def save_png(path: Path, image: torch.Tensor | bytes) -> Path:
    """Write a uint8 (3, H, W) image, or its PNG bytes, to ``path`` atomically."""
    data = image if isinstance(image, bytes) else encode_png(image)
    return atomic_write(path, lambda fh: fh.write(data))


def add_png(writer, tag: str, png: bytes, height: int, width: int, step: int) -> None:
    """The encoded image into TensorBoard as it is (``SummaryWriter.add_image`` would encode it
    once more)."""
    get_file_writer = getattr(writer, "_get_file_writer", None)
    if get_file_writer is None:  # not torch's SummaryWriter: give it pixels
        writer.add_image(tag, torch.from_numpy(np.array(Image.open(io.BytesIO(png)))).permute(2, 0, 1), step)
        return
    from tensorboard.compat.proto.summary_pb2 import Summary

    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=png)
    get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


EVAL_IMAGES = 64  # the fixed validation subset of the in-loop evaluation


@torch.no_grad()
def _l1_on(G, data, session: Session, keep: list | None = None, limit: int = EVAL_IMAGES) -> float:
    """Mean L1 of ``G`` on the fixed centre crops of the first ``limit`` images of ``data``."""
    cfg, rt = session.cfg, session.runtime
    total, count = 0.0, 0
    for cond, real in data.fixed_batches(max(cfg.batch_size, 8), rt.device, limit):
        with rt.autocast():
            fake = G(cond.contiguous(memory_format=rt.memory_format)).float()
        total += (fake - real).abs().mean(dim=(1, 2, 3)).sum().item()
        count += cond.shape[0]
        if keep is not None:
            keep.append((cond, fake, real))
    return total / max(count, 1)


@torch.no_grad()
def evaluate(session: Session, val_data, step: int, run_dir: Path | None, writer=None, feature_extractor=None,
             train_data=None) -> dict[str, float]:
    """Validation L1 and the cheap metrics (KID too where the Inception weights are present) on
    the first ``EVAL_IMAGES`` validation images, and the sample grid. With ``train_data``, also
    ``train/L1``: the same generator (eval mode, the moving average where a trick keeps one) on
    the same kind of crops of training images, so that the train-validation gap compares like
    with like (``G/L1`` comes from G in train mode, with dropout), on as many training images as
    there are validation images in the subset."""
    cfg = session.cfg
    G = session.stack.eval_generator(session.G, session.ctx)
    was_training = G.training
    G.eval()
    kept: list = []
    try:
        metrics = {"val/L1": _l1_on(G, val_data, session, kept)}
        if train_data is not None:
            # As many training images as validation images: the two means are equally noisy, and
            # a small validation set does not pay for generating the whole training subset.
            metrics["train/L1"] = _l1_on(G, train_data, session, limit=max(1, sum(c.shape[0] for c, _, _ in kept)))
    finally:
        G.train(was_training)
    cond, fake, real = (torch.cat(parts) for parts in zip(*kept))
    real_u8 = to_uint8(to_rgb(cfg.task, cond, real))
    fake_u8 = to_uint8(to_rgb(cfg.task, cond, fake))
    metrics.update(inloop_metrics(real_u8, fake_u8, seed=cfg.seed, feature_extractor=feature_extractor))
    n = cfg.val_samples
    grid = sample_grid(cfg.task, cond[:n], fake[:n], real[:n])
    png = encode_png(grid)  # once, for the file and for TensorBoard
    if writer is not None:
        add_png(writer, "samples/input|generated|truth", png, grid.shape[1], grid.shape[2], step)
    if run_dir is not None:
        (run_dir / "samples").mkdir(exist_ok=True)
        save_png(run_dir / "samples" / f"step-{step + 1:07d}.png", png)  # named by steps done, as checkpoints are
    return metrics
