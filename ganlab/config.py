"""The run configuration: one typed, frozen dataclass, layered from defaults, the sample-set
preset, a ``--config`` TOML file and the command-line flags (later layers win).

``validate()`` raises :class:`~ganlab.errors.UsageError` with a sentence that names the flag,
the value and what is allowed. ``to_dict``/``from_dict`` round-trip through JSON exactly.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ganlab.errors import UsageError

TASKS = ("colorize", "paired")
DIRECTIONS = ("AtoB", "BtoA")
GENERATORS = ("unet", "resnet18-unet")
DISCRIMINATORS = ("patch", "pixel")
NORMS = ("batch", "instance", "none")
GAN_MODES = ("vanilla", "lsgan", "hinge", "wgan")
PRECISIONS = ("auto", "fp32", "bf16")
SWITCHES = ("auto", "on", "off")
ON_OFF = ("off", "on")


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
    data: str | None = None  # None: the built-in sample set
    val_data: str | None = None  # None: a deterministic split of --data
    task: str = "colorize"
    direction: str = "AtoB"
    size: int = 256
    load_size: int | None = None  # short side resized to this before cropping (None: size*286/256)
    val_split: float = 0.2
    cache_gb: float = 4.0
    # Length
    batch_size: int = 1
    steps: int | None = None
    epochs: int | None = None  # with neither steps nor epochs: 200 epochs, the paper's recipe
    pretrain_steps: int = 0
    # Networks
    generator: str = "unet"
    backbone_weights: str = "imagenet"
    discriminator: str = "patch"
    n_layers: int = 3
    ngf: int = 64
    ndf: int = 64
    norm: str = "batch"
    # Losses and optimisation
    gan_mode: str = "vanilla"
    lambda_l1: float = 100.0
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_decay_steps: int = 0  # the last N steps decay the learning rates linearly to 0
    tricks: tuple[TrickSpec, ...] = ()
    # Run
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on the CPU
    channels_last: str = "auto"
    cudnn_benchmark: str = "auto"
    fused_adam: str = "auto"  # auto: the fused Adam kernel (CUDA and CPU)
    device_data: str = "auto"  # auto: crops, flips and Lab batched on the GPU (CUDA)
    compile: str = "off"  # torch.compile the G and D forwards
    cuda_graphs: str = "off"  # capture the whole plain step in a CUDA graph (batch-1 recipe)
    out: str = "runs"
    name: str | None = None
    save_every: int = 1000
    eval_every: int = 500
    log_every: int = 10
    val_samples: int = 8

    # ------------------------------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        def bad(flag: str, value, allowed: str) -> UsageError:
            return UsageError(f"--{flag} {value}: {allowed}")

        def choice(flag: str, value, options) -> None:
            if value not in options:
                raise bad(flag, value, f"choose one of {', '.join(options)}")

        choice("task", self.task, TASKS)
        choice("direction", self.direction, DIRECTIONS)
        choice("generator", self.generator, GENERATORS)
        choice("discriminator", self.discriminator, DISCRIMINATORS)
        choice("norm", self.norm, NORMS)
        choice("gan-mode", self.gan_mode, GAN_MODES)
        choice("precision", self.precision, PRECISIONS)
        choice("channels-last", self.channels_last, SWITCHES)
        choice("cudnn-benchmark", self.cudnn_benchmark, SWITCHES)
        choice("fused-adam", self.fused_adam, SWITCHES)
        choice("device-data", self.device_data, SWITCHES)
        choice("compile", self.compile, ON_OFF)
        choice("cuda-graphs", self.cuda_graphs, ON_OFF)
        if self.cuda_graphs == "on":
            if self.device == "cpu":
                raise UsageError("--cuda-graphs on needs a CUDA device; use --device cuda (or auto) or --cuda-graphs off")
            if self.tricks:
                raise UsageError(f"--cuda-graphs on captures the plain step and cannot run --trick {self.tricks[0].name} "
                                 "(tricks run Python between the step's kernels); use --cuda-graphs off")
            if self.compile == "on":
                raise UsageError("--cuda-graphs on and --compile on: choose one (the graph captures the eager step)")
        if not (self.device in ("auto", "cpu", "cuda") or (self.device.startswith("cuda:") and self.device[5:].isdigit())):
            raise bad("device", self.device, "choose auto, cpu, cuda or cuda:N")
        if self.size < 32 or self.size % 32:
            raise bad("size", self.size, "the networks need a multiple of 32 (e.g. 64, 128, 256)")
        if self.load_size is not None and self.load_size != 0 and self.load_size < self.size:
            raise bad("load-size", self.load_size, f"must be at least --size {self.size} (or 0 to keep the original size)")
        for flag, value, low in (
            ("batch-size", self.batch_size, 1),
            ("n-layers", self.n_layers, 1),
            ("ngf", self.ngf, 1),
            ("ndf", self.ndf, 1),
            ("pretrain-steps", self.pretrain_steps, 0),
            ("lr-decay-steps", self.lr_decay_steps, 0),
            ("save-every", self.save_every, 0),
            ("eval-every", self.eval_every, 0),
            ("log-every", self.log_every, 1),
            ("val-samples", self.val_samples, 1),
        ):
            if value < low:
                raise bad(flag, value, f"must be a whole number >= {low}")
        if not 0 <= self.seed < 2**32:
            raise bad("seed", self.seed, f"must be a whole number in [0, {2**32 - 1}]")
        if self.steps is not None and self.epochs is not None:
            raise UsageError("--steps and --epochs: give one of them, not both")
        if self.steps is not None and self.steps < 1:
            raise bad("steps", self.steps, "must be a whole number >= 1")
        if self.epochs is not None and self.epochs < 1:
            raise bad("epochs", self.epochs, "must be a whole number >= 1")
        if self.discriminator == "patch" and self.size // 2**self.n_layers < 3:
            raise bad("n-layers", self.n_layers, f"too deep for --size {self.size}; use at most {int(math.log2(self.size // 3))}")
        for flag, value in (("lr", self.lr), ("lambda-l1", self.lambda_l1), ("cache-gb", self.cache_gb)):
            if not math.isfinite(value) or value < 0 or (flag == "lr" and value == 0):
                raise bad(flag, value, "must be a positive number" if flag == "lr" else "must be a number >= 0")
        for flag, value in (("beta1", self.beta1), ("beta2", self.beta2)):
            if not 0.0 <= value < 1.0:
                raise bad(flag, value, "must be in [0, 1)")
        if not 0.0 < self.val_split < 1.0:
            raise bad("val-split", self.val_split, "must be between 0 and 1 (e.g. 0.2)")
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise bad("name", self.name, "use a plain folder name (letters, digits, - and _)")
        return self

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


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce_value(key: str, typ, value, where: str):
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce_value(key, inner[0], value, where)
    if key == "tricks":
        if value is not None and not isinstance(value, (list, tuple)):
            raise UsageError(f"{where}: 'tricks' = {value!r} should be a list, e.g. tricks = [\"soft-labels\", \"label-flip:p=0.05\"]")
        return tuple(_coerce_trick(v, where) for v in (value or ()))
    if typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
    else:
        return value
    flag = key.replace("_", "-")
    raise UsageError(f"{where}: '{flag}' = {value!r} should be {getattr(typ, '__name__', typ)}")


def _coerce_trick(value, where: str) -> TrickSpec:
    from ganlab.hooks import parse_trick_arg

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
    types = _field_types(cls)
    out = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key not in types:
            close = [k.replace("_", "-") for k in types if k.startswith(key[:3])]
            hint = f"; did you mean {close[0]}?" if close else ""
            raise UsageError(f"{where}: unknown key '{raw_key}'{hint}")
        out[key] = _coerce_value(key, types[key], value, where)
    return out


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
    if data is None:
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


