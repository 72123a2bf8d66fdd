"""The in-loop evaluation: validation L1 and the cheap quality metrics on a fixed validation
subset every ``--eval-every`` steps, and the sample grid (input | generated | ground truth)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from ganlab.color import to_uint8
from ganlab.data import to_rgb
from ganlab.io import atomic_write
from ganlab.metrics.inloop import inloop_metrics
from ganlab.train.build import Session

__all__ = ["EVAL_IMAGES", "evaluate", "sample_grid", "save_png"]


def sample_grid(task: str, cond: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Rows of input | generated | ground truth, as one uint8 (3, H, W) image."""
    if task == "colorize":
        shown_input = ((cond.float() + 1.0) / 2.0).clamp(0, 1).expand(-1, 3, -1, -1)
    else:
        shown_input = ((cond.float() + 1.0) / 2.0).clamp(0, 1)
    cols = torch.stack((shown_input, to_rgb(task, cond, fake), to_rgb(task, cond, real)), dim=1).flatten(0, 1)
    return to_uint8(make_grid(cols.cpu(), nrow=3, padding=2, pad_value=1.0))


def save_png(path: Path, image_u8: torch.Tensor) -> Path:
    arr = image_u8.permute(1, 2, 0).cpu().numpy()
    return atomic_write(path, lambda fh: Image.fromarray(arr).save(fh, format="PNG"))


EVAL_IMAGES = 64  # the fixed validation subset of the in-loop evaluation


@torch.no_grad()
def _l1_on(G, data, session: Session, keep: list | None = None) -> float:
    """Mean L1 of ``G`` on the fixed centre crops of the first ``EVAL_IMAGES`` images of ``data``."""
    cfg, rt = session.cfg, session.runtime
    total, count = 0.0, 0
    for cond, real in data.fixed_batches(max(cfg.batch_size, 8), rt.device, EVAL_IMAGES):
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
    with like (``G/L1`` comes from G in train mode, with dropout)."""
    cfg = session.cfg
    G = session.stack.eval_generator(session.G, session.ctx)
    was_training = G.training
    G.eval()
    kept: list = []
    try:
        metrics = {"val/L1": _l1_on(G, val_data, session, kept)}
        if train_data is not None:
            metrics["train/L1"] = _l1_on(G, train_data, session)
    finally:
        G.train(was_training)
    cond, fake, real = (torch.cat(parts) for parts in zip(*kept))
    real_u8 = to_uint8(to_rgb(cfg.task, cond, real))
    fake_u8 = to_uint8(to_rgb(cfg.task, cond, fake))
    metrics.update(inloop_metrics(real_u8, fake_u8, seed=cfg.seed, feature_extractor=feature_extractor))
    n = cfg.val_samples
    grid = sample_grid(cfg.task, cond[:n], fake[:n], real[:n])
    if writer is not None:
        writer.add_image("samples/input|generated|truth", grid, step)
    if run_dir is not None:
        (run_dir / "samples").mkdir(exist_ok=True)
        save_png(run_dir / "samples" / f"step-{step + 1:07d}.png", grid)  # named by steps done, as checkpoints are
    return metrics
