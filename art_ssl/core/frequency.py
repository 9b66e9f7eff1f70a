"""Frequency-domain filters used by attacks that shape where a perturbation's energy goes."""

from __future__ import annotations

import torch


def radial_mask(height: int, width: int, radius: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """1 inside a disc of ``radius`` around the centre ``(H/2, W/2)`` of a centred spectrum, 0 outside."""
    rows = torch.arange(height, device=device, dtype=torch.float32) - height // 2
    cols = torch.arange(width, device=device, dtype=torch.float32) - width // 2
    return ((rows[:, None] ** 2 + cols[None, :] ** 2).sqrt() < radius).float()


def high_pass(x: torch.Tensor, radius: float = 8.0) -> torch.Tensor:
    """
    High-frequency component of images: 2-D FFT, centre, zero the disc of ``radius`` around DC, invert, real part
    (AdvEncoder's high-frequency filter, Zhou et al., ICCV 2023, sec. 3.3).
    """
    height, width = x.shape[-2:]
    spectrum = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))
    spectrum = spectrum * (1.0 - radial_mask(height, width, radius, x.device))
    return torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1))).real
