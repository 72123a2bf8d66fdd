"""Timing warm training steps side by side, with model-FLOPs utilisation (``ganlab bench``).

Every variant is built by :func:`ganlab.train.build_session` and runs :meth:`Session.iterate`,
the training loop's own body; only the ``plain`` reference loop is written out here.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from rich.table import Table

from ganlab.config import TrainConfig
from ganlab.data import ImageSet, PairedImages, build_datasets
from ganlab.data.images import Skipped
from ganlab.errors import UsageError
from ganlab.runtime import cpu_capabilities, runtime_for
from ganlab.stats import StatsBus
from ganlab.train.build import build_networks, build_session, build_stack
from ganlab.train.distributed import Dist
from ganlab.train.flops import PassCounter, describe, model_flops, plan_passes, step_flops
from ganlab.train.memory import check_fits, peak_rss_bytes
from ganlab.trick._stack import TrickStack

__all__ = ["PEAKS", "SETTINGS", "BenchOptions", "bench", "cpu_peak_flops", "default_variants", "device_peak_flops", "gpu_peak_flops",
           "parse_variant", "plain_step"]

SETTINGS = ("channels-last", "cudnn-benchmark", "fused-adam", "device-data", "compile", "cuda-graphs")

# Dense peak rates in TFLOP/s: bf16 tensor cores, TF32 tensor cores (fp32 matmuls and convs
# under allow_tf32), plain fp32. Most specific names first.
PEAKS: tuple[tuple[str, dict[str, float]], ...] = (
    ("GH200", {"bf16": 989.0, "tf32": 494.0, "fp32": 67.0}),
    ("H200", {"bf16": 989.0, "tf32": 494.0, "fp32": 67.0}),
    ("H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.0}),
    ("H100 NVL", {"bf16": 835.0, "tf32": 418.0, "fp32": 60.0}),
    ("H100", {"bf16": 989.0, "tf32": 494.0, "fp32": 67.0}),
    ("H800", {"bf16": 989.0, "tf32": 494.0, "fp32": 67.0}),
    ("B200", {"bf16": 2250.0, "tf32": 1100.0, "fp32": 80.0}),
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("A800", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L40S", {"bf16": 362.0, "tf32": 183.0, "fp32": 91.6}),
    ("L40", {"bf16": 181.0, "tf32": 90.5, "fp32": 90.5}),
    ("L4", {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    ("A10G", {"bf16": 70.0, "tf32": 35.0, "fp32": 31.2}),
    ("A10", {"bf16": 125.0, "tf32": 62.5, "fp32": 31.2}),
    ("RTX 6000 Ada", {"bf16": 364.0, "tf32": 182.0, "fp32": 91.1}),
    ("RTX 4090", {"bf16": 165.2, "tf32": 82.6, "fp32": 82.6}),
    ("RTX 3090", {"bf16": 71.0, "tf32": 35.6, "fp32": 35.6}),
    ("V100", {"fp32": 15.7}),
    ("T4", {"fp32": 8.1}),
)


# ---------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    plain: bool = False
    overrides: tuple[tuple[str, str], ...] = ()  # TrainConfig fields

    @property
    def cuda_graphs(self) -> bool:
        return dict(self.overrides).get("cuda_graphs") == "on"


def parse_variant(text: str) -> Variant:
    tokens = [t.strip() for t in text.split("+")]
    if not all(tokens):
        raise UsageError(f"--variants {text}: an empty setting; join settings with '+', e.g. trainer+compile")
    if "plain" in tokens:
        if tokens != ["plain"]:
            raise UsageError(f"--variants {text}: plain is the reference loop and takes no settings")
        return Variant("plain", plain=True)
    overrides: dict[str, str] = {}
    for tok in tokens:
        if tok == "trainer":
            continue
        if tok in ("fp32", "bf16"):
            overrides["precision"] = tok
            continue
        on = not tok.startswith("no-")
        name = tok[3:] if not on else tok
        if name not in SETTINGS:
            known = ", ".join(("trainer", "plain", "fp32", "bf16") + SETTINGS)
            raise UsageError(f"--variants {text}: unknown setting '{tok}'; known: {known} (and no-<setting>)")
        overrides[name.replace("-", "_")] = "on" if on else "off"
    return Variant(text, overrides=tuple(sorted(overrides.items())))


def default_variants(cuda: bool, batch_size: int, tricks: bool) -> list[str]:
    if not cuda:
        return ["trainer"] if tricks else ["plain", "trainer"]
    names = ["fp32", "trainer", "trainer+compile"] if tricks else ["plain", "fp32", "trainer", "trainer+compile"]
    if batch_size == 1 and not tricks:
        names.append("trainer+cuda-graphs")
    return names


# ---------------------------------------------------------------------------------------------
# Device facts
# ---------------------------------------------------------------------------------------------


def cpu_peak_flops(threads: int | None = None, precision: str = "fp32", caps: dict | None = None) -> tuple[float, str]:
    """A CPU's peak for ``precision``, estimated: threads x clock x FLOPs per cycle of the units
    that run it (bf16: AMX tiles, 1024 FLOP/cycle per core, or AVX512-BF16 dot products, twice
    the fp32 FMA rate; fp32: the vector FMA units)."""
    threads = threads or torch.get_num_threads()
    caps = cpu_capabilities() if caps is None else caps
    mhz, flags = 0.0, set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "cpu MHz":
                    mhz = max(mhz, float(value))
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    if not mhz:
        mhz = 2500.0
    if "avx512f" in flags or caps.get("avx512_f"):
        per_cycle, isa = 64, "AVX-512"
    elif ("avx2" in flags and "fma" in flags) or caps.get("avx2"):
        per_cycle, isa = 32, "AVX2+FMA"
    else:
        per_cycle, isa = 8, "SSE"
    kind = "fp32"
    if precision == "bf16":
        kind = "bf16"
        if caps.get("amx_bf16"):
            per_cycle, isa = 1024, "AMX"
        elif caps.get("avx512_bf16"):
            per_cycle, isa = 128, "AVX512-BF16"
        else:
            isa += ", bf16 emulated at the fp32 rate"
    peak = threads * mhz * 1e6 * per_cycle
    return peak, f"estimated: {threads} threads x {mhz / 1000:.2f} GHz x {per_cycle} {kind} FLOP/cycle ({isa})"


def device_peak_flops(device: torch.device, precision: str, override_tflops: float | None = None) -> tuple[float | None, str]:
    """(peak FLOP/s, where the figure comes from); None when the device is not in the table."""
    if override_tflops is not None:
        return override_tflops * 1e12, "--peak-tflops"
    if device.type != "cuda":
        return cpu_peak_flops(precision=precision)
    kind = "bf16" if precision == "bf16" else ("tf32" if torch.backends.cudnn.allow_tf32 else "fp32")
    return gpu_peak_flops(torch.cuda.get_device_name(device), kind)


def gpu_peak_flops(name: str, kind: str) -> tuple[float | None, str]:
    """The table's dense peak of the GPU called ``name`` for ``kind`` (bf16, tf32 or fp32)."""
    for key, rates in PEAKS:
        if key.lower() in name.lower():
            if kind in rates:
                return rates[kind] * 1e12, f"{key} {kind} dense (table)"
            return None, f"{name}: no {kind} rate in the table; give --peak-tflops"
    return None, f"{name} is not in the table of peaks; give --peak-tflops"


# ---------------------------------------------------------------------------------------------
# Data: the trainer's pipeline on images held in memory
# ---------------------------------------------------------------------------------------------


def synthetic_images(cfg, n: int = 16):
    """``n`` smooth colour images (uint8, decoded once) as the trainer's training split."""
    load = cfg.effective_load_size or cfg.size
    rng = np.random.default_rng(cfg.seed)
    channels = 6 if cfg.task == "paired" else 3

    def make(i: int) -> torch.Tensor:
        h, w = load, load + 32 * (i % 3)
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        chans = [0.5 + 0.45 * np.sin(2 * np.pi * (rng.uniform(1, 6) * xx + rng.uniform(1, 6) * yy) + rng.uniform(0, 6)) for _ in range(channels)]
        img = (np.clip(np.stack(chans), 0, 1) * 255).astype(np.uint8)
        return torch.from_numpy(img)

    return PairedImages(ImageSet(list(range(n)), make, float("inf"), workers=1), cfg.task, cfg.direction, cfg.size, Skipped())


# ---------------------------------------------------------------------------------------------
# Runners
# ---------------------------------------------------------------------------------------------


@dataclass
class Runner:
    """One variant, built and ready to run steps."""

    variant: Variant
    batch_size: int
    device: torch.device
    precision: str
    run: Callable[[], None]  # one training step
    counter: Any = None  # a ganlab.train.flops.PassCounter
    keep: Any = None  # what the step needs alive (networks, the counter's hooks)
    cudnn_benchmark: bool = False  # a process-wide switch: set before each of its steps
    times_ms: list[float] = field(default_factory=list)
    round_ms: list[float] = field(default_factory=list)  # mean step time of each round
    syncs: int = 0
    timed_steps: int = 0
    peak_bytes: int | None = None  # what the variant holds + the largest transient of its timed steps
    warmup_peak_bytes: int | None = None  # the peak of building and warming up (cuDNN search, compile)
    resident_bytes: int = 0
    warmup_steps: int = 0
    steps_done: int = 0


def _trainer_runner(variant: Variant, cfg: TrainConfig, data, log_every: int, console_warn) -> Runner:
    vcfg = cfg.replace(**dict(variant.overrides)).validate()
    runtime = runtime_for(vcfg)
    session = build_session(vcfg, runtime, total=10**9)
    data.seed(vcfg.seed)
    next_batch = Dist().batches(data, vcfg.batch_size, runtime, console_warn)
    if runtime.channels_last:  # as the trainer does
        raw = next_batch
        next_batch = lambda: tuple(t.contiguous(memory_format=torch.channels_last) for t in raw())  # noqa: E731
    bus = StatsBus()
    counter = PassCounter()
    step_fn = session.step_fn
    inner = step_fn.__dict__.get("step", step_fn)  # the eager step inside a CUDA-graph wrapper
    runner = Runner(variant, vcfg.batch_size, runtime.device, runtime.precision, run=lambda: None, counter=counter,
                    cudnn_benchmark=runtime.cudnn_benchmark)
    attached = counter.attach(inner)  # counts for the runner's lifetime (Python counters only)
    attached.__enter__()

    def one_step() -> None:
        step = runner.steps_done
        with bus.activate():
            bus.step = step
            session.iterate(step, next_batch)
            if (step + 1) % log_every == 0:
                bus.flush()
        counter.end_step()
        runner.steps_done += 1

    runner.run = one_step
    runner.keep = (session, attached)
    return runner


def plain_step(G, D, opt_g, opt_d, A: torch.Tensor, B: torch.Tensor, lambda_l1: float) -> torch.Tensor:
    """One pix2pix update written the plain way (the reference the trainer is measured against);
    returns the generator's loss."""
    fake = G(A)
    opt_d.zero_grad()
    pf = D(torch.cat((A, fake.detach()), 1))
    pr = D(torch.cat((A, B), 1))
    loss_d = (F.binary_cross_entropy_with_logits(pf, torch.zeros_like(pf))
              + F.binary_cross_entropy_with_logits(pr, torch.ones_like(pr))) * 0.5
    loss_d.backward()
    opt_d.step()
    D.requires_grad_(False)
    opt_g.zero_grad()
    pf = D(torch.cat((A, fake), 1))
    loss_g = F.binary_cross_entropy_with_logits(pf, torch.ones_like(pf)) + F.l1_loss(fake, B) * lambda_l1
    loss_g.backward()
    opt_g.step()
    D.requires_grad_(True)
    return loss_g


def _plain_runner(variant: Variant, cfg, data) -> Runner:
    """A plain eager loop: what a user writes by hand around the same networks."""
    device = runtime_for(cfg).device
    torch.manual_seed(cfg.seed)
    _, G, D = build_networks(cfg, TrickStack([], cfg.gan_mode))
    G, D = G.to(device), D.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    data.seed(cfg.seed)
    batches = [data.convert(data.draw_uint8(cfg.batch_size), device) for _ in range(4)]
    lam = cfg.lambda_l1
    counter = PassCounter()
    runner = Runner(variant, cfg.batch_size, device, "fp32", run=lambda: None, counter=counter)

    def one_step() -> None:
        A, B = batches[runner.steps_done % len(batches)]
        plain_step(G, D, opt_g, opt_d, A, B, lam).item()  # a hand-written loop reads its loss every step
        counter.current = plan_passes(1, 1)
        counter.end_step()
        runner.steps_done += 1

    runner.run = one_step
    runner.keep = (G, D, opt_g, opt_d)
    return runner


class _Clock:
    """Per-step times: CUDA events (read once, after the round) or the host clock."""

    def __init__(self, device: torch.device, n: int):
        self.cuda = device.type == "cuda"
        self.device = device
        if self.cuda:
            self.events = [torch.cuda.Event(enable_timing=True) for _ in range(n + 1)]
        else:
            self.stamps: list[float] = []

    def mark(self, i: int) -> None:
        if self.cuda:
            self.events[i].record(torch.cuda.current_stream(self.device))
        else:
            self.stamps.append(time.perf_counter())

    def times_ms(self) -> list[float]:
        if self.cuda:
            self.events[-1].synchronize()
            return [a.elapsed_time(b) for a, b in zip(self.events, self.events[1:])]
        return [(b - a) * 1e3 for a, b in zip(self.stamps, self.stamps[1:])]


@contextlib.contextmanager
def _count_syncs(runner: Runner, enabled: bool):
    """On CUDA, count the operations that make the host wait for the device."""
    if not enabled:
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")
    runner.syncs += sum("synchroniz" in str(w.message) for w in caught)


def _use(runner: Runner) -> None:
    """The process-wide settings of ``runner``'s variant (cudnn.benchmark is global in torch)."""
    if runner.device.type == "cuda":
        torch.backends.cudnn.benchmark = runner.cudnn_benchmark


def _time_round(runner: Runner, steps: int) -> None:
    cuda = runner.device.type == "cuda"
    _use(runner)
    clock = _Clock(runner.device, steps)
    if cuda:
        torch.cuda.synchronize(runner.device)
        torch.cuda.reset_peak_memory_stats(runner.device)
        base = torch.cuda.memory_allocated(runner.device)
    with _count_syncs(runner, cuda and not runner.variant.plain):
        for i in range(steps):
            clock.mark(i)
            runner.run()
        clock.mark(steps)
    times = clock.times_ms()
    runner.times_ms += times
    runner.round_ms.append(statistics.fmean(times))
    runner.timed_steps += steps
    if cuda:
        transient = torch.cuda.max_memory_allocated(runner.device) - base
        runner.peak_bytes = max(runner.peak_bytes or 0, runner.resident_bytes + transient)


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------


def base_config(settings: dict[str, Any]) -> TrainConfig:
    """The configuration every variant starts from: ``ganlab train``'s settings as given to the
    bench (its own defaults for size and batch), no pretrained backbone, one step."""
    return TrainConfig.from_dict({**settings, "backbone_weights": "none", "steps": 1}, "flags").validate()


@dataclass(frozen=True)
class BenchOptions:
    """What ``ganlab bench`` is asked besides the model settings (its flags; the command line
    builds one)."""

    steps: int = 20  # timed steps per variant and round
    warmup: int = 5  # untimed steps per variant first
    rounds: int = 3  # interleaved timing rounds
    variants: str | None = None  # comma-separated variant names (None: the device's default set)
    peak_tflops: float | None = None  # the device's peak for MFU (None: the table of known devices)


def bench(options: BenchOptions, console, settings: dict[str, Any]) -> dict[str, Any]:
    """Build, warm up and time every variant of ``options.variants`` on ``settings`` (TrainConfig
    fields); print the table and return every figure."""
    for flag, value, low in (("steps", options.steps, 1), ("warmup", options.warmup, 0), ("rounds", options.rounds, 1)):
        if value < low:
            raise UsageError(f"--{flag} {value}: must be a whole number >= {low}")
    if options.peak_tflops is not None and not (math.isfinite(options.peak_tflops) and options.peak_tflops > 0):
        raise UsageError(f"--peak-tflops {options.peak_tflops}: must be a positive number")
    cfg = base_config(settings)
    if cfg.gan_mode == "none":
        raise UsageError("--gan-mode none: ganlab bench times the adversarial step, and the L1-only control has no D; "
                         "time it with ganlab train --gan-mode none")
    stack = build_stack(cfg)  # an unknown trick or an impossible stack is refused here
    device = runtime_for(cfg).device
    cuda = device.type == "cuda"
    names = [v.strip() for v in options.variants.split(",")] if options.variants else default_variants(cuda, cfg.batch_size, bool(cfg.tricks))
    variants = [parse_variant(n) for n in names if n]
    if not variants:
        raise UsageError("--variants: give at least one variant, e.g. --variants trainer")
    if len({v.name for v in variants}) != len(variants):
        raise UsageError(f"--variants {options.variants}: a variant is named twice")
    for v in variants:
        if v.plain and cfg.tricks:
            raise UsageError(f"--variants plain cannot run --trick {cfg.tricks[0].name}: the plain loop is the plain pix2pix step")
        if not v.plain:
            if v.cuda_graphs and not cuda:
                raise UsageError(f"--variants {v.name}: CUDA graphs need a CUDA device (this bench runs on {device})")
            try:  # refuse e.g. cuda-graphs with a trick before any work
                cfg.replace(**dict(v.overrides)).validate()
            except UsageError as exc:
                raise UsageError(f"--variants {v.name}: {exc}") from None

    close = check_fits(cfg, runtime_for(cfg))  # an impossible batch is one line, not an out-of-memory kill
    if close:
        console.print(f"[yellow]warning:[/] {close}", highlight=False)

    if cfg.data is not None or cfg.data_a is not None:
        make_data = lambda: build_datasets(cfg)[0]  # noqa: E731
    else:
        make_data = lambda: synthetic_images(cfg)  # noqa: E731

    # The FLOP tables of the networks the step runs (tricks can change them).
    torch.manual_seed(cfg.seed)
    _, G0, D0 = build_networks(cfg, stack)
    g_fl, d_fl = model_flops(G0, D0, cfg.in_channels, cfg.out_channels, cfg.size)
    _, G0, D0 = build_networks(cfg, TrickStack([], cfg.gan_mode))
    plain_fl = model_flops(G0, D0, cfg.in_channels, cfg.out_channels, cfg.size)
    del G0, D0

    runners: list[Runner] = []
    for v in variants:
        console.print(f"building and warming up [bold]{v.name}[/]", highlight=False)
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()  # the reserved pool then holds only live tensors
            before = torch.cuda.memory_allocated(device)
            reserved_before = torch.cuda.memory_reserved(device)
            torch.cuda.reset_peak_memory_stats(device)
        data = make_data()
        r = _plain_runner(v, cfg, data) if v.plain else _trainer_runner(v, cfg, data, cfg.log_every, lambda m: console.print(f"[yellow]warning:[/] {m}"))
        # A CUDA graph is captured on the 4th step: warm-up covers it.
        r.warmup_steps = max(options.warmup, 4) if v.cuda_graphs else options.warmup
        _use(r)
        for _ in range(r.warmup_steps):
            r.run()
        if cuda:
            torch.cuda.synchronize(device)
            r.resident_bytes = torch.cuda.memory_allocated(device) - before
            if v.cuda_graphs:
                # A graph's private pool keeps the step's activations reserved between replays,
                # although they count as freed: what the variant holds is the pool's growth.
                r.resident_bytes = max(r.resident_bytes, torch.cuda.memory_reserved(device) - reserved_before)
            # Warm-up includes cuDNN's algorithm search and compilation, whose workspaces are
            # not part of a training step: reported apart, not as the step's peak.
            r.warmup_peak_bytes = torch.cuda.max_memory_allocated(device) - before
        runners.append(r)

    for rnd in range(options.rounds):
        order = runners[rnd % len(runners):] + runners[: rnd % len(runners)]
        for r in order:
            _time_round(r, options.steps)

    rows = []
    for r in runners:
        first = r.warmup_steps
        passes = r.counter.total(first, first + r.timed_steps) if r.timed_steps else None
        fl = plain_fl if r.variant.plain else (g_fl, d_fl)
        # The passes of every timed step; their FLOPs per step on average.
        flops = step_flops(fl[0], fl[1], passes, r.batch_size)["total"] / r.timed_steps
        median_ms = statistics.median(r.times_ms)
        seconds = median_ms / 1e3
        peak_v, source_v = device_peak_flops(device, r.precision, options.peak_tflops)
        rows.append({
            "variant": r.variant.name,
            "precision": r.precision,
            "img_per_s": r.batch_size / seconds,
            "ms_per_step": median_ms,
            "ms_per_step_mean": statistics.fmean(r.times_ms),
            "ms_per_step_p90": float(np.percentile(r.times_ms, 90)),
            "flops_per_step": flops,
            "flops_per_image": flops / r.batch_size,
            "tflops_per_s": flops / seconds / 1e12,
            "mfu": flops / seconds / peak_v if peak_v else None,
            "peak": peak_v,
            "peak_source": source_v,
            "peak_memory_bytes": r.peak_bytes,
            "warmup_peak_memory_bytes": r.warmup_peak_bytes,
            "host_syncs_per_step": (r.syncs / r.timed_steps) if cuda and not r.variant.plain else None,
            "step_times_ms": r.times_ms,
        })
    # Speed against the reference, round by round (the rounds are interleaved, so a busy
    # machine slows both sides of each ratio alike), then the median over the rounds.
    ref_i = next((i for i, r in enumerate(runners) if r.variant.plain), 0)
    reference = rows[ref_i]
    for r, row in zip(runners, rows):
        ratios = [a / b for a, b in zip(runners[ref_i].round_ms, r.round_ms)]
        row["speed_vs_" + reference["variant"]] = statistics.median(ratios)
        row["speed_vs_" + reference["variant"] + "_per_round"] = ratios
        row["round_ms"] = r.round_ms
    ours = next((r for r in runners if not r.variant.plain), None)
    one_step = ours.counter.total(ours.warmup_steps, ours.warmup_steps + 1) if ours else plan_passes()
    breakdown = step_flops(*(plain_fl if ours is None else (g_fl, d_fl)), one_step, 1)
    result = {
        "device": torch.cuda.get_device_name(device) if cuda else f"CPU ({torch.get_num_threads()} threads)",
        "size": cfg.size, "batch_size": cfg.batch_size, "steps": options.steps, "warmup": options.warmup, "rounds": options.rounds,
        "tricks": [str(t) for t in cfg.tricks], "peak_sources": sorted({row["peak_source"] for row in rows}),
        "reference": reference["variant"],
        "flops_per_image_breakdown": {k: v for k, v in breakdown.items() if k != "per_image"},
        "process_max_rss_bytes": peak_rss_bytes(),
        "torch": torch.__version__,
        "variants": rows,
    }
    _print(console, result, describe)
    return result


def _print(console, result: dict, describe) -> None:
    ref = result["reference"]
    table = Table(title=f"ganlab bench: {result['size']}px, batch {result['batch_size']}, {result['device']}"
                  + (f", tricks {' '.join(result['tricks'])}" if result["tricks"] else ""))
    for col in ("variant", "img/s", "ms/step", f"vs {ref} (paired)", "peak mem", "FLOP/step", "FLOP/s", "MFU", "syncs/step"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for row in result["variants"]:
        mem = row["peak_memory_bytes"]
        table.add_row(
            row["variant"],
            f"{row['img_per_s']:.2f}" if row["img_per_s"] < 100 else f"{row['img_per_s']:.0f}",
            f"{row['ms_per_step']:.1f}",
            f"{row['speed_vs_' + ref]:.3f}x",
            f"{mem / 2**30:.2f} GiB" if mem is not None else "-",
            describe(row["flops_per_step"]),
            describe(row["tflops_per_s"] * 1e12) + "/s",
            f"{row['mfu']:.1%}" if row["mfu"] is not None else "-",
            f"{row['host_syncs_per_step']:.2f}" if row["host_syncs_per_step"] is not None else "-",
        )
    console.print(table)
    parts = ", ".join(f"{k} {describe(v)}" for k, v in result["flops_per_image_breakdown"].items() if v and k != "total")
    console.print(f"FLOPs per image of one step: {describe(result['flops_per_image_breakdown']['total'])} ({parts})", highlight=False)
    console.print(f"peak for MFU: {'; '.join(result['peak_sources'])}", highlight=False)
    if result["variants"] and result["variants"][0]["peak_memory_bytes"] is None:
        console.print(f"memory: peak resident set of the whole process {result['process_max_rss_bytes'] / 2**30:.2f} GiB "
                      "(per-variant peaks are measured on CUDA)", highlight=False)
    console.print(f"{result['rounds']} interleaved rounds x {result['steps']} steps per variant after {result['warmup']} "
                  f"warm-up steps; img/s and ms/step: median step; vs {ref} (paired): median over the rounds of "
                  f"the round-by-round ratio of {ref}'s time to the variant's (the rounds interleave, so a busy machine "
                  "slows both sides of a ratio alike; it can differ a little from the ratio of the img/s columns)", highlight=False)


