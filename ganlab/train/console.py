"""What a training run prints: the banner, the progress bar with the latest losses, the summary."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ganlab.config import TrainConfig
from ganlab.nets import count_params
from ganlab.train.build import Session
from ganlab.train.checkpoint import checkpoint_files
from ganlab.train.result import RunResult

__all__ = ["banner", "loss_info", "progress_bar", "summary"]


def progress_bar(console, enabled: bool):
    return Progress(
        TextColumn("[bold]step"),
        MofNCompleteColumn(),
        BarColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=not enabled,
        transient=False,
    )


def loss_info(row: dict[str, float]) -> str:
    keys = (("perf/img_per_s", "img/s", "{:.1f}"), ("D/total", "D", "{:.3f}"), ("G/adv", "G_adv", "{:.3f}"),
            ("G/L1", "L1", "{:.4f}"), ("pretrain/L1", "L1", "{:.4f}"))
    return "  ".join(fmt.format(row[k]).join((f"{label} ", "")) for k, label, fmt in keys if k in row)


def banner(console, cfg, session: Session, train_data, val_data, run_dir: Path, runtime, total: int, start: int) -> None:
    data = cfg.data_label or "built-in sample set (scikit-image photographs)"
    console.print(f"[bold]ganlab train[/] ({cfg.task}): [cyan]{escape(str(run_dir))}[/]", highlight=False)
    console.print(
        f"  data: {data}: {len(train_data)} train / {len(val_data)} val images, {train_data.skipped.summary()}",
        highlight=False, markup=False,
    )
    console.print(
        f"  nets: {cfg.generator} G ({count_params(session.G) / 1e6:.2f}M), "
        + (f"{cfg.discriminator} D ({count_params(session.D) / 1e6:.2f}M)" if session.D is not None
           else "no D (--gan-mode none: the L1-only control)")
        + f", {cfg.size}px, batch {cfg.batch_size}, {total} steps"
        + (f" ({cfg.pretrain_steps} L1 pre-training)" if cfg.pretrain_steps else ""),
        highlight=False,
    )
    order = " -> ".join(f"{t.name}" for t in session.stack.tricks) or "none (plain pix2pix)"
    console.print(f"  tricks (in order): {order}", highlight=False)
    console.print(f"  device: {runtime.describe()}", highlight=False)
    if runtime.why():
        console.print(f"  chosen: {runtime.why()}", highlight=False, markup=False)


def summary(console, result: RunResult, cfg: TrainConfig) -> None:
    table = Table(title=f"run {result.run_dir.name}: {result.step} steps in {result.seconds:.0f} s", show_header=True)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("images/s", f"{result.images_per_second:.1f}")
    for key in ("D/loss_real", "D/loss_fake", "G/adv", "G/L1", "D/acc_real", "D/acc_fake"):
        if key in result.last:
            table.add_row(key, f"{result.last[key]:.4f}")
    for key, value in result.metrics.items():
        table.add_row(key, f"{value:.4f}")
    console.print(table)
    ckpts = checkpoint_files(result.run_dir)
    console.print(f"TensorBoard logs: {result.run_dir}", highlight=False, markup=False)
    console.print(f"samples:          {result.run_dir / 'samples'}", highlight=False, markup=False)
    if ckpts:
        console.print(f"checkpoint:       {ckpts[0]}", highlight=False, markup=False)
    if result.best:
        b = result.best
        console.print(f"best checkpoint:  {result.run_dir / b['checkpoint']} (step {b['step']}, {b['metric']} {b['value']:.4g})",
                      highlight=False, markup=False)
    console.print(f"look at it with:  tensorboard --logdir {result.run_dir.parent}", highlight=False, markup=False)
    if cfg.task == "colorize":
        console.print(f"colourise photos: ganlab colorize {result.run_dir} PHOTO_OR_FOLDER --out colorized", highlight=False, markup=False)
