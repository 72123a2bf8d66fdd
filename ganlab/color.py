"""sRGB <-> CIE Lab (D65) in torch, batched, on any device.

The formulas follow scikit-image's ``rgb2lab``/``lab2rgb`` (sRGB companding, the D65 '2°'
white point, the CIE f(t) with its linear toe), so the two agree to float precision.
Tensors are ``(..., 3, H, W)``; RGB in [0, 1]; Lab in natural units (L in [0, 100]).

The networks see Lab scaled as the pix2pix colourisation recipe does: ``L/50 - 1`` and
``ab/110``, so every channel lies roughly in [-1, 1].
"""

from __future__ import annotations

import functools

import torch

_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
# The CIE f(t)'s constants are written into the two functions below (TorchScript compiles
# literals, not module globals): eps = 0.008856, (6/29)**3 as scikit-image rounds it;
# kappa = 7.787; f(eps) = 0.2068966.

L_SCALE = 50.0
AB_SCALE = 110.0


@functools.lru_cache(maxsize=None)
def _const(name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The conversion constants, made once per dtype and device (no host-device copy per batch)."""
    xyz_from_rgb = torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64)
    table = {
        "xyz_from_rgb": xyz_from_rgb,
        "rgb_from_xyz": torch.linalg.inv(xyz_from_rgb),
        "white": torch.tensor(_WHITE_D65, dtype=torch.float64).view(3, 1, 1),
    }
    return table[name].to(device=device, dtype=dtype)


def conversion_constants(dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The matrices and white point of the conversion, for code that carries them itself (the
    exported models hold them as buffers and call :func:`rgb_to_lab_with`/:func:`lab_to_rgb_with`)."""
    device = torch.device(device)
    return {name: _const(name, dtype, device).clone() for name in ("xyz_from_rgb", "rgb_from_xyz", "white")}


def _apply(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # x: (..., 3, H, W) -> (..., 3, H, W), mixing the channel axis.
    return torch.einsum("ij,...jhw->...ihw", [m, x])


# The two conversions proper, with their constants passed in: plain tensor code that TorchScript
# compiles and the ONNX exporter translates, so that an exported model converts exactly as ganlab.


def rgb_to_lab_with(rgb: torch.Tensor, xyz_from_rgb: torch.Tensor, white: torch.Tensor) -> torch.Tensor:
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = _apply(xyz_from_rgb, lin) / white
    f = torch.where(xyz > 0.008856, xyz.clamp_min(0.008856) ** (1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f.select(-3, 0), f.select(-3, 1), f.select(-3, 2)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def lab_to_rgb_with(lab: torch.Tensor, rgb_from_xyz: torch.Tensor, white: torch.Tensor, clip: bool = True) -> torch.Tensor:
    L, a, b = lab.select(-3, 0), lab.select(-3, 1), lab.select(-3, 2)
    fy = (L + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = (fy - b / 200.0).clamp_min(0.0)
    f = torch.stack((fx, fy, fz), dim=-3)
    xyz = torch.where(f > 0.2068966, f**3, (f - 16.0 / 116.0) / 7.787) * white
    lin = _apply(rgb_from_xyz, xyz)
    rgb = torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, 12.92 * lin)
    return rgb.clamp(0.0, 1.0) if clip else rgb


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] -> Lab (L in [0, 100], a/b roughly in [-110, 110])."""
    rgb = rgb if rgb.is_floating_point() else rgb.float() / 255.0
    return rgb_to_lab_with(rgb, _const("xyz_from_rgb", rgb.dtype, rgb.device), _const("white", rgb.dtype, rgb.device))


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Lab -> sRGB in [0, 1] (clipped unless ``clip=False``)."""
    return lab_to_rgb_with(lab, _const("rgb_from_xyz", lab.dtype, lab.device), _const("white", lab.dtype, lab.device), clip)


def rgb_to_scaled_lab(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sRGB (uint8 or [0, 1] float) -> (L/50 - 1, ab/110): the networks' input and target."""
    lab = rgb_to_lab(rgb)
    return lab[..., :1, :, :] / L_SCALE - 1.0, lab[..., 1:, :, :] / AB_SCALE


def scaled_lab_to_rgb(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """(L/50 - 1, ab/110) -> sRGB in [0, 1], computed in float32 and clipped."""
    lab = torch.cat(((L.float() + 1.0) * L_SCALE, ab.float() * AB_SCALE), dim=-3)
    return lab_to_rgb(lab)


def to_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """[0, 1] float RGB -> uint8, clipped and rounded (what image metrics expect)."""
    return (rgb.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
