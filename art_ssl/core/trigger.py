"""
Backdoor triggers: a mask saying which pixels the trigger replaces and the pattern written there.

BadEncoder's default trigger (Jia, Liu, Gong, S&P 2022, official code's ``trigger_pt_white_21_10_ap_replace``) is a
white 10x10 square at the bottom-right of a 32x32 image with a 1-pixel margin; :func:`square_trigger` scales both
sides to any input size (20x20 with a 2-pixel margin at 64x64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from art_ssl.core.checks import check_images
from art_ssl.core.perturbation import paste

CORNERS = ("bottom_right", "bottom_left", "top_right", "top_left")
# The official trigger's geometry, as fractions of a 32-pixel side.
SQUARE_FRACTION = 10 / 32
MARGIN_FRACTION = 1 / 32


@dataclass(frozen=True)
class Trigger:
    """
    A replacement trigger: ``x' = x * (1 - mask) + pattern * mask``.

    :param mask: (1, H, W) or (C, H, W), values in [0, 1] (1 = pixel replaced by the pattern).
    :param pattern: (C, H, W) pixel values written where the mask is on.
    """

    mask: np.ndarray
    pattern: np.ndarray

    def __post_init__(self) -> None:
        for name in ("mask", "pattern"):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.ndim != 3:
                raise ValueError(f"Trigger `{name}` must be a numpy array of shape (C, H, W), got {value!r:.80}.")
            if not np.isfinite(value).all():
                raise ValueError(f"Trigger `{name}` contains NaN or infinite values.")
        if self.mask.shape[1:] != self.pattern.shape[1:] or self.mask.shape[0] not in (1, self.pattern.shape[0]):
            raise ValueError(
                f"Trigger `mask` {self.mask.shape} must match `pattern` {self.pattern.shape} in (H, W) and have 1 "
                "or the pattern's number of channels."
            )
        if self.mask.min() < 0 or self.mask.max() > 1:
            raise ValueError("Trigger `mask` values must lie in [0, 1].")
        if not self.mask.any():
            raise ValueError("Trigger `mask` is all zeros: the trigger would change nothing.")
        object.__setattr__(self, "mask", self.mask.astype(np.float32))
        object.__setattr__(self, "pattern", self.pattern.astype(np.float32))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        channels, height, width = self.pattern.shape  # (C, H, W): checked in __post_init__
        return channels, height, width

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Stamp the trigger on images ``x`` (N, C, H, W) of the trigger's shape; returns float32 copies."""
        x = check_images(x, "x", self.input_shape)
        return paste(x, self.pattern, self.mask).astype(np.float32)

    def apply_torch(self, x: torch.Tensor) -> torch.Tensor:
        """The same on a tensor (differentiable, on ``x``'s device), for training loops."""
        mask = torch.as_tensor(self.mask, device=x.device, dtype=x.dtype)
        pattern = torch.as_tensor(self.pattern, device=x.device, dtype=x.dtype)
        return paste(x, pattern, mask)


def square_trigger(
    input_shape: tuple[int, int, int],
    size: int | None = None,
    margin: int | None = None,
    value: float = 1.0,
    corner: str = "bottom_right",
) -> Trigger:
    """
    A solid square trigger (BadEncoder's default: white, bottom-right).

    :param input_shape: (C, H, W) of the images.
    :param size: Side of the square in pixels; default ``round(10/32 * min(H, W))`` (BadEncoder's 10 px at 32 px).
    :param margin: Gap to the image border in pixels; default ``round(1/32 * min(H, W))``, at least 1.
    :param value: Pixel value of the square (1.0 = white for images in [0, 1]).
    :param corner: One of ``"bottom_right"``, ``"bottom_left"``, ``"top_right"``, ``"top_left"``.
    """
    if (
        not isinstance(input_shape, (tuple, list))
        or len(input_shape) != 3
        or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in input_shape)
    ):
        raise ValueError(f"`input_shape` must be (C, H, W) with positive ints, got {input_shape!r}.")
    channels, height, width = (int(s) for s in input_shape)
    side = min(height, width)
    size = max(1, round(SQUARE_FRACTION * side)) if size is None else size
    margin = max(1, round(MARGIN_FRACTION * side)) if margin is None else margin
    for name, val, low in (("size", size, 1), ("margin", margin, 0)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < low:
            raise ValueError(f"`{name}` must be an int >= {low}, got {val!r}.")
    if size + margin > side:
        raise ValueError(f"`size` + `margin` ({size} + {margin}) must fit in the image side {side}.")
    if corner not in CORNERS:
        raise ValueError(f"`corner` must be one of {CORNERS}, got {corner!r}.")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f"`value` must be a finite number, got {value!r}.")
    top = margin if corner.startswith("top") else height - margin - size
    left = margin if corner.endswith("left") else width - margin - size
    mask = np.zeros((1, height, width), np.float32)
    mask[:, top : top + size, left : left + size] = 1.0
    return Trigger(mask=mask, pattern=np.full((channels, height, width), value, np.float32))
