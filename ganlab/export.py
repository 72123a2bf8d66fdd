"""A trained generator as a self-contained model: TorchScript (torch alone loads it) or ONNX
(any ONNX runtime), with everything ``ganlab colorize`` does around the network inside.

The exported model takes a uint8 batch ``(N, 3, H, W)`` RGB, or ``(N, 1, H, W)`` grey, of any
size and returns ``(N, 3, H, W)`` uint8 RGB:

- colourisation: RGB -> Lab, the lightness (on a copy whose long side is at most ``max_side``)
  to the network, its a/b up-sampled back, the lightness kept from the input, Lab -> RGB;
- paired translation: RGB in [-1, 1] through the network in the run's direction.

In both the input is padded to the network's stride (by reflection, or by repeating the edge
for an image smaller than the padding) and the output cropped back, as :mod:`ganlab.infer`
does. The file carries the run, step, task, direction, weights and ganlab version: the
TorchScript file as the extra file ``ganlab.json``, the ONNX file as ``metadata_props``.
"""

from __future__ import annotations

import io
import json
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganlab.version import __version__
from ganlab.color import AB_SCALE, L_SCALE, conversion_constants, lab_to_rgb_with, rgb_to_lab_with
from ganlab.errors import GanlabError, UsageError

__all__ = ["FORMATS", "METADATA_FILE", "ExportResult", "build_export_module", "export_model", "format_for", "read_metadata"]

FORMATS = ("torchscript", "onnx")
METADATA_FILE = "ganlab.json"  # the TorchScript extra file holding the metadata
ONNX_OPSET = 18
SELF_CHECK_LEVELS = 1  # the exported model may differ from ganlab colorize by this many levels of 255


def _round_half_even(v: float) -> int:
    """Python's round() of a float, in code TorchScript compiles the same way."""
    r = float(int(v)) if v >= 0 else -float(int(-v))
    r = r if r <= v else r - 1.0  # floor
    diff = v - r
    if diff > 0.5:
        return int(r) + 1
    if diff < 0.5:
        return int(r)
    return int(r) + (int(r) % 2)


def _pad_to_stride(x: torch.Tensor, stride: int) -> torch.Tensor:
    """:func:`ganlab.infer.pad_to`: reflection, or repeating the edge where the padding is not
    smaller than the side."""
    h, w = x.shape[-2], x.shape[-1]
    ph, pw = (stride - h % stride) % stride, (stride - w % stride) % stride
    if ph > 0 or pw > 0:
        if ph < h and pw < w:
            x = F.pad(x, [0, pw, 0, ph], mode="reflect")
        else:
            x = F.pad(x, [0, pw, 0, ph], mode="replicate")
    return x


def _antialias_weights(n_in: int, n_out: int) -> torch.Tensor:
    """The (n_out, n_in) matrix of torch's antialiased bilinear resampling (a triangle filter
    widened by the scale when shrinking), for exporters that have no antialiased resize."""
    scale = torch.full([1], float(n_in) / float(n_out), dtype=torch.float32)
    centre = (torch.arange(n_out).to(torch.float32) + 0.5) * scale
    taps = torch.arange(n_in).to(torch.float32) + 0.5
    w = (1.0 - ((taps[None, :] - centre[:, None]) / scale.clamp_min(1.0)).abs()).clamp_min(0.0)
    return w / w.sum(1, keepdim=True)


class ColorizeModel(nn.Module):
    """uint8 RGB or grey (N, 3|1, H, W) -> uint8 RGB (N, 3, H, W), as ``ganlab colorize``."""

    __constants__ = ["matrix_resize"]

    def __init__(self, G: nn.Module, stride: int, max_side: int, matrix_resize: bool = False):
        super().__init__()
        self.G = G
        self.matrix_resize = matrix_resize
        self.stride = int(stride)
        self.max_side = int(max_side)
        self.l_scale, self.ab_scale = float(L_SCALE), float(AB_SCALE)
        for name, value in conversion_constants(torch.float32).items():
            self.register_buffer(name, value)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        n, h, w = image.shape[0], image.shape[2], image.shape[3]
        rgb = image.expand(n, 3, h, w).float() / 255.0  # a grey channel stands for R = G = B
        lab = rgb_to_lab_with(rgb, self.xyz_from_rgb, self.white)
        L = lab[:, :1]
        L_in = L
        if self.max_side > 0 and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            size = [max(1, _round_half_even(h * scale)), max(1, _round_half_even(w * scale))]
            if self.matrix_resize:
                L_in = torch.matmul(torch.matmul(_antialias_weights(h, size[0]), L), _antialias_weights(w, size[1]).t())
            else:
                L_in = F.interpolate(L, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = L_in / self.l_scale - 1.0
        hi, wi = x.shape[2], x.shape[3]
        ab = self.G(_pad_to_stride(x, self.stride))[:, :, :hi, :wi].float() * self.ab_scale
        if hi != h or wi != w:
            ab = F.interpolate(ab, size=[h, w], mode="bilinear", align_corners=False)
        out = lab_to_rgb_with(torch.cat((L, ab), 1), self.rgb_from_xyz, self.white, True)
        return (out.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


class TranslateModel(nn.Module):
    """uint8 RGB (N, 3, H, W) -> uint8 RGB (N, 3, H, W) in the run's direction, as ``ganlab colorize``."""

    def __init__(self, G: nn.Module, stride: int):
        super().__init__()
        self.G = G
        self.stride = int(stride)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        n, h, w = image.shape[0], image.shape[2], image.shape[3]
        x = image.expand(n, 3, h, w).float() / 127.5 - 1.0
        y = self.G(_pad_to_stride(x, self.stride))[:, :, :h, :w].float()
        return ((y + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


class CheckedInput(nn.Module):
    """The TorchScript entry point: says what is wrong with an input in one sentence."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or (image.shape[1] != 3 and image.shape[1] != 1):
            raise ValueError("expected a uint8 batch of shape (N, 3, H, W) RGB or (N, 1, H, W) grey")
        if image.dtype != torch.uint8:
            raise ValueError("expected uint8 pixels (0..255); convert with .to(torch.uint8)")
        return self.model(image)


def _traced_generator(G: nn.Module, in_channels: int, stride: int) -> torch.jit.ScriptModule:
    """G as a TorchScript graph (traced: the networks are fully convolutional, so the graph of
    one input size serves every size that is a multiple of the stride)."""
    example = torch.zeros(1, in_channels, stride, stride)
    with torch.no_grad():
        return torch.jit.trace(G, example, check_trace=False)


def build_export_module(cfg, G: nn.Module, stride: int, max_side: int, fmt: str = "torchscript") -> nn.Module:
    """The eager model (generator inside) that an export compiles. ONNX has no antialiased
    resize: its graph shrinks a large image's lightness by the same filter, as a matrix."""
    G = G.cpu().eval()
    if cfg.task == "colorize":
        return ColorizeModel(G, stride, max_side, matrix_resize=fmt == "onnx").eval()
    return TranslateModel(G, stride).eval()


def _scripted(cfg, G: nn.Module, stride: int, max_side: int, fmt: str) -> torch.jit.ScriptModule:
    traced = _traced_generator(G.cpu().eval(), cfg.in_channels, stride)
    return torch.jit.script(build_export_module(cfg, traced, stride, max_side, fmt))


# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------


def _run_of(source: Path, checkpoint_file: Path | None) -> str:
    """The run's folder name: the folder given, or the run that holds the checkpoint file."""
    from ganlab.train.rundir import is_run_dir

    if source.is_dir():
        return source.resolve().name
    f = (checkpoint_file or source).resolve()
    if f.parent.name == "checkpoints" and is_run_dir(f.parent.parent):
        return f.parent.parent.name
    return f.stem


def metadata(cfg, details: dict, source: Path, stride: int, max_side: int, checkpoint: str) -> dict[str, str]:
    """What the exported file says about itself (every value a string: ONNX's metadata_props)."""
    colour = cfg.task == "colorize"
    meta = {
        "format": "ganlab-export/1",
        "ganlab_version": __version__,
        "run": _run_of(source, details.get("file")),
        "checkpoint": Path(details["file"]).name if details.get("file") else "",
        "step": str(details.get("step")),
        "weights": "G_ema" if details.get("weights") == "G_ema" else "G",  # the moving average of G, or G
        "chosen_by": "file" if Path(checkpoint).expanduser().is_file() else checkpoint,  # auto, latest, ema, best
        "task": cfg.task,
        "direction": "grey -> colour (L -> ab)" if colour else ("B -> A" if cfg.direction == "BtoA" else "A -> B"),
        "input": "uint8 (N, 3, H, W) RGB or (N, 1, H, W) grey, any H and W" if colour else "uint8 (N, 3, H, W) RGB, any H and W",
        "output": "uint8 (N, 3, H, W) RGB, the input's size",
        "stride": str(stride),
        **({"best": details["best"]} if details.get("best") else {}),
        "max_side": str(max_side) if colour else "",
        "generator": cfg.generator,
        "trained_size": str(cfg.size),
    }
    return meta


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of an exported file, TorchScript or ONNX (without running its graph)."""
    path = Path(path)
    if path.read_bytes()[:2] == b"PK":  # a TorchScript file is a zip archive
        extra = {METADATA_FILE: ""}
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        return json.loads(extra[METADATA_FILE])
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def format_for(out: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
        return fmt
    return "onnx" if out.suffix.lower() == ".onnx" else "torchscript"


def check_out(out: Path, flag: str = "--out", *, overwrite: bool = False, source: Path | None = None) -> None:
    """Refuse an --out that cannot be written, or must not be, before any work: a folder, a
    special file (a FIFO, a device such as /dev/full: the atomic rename would put a regular
    file in its place), a file of a run's ``checkpoints/`` folder (a training checkpoint
    replaced by a model would read as a damaged checkpoint), the source itself, and an
    existing file unless ``overwrite``."""
    from ganlab.train.rundir import is_run_dir

    if out.is_dir():
        raise UsageError(f"{flag} {out}: is a folder; give a file name (e.g. {out / 'model.pt'})")
    parent = out.parent
    if not parent.exists():
        raise UsageError(f"{flag} {out}: the folder {parent} does not exist; create it or choose another --out")
    if not parent.is_dir():
        raise UsageError(f"{flag} {out}: {parent} is not a folder; choose another --out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {out}: cannot write in {parent} (permissions); choose another --out")
    real = Path(os.path.realpath(out))
    if real.parent.name == "checkpoints" and is_run_dir(real.parent.parent):
        raise UsageError(f"{flag} {out}: is inside the run folder's checkpoints/, where ganlab keeps its own checkpoints; "
                         "write the model elsewhere (e.g. --out model.pt)")
    if source is not None and source.is_file() and os.path.realpath(source) == str(real):
        raise UsageError(f"{flag} {out}: is the checkpoint being exported; choose another --out")
    try:
        st = os.stat(out)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise UsageError(f"{flag} {out}: cannot be used ({exc.strerror}); choose another --out") from None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{flag} {out}: exists and is not a regular file (a FIFO, device or socket); "
                             "give the name of a file to write")
        if not overwrite:
            raise UsageError(f"{flag} {out}: the file exists; add --overwrite to replace it, or choose another --out")


def _torchscript_bytes(scripted: torch.jit.ScriptModule, meta: dict[str, str]) -> bytes:
    checked = torch.jit.script(CheckedInput(scripted))
    buf = io.BytesIO()
    torch.jit.save(checked, buf, _extra_files={METADATA_FILE: json.dumps(meta, indent=2)})
    return buf.getvalue()


def onnx_available() -> str | None:
    """Why ONNX export cannot run here (None when it can)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        return "the onnx package is not installed (pip install 'ganlab[export]')"
    return None


def _onnx_bytes(scripted: torch.jit.ScriptModule, meta: dict[str, str], in_channels: int) -> bytes:
    import onnx

    example = torch.zeros(1, 3, 37, 45, dtype=torch.uint8)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its deprecation
        torch.onnx.export(scripted, (example,), buf, dynamo=False, opset_version=ONNX_OPSET, input_names=["image"],
                          output_names=["rgb"], dynamic_axes={"image": {0: "N", 1: "C", 2: "H", 3: "W"},
                                                              "rgb": {0: "N", 2: "H", 3: "W"}})
    model = onnx.load_from_string(buf.getvalue())
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = f"ganlab {meta['task']} model, run {meta['run']} step {meta['step']}: {meta['input']} -> {meta['output']}"
    return model.SerializeToString()


def _reference(cfg, G: nn.Module, rgb: np.ndarray, stride: int, max_side: int) -> np.ndarray:
    from ganlab.infer import colorize_array, translate_array

    if cfg.task == "colorize":
        return colorize_array(G, rgb, stride, max_side, "cpu")
    return translate_array(G, rgb, stride, "cpu")


def _probe_image(stride: int) -> np.ndarray:
    """An odd-sized colour image (not a multiple of the stride), for the self-check."""
    h, w = stride + 3 if stride > 8 else 37, stride + 7 if stride > 8 else 45
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.5 + 0.45 * np.sin(2 * np.pi * (k + 1) * (xx + 0.5 * k * yy)) for k in range(3)], -1)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    metadata: dict[str, str]
    max_diff: int | None  # the self-check: levels of 255 from ganlab colorize (None: not run)


def export_model(source: str | os.PathLike, out: str | os.PathLike, *, checkpoint: str = "auto", fmt: str | None = None,
                 max_side: int = 1024, overwrite: bool = False) -> ExportResult:
    """Export the generator of ``source`` (a run folder or a checkpoint file) to ``out``.

    The exported model is checked against ``ganlab colorize``'s code on an odd-sized image
    before the file is written (atomically: a failed export leaves no file)."""
    with warnings.catch_warnings(), torch.no_grad():
        # torch marks TorchScript as deprecated in favour of torch.export; its files still load
        # with torch alone, which is what an export is for
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.", category=FutureWarning)
        return _export(source, out, checkpoint, fmt, max_side, overwrite)


def _export(source, out, checkpoint: str, fmt: str | None, max_side: int, overwrite: bool = False) -> ExportResult:
    from ganlab.infer import open_generator
    from ganlab.io import atomic_write_bytes
    from ganlab.nets import generator_stride

    out = Path(out).expanduser()
    fmt = format_for(out, fmt)
    if max_side < 0:
        raise UsageError(f"--max-side {max_side}: must be 0 (no limit) or a positive number of pixels")
    check_out(out, overwrite=overwrite, source=Path(source).expanduser())
    if checkpoint not in ("auto", "latest", "ema", "best"):
        check_out(out, overwrite=overwrite, source=Path(checkpoint).expanduser())
    if fmt == "onnx" and (why := onnx_available()):
        raise UsageError(f"--format onnx: {why}; or export --format torchscript")
    # best: the run's best.pt, its moving average of G where it kept one (what was evaluated)
    loaded = open_generator(source, "auto" if checkpoint == "best" else checkpoint, "cpu",
                            which="best" if checkpoint == "best" else "latest")
    cfg, G = loaded.cfg, loaded.G
    details: dict[str, Any] = {"file": loaded.file, "step": loaded.step, "weights": loaded.weights}
    if loaded.best:
        details["best"] = f"{loaded.best.get('metric')} {float(loaded.best.get('value')):.6g}"
    stride = generator_stride(G)
    meta = metadata(cfg, details, Path(source).expanduser(), stride, max_side, checkpoint)
    try:
        scripted = _scripted(cfg, G, stride, max_side, fmt)
    except Exception as exc:  # noqa: BLE001 - a network TorchScript cannot compile
        raise GanlabError(f"{source}: the generator cannot be compiled to TorchScript ({str(exc).strip().splitlines()[0][:200]})") from None
    probe = _probe_image(stride)
    expected = _reference(cfg, G, probe, stride, max_side)
    x = torch.from_numpy(probe).permute(2, 0, 1)[None].contiguous()
    if fmt == "torchscript":
        data = _torchscript_bytes(scripted, meta)
        got = torch.jit.load(io.BytesIO(data))(x)[0].permute(1, 2, 0).numpy()
    else:
        try:
            data = _onnx_bytes(scripted, meta, cfg.in_channels)
        except Exception as exc:  # noqa: BLE001 - an operator the exporter does not know
            raise GanlabError(f"{source}: ONNX export failed ({str(exc).strip().splitlines()[0][:200]}); "
                              "export --format torchscript instead") from None
        got = _run_onnx(data, x.numpy())
    max_diff = None
    if got is not None:
        max_diff = int(np.abs(got.astype(np.int16) - expected.astype(np.int16)).max())
        if max_diff > SELF_CHECK_LEVELS:
            raise GanlabError(f"{source}: the exported model differs from ganlab colorize by {max_diff} levels of 255 "
                              "on a test image; nothing was written")
    try:
        atomic_write_bytes(out, data)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write the file ({exc.strerror or exc})") from None
    return ExportResult(out, fmt, meta, max_diff)


def _run_onnx(data: bytes, x: np.ndarray) -> np.ndarray | None:
    """The ONNX model's output on ``x`` where onnxruntime is installed (else None: not checked)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})[0][0].transpose(1, 2, 0)
