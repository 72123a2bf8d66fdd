"""The run configuration: one typed, frozen dataclass, layered from defaults, the sample-set
preset, a ``--config`` TOML file and the command-line flags (later layers win).

``validate()`` raises :class:`~ganlab.errors.UsageError` with a sentence that names the flag,
the value and what is allowed. ``to_dict``/``from_dict`` round-trip through JSON exactly.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ganlab.coerce import BadValue, coerce, type_name
from ganlab.errors import UsageError
from ganlab.modes import GAN_MODES, L1_ONLY
from ganlab.devices import DEVICE_HELP, check_device_name
from ganlab.metrics.names import INLOOP_METRICS
from ganlab.registry import DISCRIMINATORS, GENERATORS

__all__ = ["SAMPLE_PRESET", "TrainConfig", "TrickSpec", "check_run_name", "default_run_name", "flag_name", "load_toml",
           "parse_trick_arg", "resolve", "setting"]

TASKS = ("colorize", "paired")
DIRECTIONS = ("AtoB", "BtoA")
NORMS = ("batch", "instance", "none")
PRECISIONS = ("auto", "fp32", "bf16")
SWITCHES = ("auto", "on", "off")
ON_OFF = ("off", "on")
AUTO_OR_NUMBER = ("threads",)  # settings whose value is auto or a whole number


def setting(default: Any, group: str, help: str, *, choices: tuple | None = None, low: float | None = None,
            metavar: str | None = None, resumable: bool = False, flag: bool = True) -> Any:
    """A configuration field with everything its flag needs, declared once.

    ``group`` and ``help`` appear in ``--help`` (``{default}`` in the help is filled in);
    ``choices`` and ``low`` are checked by :meth:`TrainConfig.validate`; ``resumable`` settings
    may change when a run is resumed; ``flag=False`` keeps a setting out of the command line.
    """
    meta = {"group": group, "help": help, "choices": choices, "low": low, "metavar": metavar,
            "resumable": resumable, "flag": flag}
    return dataclasses.field(default=default, metadata={"ganlab": meta})


def flag_name(field_name: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + field_name.replace("_", "-")


@dataclass(frozen=True)
class TrickSpec:
    """A trick as asked for: its registered name and its parameters (strings or typed values)."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def values(self) -> dict[str, Any]:
        return dict(self.params)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.params)


@dataclass(frozen=True)
class TrainConfig:
    # Data
    data: str | None = setting(None, "data", "folder of images (default: the built-in sample set)", metavar="PATH")
    val_data: str | None = setting(None, "data", "validation folder (default: a deterministic 80/20 split of --data)", metavar="PATH")
    data_a: str | None = setting(None, "data", "for --task paired: a folder of A images, paired by file name (without "
                                 "extension) with those of --data-b; instead of --data", metavar="DIR")
    data_b: str | None = setting(None, "data", "for --task paired: the folder of B images that goes with --data-a", metavar="DIR")
    val_data_a: str | None = setting(None, "data", "validation A images, paired by name with --val-data-b (default: a split "
                                     "of the training pairs)", metavar="DIR")
    val_data_b: str | None = setting(None, "data", "validation B images that go with --val-data-a", metavar="DIR")
    task: str = setting("colorize", "data", "colorize (grey L in, ab out) or paired A|B translation (default {default})", choices=TASKS)
    direction: str = setting("AtoB", "data", "for --task paired: which half is the input", choices=DIRECTIONS)
    size: int = setting(256, "data", "crop size, a multiple of 32 (default {default}; sample set 64)")
    load_size: int | None = setting(None, "data", "resize the short side to this before cropping (default size*286/256; 0 keeps the original)")
    val_split: float = setting(0.2, "data", "share of --data held out for validation (default {default})")
    split_seed: int | None = setting(None, "data", "seed of that split (default: --seed); the seeds of one study trial share "
                                     "one split, so that their validation numbers compare", metavar="N")
    cache_gb: float = setting(4.0, "data", "memory for decoded images (default {default})")
    # Length
    batch_size: int = setting(1, "length", "images per step (default {default}, the paper's; sample set 4)", low=1)
    steps: int | None = setting(None, "length", "adversarial training steps", resumable=True)
    epochs: int | None = setting(None, "length", "passes over the training set (default 200 when neither is given)", resumable=True)
    pretrain_steps: int = setting(0, "length", "L1-only generator steps before the adversarial stage (default {default})", low=0)
    # Networks
    # The network names are the registries' (entry points and in-process registrations), read when used.
    generator: str = setting(GENERATORS.default, "networks", "default {default}", choices=GENERATORS.choices)
    backbone_weights: str = setting("imagenet", "networks", "ResNet-18 encoder weights for --generator resnet18-unet (default {default})",
                                    metavar="imagenet|PATH|none")
    discriminator: str = setting(DISCRIMINATORS.default, "networks", "patch (70x70 PatchGAN at 3 layers) or pixel (1x1)",
                                 choices=DISCRIMINATORS.choices)
    n_layers: int = setting(3, "networks", "PatchGAN depth (default {default})", low=1)
    ngf: int = setting(64, "networks", "generator width (default {default}; sample set 32)", low=1)
    ndf: int = setting(64, "networks", "discriminator width (default {default}; sample set 32)", low=1)
    norm: str = setting("batch", "networks", "default {default}", choices=NORMS)
    # Losses and optimisation
    gan_mode: str = setting("vanilla", "losses and optimisation",
                            "adversarial loss (default {default}); rpgan: the relativistic pairing loss of R3GAN; none: the L1-only control (G trained with lambda*L1 "
                            "alone, no D)", choices=(*GAN_MODES, L1_ONLY))
    lambda_l1: float = setting(100.0, "losses and optimisation", "weight of the L1 term (default {default:g})")
    lr: float = setting(2e-4, "losses and optimisation", "Adam learning rate (default {default:g})")
    beta1: float = setting(0.5, "losses and optimisation", "Adam beta1 (default {default})")
    beta2: float = setting(0.999, "losses and optimisation", "Adam beta2 (default {default})")
    lr_decay_steps: int = setting(0, "losses and optimisation", "decay the learning rates linearly to 0 over the last N steps", low=0)
    tricks: tuple[TrickSpec, ...] = setting((), "losses and optimisation", "switch a trick on (repeatable; see ganlab tricks)",
                                            metavar="NAME[:key=value,...]")
    # Run
    seed: int = setting(0, "run", "default {default}")
    device: str = setting("auto", "run", DEVICE_HELP, resumable=True)
    precision: str = setting("auto", "run", "auto: bf16 autocast where it is native (CUDA from compute "
                                             "capability 8.0, CPUs with AMX or AVX512-BF16), else fp32", choices=PRECISIONS)
    channels_last: str = setting("auto", "run", "channels_last memory format (auto: on for CUDA and for bf16 on the CPU)", choices=SWITCHES)
    cudnn_benchmark: str = setting("auto", "run", "cudnn.benchmark (auto: on for CUDA)", choices=SWITCHES)
    fused_adam: str = setting("auto", "run", "the fused Adam kernel (auto: on)", choices=SWITCHES)
    device_data: str = setting("auto", "run", "crop, flip and convert batches on the GPU (auto: on for CUDA)", choices=SWITCHES)
    compile: str = setting("off", "run", "torch.compile the G and D forwards (default off; penalties stay eager)", choices=ON_OFF)
    cuda_graphs: str = setting("off", "run", "capture the plain step in one CUDA graph, for batch 1 (default off)", choices=ON_OFF)
    threads: str = setting("auto", "run", "CPU threads of this run (default auto: every core this process may use, or "
                           "OMP_NUM_THREADS where set; a worker of ganlab study/confirm --n-jobs N: its share, cores // N)",
                           metavar="N|auto", resumable=True)
    out: str = setting("runs", "run", "where run folders go (default {default})", metavar="DIR")
    name: str | None = setting(None, "run", "run name (default: task and data folder)")
    save_every: int = setting(1000, "run", "checkpoint every N steps, and at the end (default {default})", low=0, resumable=True)
    eval_every: int = setting(500, "run", "validate and draw samples every N steps (default {default})", low=0, resumable=True)
    best_metric: str = setting("val/swd", "run",
                               "keep checkpoints/best.pt: the generator of the evaluation with the best value of this "
                               "validation metric (default {default}; any metric the in-loop evaluation logs: val/swd, "
                               "val/L1, val/psnr, ...; none: no best checkpoint)", metavar="METRIC|none", resumable=True)
    log_every: int = setting(10, "run", "write scalars every N steps (default {default})", low=1, resumable=True)
    val_samples: int = setting(8, "run", "validation images in the sample grid (default {default})", low=1)

    # ------------------------------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        """Check every setting against its declared choices and bounds, then the combinations."""

        def bad(name: str, allowed: str) -> UsageError:
            return UsageError(f"{flag_name(name)} {getattr(self, name)}: {allowed}")

        for f in dataclasses.fields(self):
            meta = f.metadata.get("ganlab", {})
            value = getattr(self, f.name)
            if meta.get("choices") is not None and value not in meta["choices"]:
                raise bad(f.name, f"choose one of {', '.join(meta['choices'])}")
            if meta.get("low") is not None and value < meta["low"]:
                raise bad(f.name, f"must be a whole number >= {meta['low']}")
        if self.gan_mode == L1_ONLY and self.lambda_l1 == 0:
            raise UsageError("--gan-mode none trains G with lambda*L1 alone; --lambda-l1 0 leaves it nothing to learn")
        if self.cuda_graphs == "on":
            if self.gan_mode == L1_ONLY:
                raise UsageError("--cuda-graphs on captures the adversarial step; --gan-mode none has none (use --cuda-graphs off)")
            if self.device == "cpu":
                raise UsageError("--cuda-graphs on needs a CUDA device; use --device cuda (or auto) or --cuda-graphs off")
            if self.tricks:
                raise UsageError(f"--cuda-graphs on captures the plain step and cannot run --trick {self.tricks[0].name} "
                                 "(tricks run Python between the step's kernels); use --cuda-graphs off")
            if self.compile == "on":
                raise UsageError("--cuda-graphs on and --compile on: choose one (the graph captures the eager step)")
        self._validate_folder_pairs()
        check_device_name(self.device)
        if self.size < 32 or self.size % 32:
            raise bad("size", "the networks need a multiple of 32 (e.g. 64, 128, 256)")
        if self.load_size is not None and self.load_size != 0 and self.load_size < self.size:
            raise bad("load_size", f"must be at least --size {self.size} (or 0 to keep the original size)")
        if not 0 <= self.seed < 2**32:
            raise bad("seed", f"must be a whole number in [0, {2**32 - 1}]")
        from ganlab.threads import parse_threads

        parse_threads(self.threads)  # auto or a whole number >= 1
        if self.split_seed is not None and not 0 <= self.split_seed < 2**32:
            raise bad("split_seed", f"must be a whole number in [0, {2**32 - 1}]")
        if self.steps is not None and self.epochs is not None:
            raise UsageError("--steps and --epochs: give one of them, not both")
        for name in ("steps", "epochs"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise bad(name, "must be a whole number >= 1")
        if self.discriminator == "patch" and self.size // 2**self.n_layers < 3:
            raise bad("n_layers", f"too deep for --size {self.size}; use at most {int(math.log2(self.size // 3))}")
        for name in ("lr", "lambda_l1", "cache_gb"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise bad(name, "must be a positive number" if name == "lr" else "must be a number >= 0")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise bad(name, "must be in [0, 1)")
        if not 0.0 < self.val_split < 1.0:
            raise bad("val_split", "must be between 0 and 1 (e.g. 0.2)")
        if self.name is not None:
            check_run_name(self.name, "--name")
        if self.best_metric != "none" and self.best_metric not in INLOOP_METRICS:
            raise bad("best_metric", f"not a metric of the in-loop evaluation; choose one of {', '.join(INLOOP_METRICS)} or none")
        return self

    def _validate_folder_pairs(self) -> None:
        """--data-a/--data-b (and the validation pair) come together, for --task paired, instead of
        --data (--val-data)."""
        for a, b, instead in (("data_a", "data_b", "data"), ("val_data_a", "val_data_b", "val_data")):
            given = [n for n in (a, b) if getattr(self, n) is not None]
            if not given:
                continue
            if len(given) == 1:
                other = b if given[0] == a else a
                raise UsageError(f"{flag_name(given[0])} {getattr(self, given[0])}: give {flag_name(other)} too "
                                 f"(A and B images come from two folders, paired by file name)")
            if self.task != "paired":
                raise UsageError(f"{flag_name(a)}/{flag_name(b)} are for --task paired (A -> B translation); "
                                 f"add --task paired, or use --data for colourisation")
            if getattr(self, instead) is not None:
                raise UsageError(f"{flag_name(instead)} {getattr(self, instead)} and {flag_name(a)}/{flag_name(b)}: give one "
                                 f"of them ({flag_name(instead)}: side-by-side A|B images; {flag_name(a)}/{flag_name(b)}: "
                                 "two folders paired by file name)")

    @property
    def data_label(self) -> str | None:
        """The training data as a user gave it (None: the sample set)."""
        if self.data_a is not None:
            return f"A {self.data_a} + B {self.data_b}"
        return self.data

    @property
    def val_data_label(self) -> str | None:
        if self.val_data_a is not None:
            return f"A {self.val_data_a} + B {self.val_data_b}"
        return self.val_data

    @property
    def effective_load_size(self) -> int:
        if self.load_size is None:
            return int(round(self.size * 286 / 256))
        return self.load_size

    @property
    def in_channels(self) -> int:
        return 1 if self.task == "colorize" else 3

    @property
    def out_channels(self) -> int:
        return 2 if self.task == "colorize" else 3

    # ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tricks"] = [{"name": t.name, "params": dict(t.params)} for t in self.tricks]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config") -> "TrainConfig":
        return cls(**coerce_fields(cls, data, where))

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


SAMPLE_PRESET: dict[str, Any] = {
    # The built-in sample set is a dozen photographs: small crops and small networks make a
    # run that finishes in a few minutes on a laptop CPU and still learns colours.
    "size": 64,
    "batch_size": 4,
    "steps": 600,
    "ngf": 32,
    "ndf": 32,
    "save_every": 200,
    "eval_every": 100,
}


def _coerce_value(key: str, typ, value, where: str):
    if key == "tricks":
        if value is not None and not isinstance(value, (list, tuple)):
            raise UsageError(f"{where}: 'tricks' = {value!r} should be a list, e.g. tricks = [\"soft-labels\", \"label-flip:p=0.05\"]")
        return tuple(_coerce_trick(v, where) for v in (value or ()))
    try:
        # "auto or a number" settings: a TOML or JSON number is the number, written as text
        return coerce(value, typ, text=key in AUTO_OR_NUMBER and isinstance(value, int) and not isinstance(value, bool))
    except BadValue:
        raise UsageError(f"{where}: '{key.replace('_', '-')}' = {value!r} should be {type_name(typ)}") from None


def parse_trick_arg(text: str) -> tuple[str, dict[str, str]]:
    """``"label-flip:p=0.05,two_sided=true"`` -> ``("label-flip", {"p": "0.05", ...})``."""
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise UsageError(f"--trick '{text}': give a trick name, e.g. --trick label-flip:p=0.05")
    values: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--trick '{text}': write parameters as key=value, separated by commas")
        values[key.strip()] = value.strip()
    return name, values


def _coerce_trick(value, where: str) -> TrickSpec:
    if isinstance(value, TrickSpec):
        return value
    if isinstance(value, str):
        name, params = parse_trick_arg(value)
        return TrickSpec(name, tuple(params.items()))
    if isinstance(value, Mapping) and "name" in value:
        params = value.get("params", {})
        if not isinstance(params, Mapping):
            raise UsageError(f"{where}: tricks entry {value!r}: 'params' must be a table of key = value")
        return TrickSpec(str(value["name"]), tuple(params.items()))
    raise UsageError(f"{where}: tricks entry {value!r}: write \"name:key=value\" or {{name = ..., params = {{...}}}}")


def coerce_fields(cls, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    types = typing.get_type_hints(cls)
    out = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key not in types:
            close = [k.replace("_", "-") for k in types if k.startswith(key[:3])]
            hint = f"; did you mean {close[0]}?" if close else ""
            raise UsageError(f"{where}: unknown key '{raw_key}'{hint}")
        out[key] = _coerce_value(key, types[key], value, where)
    return out


def check_run_name(name: str, where: str) -> str:
    """The one rule for the names of run and study folders: a plain folder name."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise UsageError(f"{where} {name!r}: use a plain name (letters, digits, - and _); it names a folder")
    return name


def default_run_name(cfg: TrainConfig) -> str:
    """``<task>-<data folder>`` (``colorize-sample`` for the built-in set), safe as a folder name."""
    if cfg.data_a is not None and cfg.data_b is not None:  # the folder holding both, else the A folder
        a, b = (Path(x).expanduser().resolve() for x in (cfg.data_a, cfg.data_b))
        common = Path(os.path.commonpath([a, b]))
        data = common.name if common not in (a, b) and common.name else a.name
    else:
        data = "sample" if cfg.data is None else Path(cfg.data).expanduser().resolve().name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{cfg.task}-{data}").strip("-.") or "run"


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a ``--config`` file: the same keys as the flags (dashes or underscores)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--config {path}: no such file")
    try:
        with open(p, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config {path}: not valid TOML ({exc}); fix the line it names") from None
    except OSError as exc:
        raise UsageError(f"--config {path}: cannot be read ({exc.strerror})") from None
    coerce_fields(TrainConfig, data, f"--config {path}")  # refuse unknown keys and wrong types early
    return data


def resolve(flags: Mapping[str, Any], config_file: str | None = None) -> TrainConfig:
    """Layer defaults <- sample preset (no --data) <- TOML <- flags, then validate."""
    layers: list[Mapping[str, Any]] = []
    file_layer = load_toml(config_file) if config_file else {}
    file_layer = {k.replace("-", "_"): v for k, v in file_layer.items()}
    given = {k: v for k, v in flags.items() if v is not None}
    data = given.get("data", file_layer.get("data"))
    if data is None and given.get("data_a", file_layer.get("data_a")) is None:
        layers.append(SAMPLE_PRESET)
    layers += [file_layer, given]
    merged: dict[str, Any] = {}
    for layer in layers:
        if "steps" in layer and layer["steps"] is not None:
            merged.pop("epochs", None)
        if "epochs" in layer and layer["epochs"] is not None:
            merged.pop("steps", None)
        merged.update(layer)
    return TrainConfig.from_dict(merged, "--config " + str(config_file) if config_file else "flags").validate()


