"""
The SimCLR family's view augmentations, batched on the data's device: a kornia pipeline (the reference, with which the
shipped zoo was trained) and :class:`BatchedSSLViews`, the same distributions in a fixed handful of tensor operations.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

AUGMENTATIONS = ("kornia", "batched")


def ssl_augmentation(
    size: int | tuple[int, int],
    channels: int,
    crop_scale: tuple[float, float] = (0.2, 1.0),
    jitter: float = 0.4,
    jitter_p: float = 0.8,
    grayscale_p: float = 0.2,
    flip: bool = True,
    implementation: str = "kornia",
) -> nn.Module:
    """
    Random resized crop, horizontal flip and colour jitter (Chen et al., SimCLR, ICML 2020, appendix A, with the
    CIFAR setting of no blur and crop scale 0.2-1 as in SimCLR/BYOL CIFAR code). Grey-scale inputs get brightness
    and contrast jitter only; colour inputs also saturation, hue (``jitter / 4``) and random grey-scale.

    :param size: Output side length or ``(H, W)``.
    :param channels: Number of input channels (1 or 3).
    :param crop_scale: Area fraction range of the random crop.
    :param jitter: Strength of brightness/contrast/saturation jitter.
    :param jitter_p: Probability of applying colour jitter.
    :param grayscale_p: Probability of converting colour images to grey-scale.
    :param flip: Random horizontal flips.
    :param implementation: ``"kornia"`` (the reference) or ``"batched"`` (:class:`BatchedSSLViews`: same
        distributions in a fixed handful of operations, meant for GPUs; see its docstring).
    """
    if implementation not in AUGMENTATIONS:
        raise ValueError(f"`implementation` must be one of {AUGMENTATIONS}, got {implementation!r}.")
    if implementation == "batched":  # checks its own arguments
        return BatchedSSLViews(
            size, channels, crop_scale=crop_scale, jitter=jitter, jitter_p=jitter_p, grayscale_p=grayscale_p, flip=flip
        )
    _check_augmentation_args(channels, crop_scale)
    import kornia.augmentation as K

    height, width = (size, size) if isinstance(size, int) else size
    ops: list[K.AugmentationBase2D] = [K.RandomResizedCrop((height, width), scale=crop_scale)]
    if flip:
        ops.append(K.RandomHorizontalFlip())
    if channels == 1:
        ops.append(K.ColorJitter(jitter, jitter, 0.0, 0.0, p=jitter_p))
    else:
        ops.append(K.ColorJitter(jitter, jitter, jitter, jitter / 4, p=jitter_p))
        ops.append(K.RandomGrayscale(p=grayscale_p))
    return K.AugmentationSequential(*ops)


def _check_augmentation_args(channels: int, crop_scale: tuple[float, float]) -> None:
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3, got {channels}.")
    if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
        raise ValueError(f"`crop_scale` must satisfy 0 < low <= high <= 1, got {crop_scale}.")


class BatchedSSLViews(nn.Module):
    """
    The views of :func:`ssl_augmentation` (random resized crop, horizontal flip, colour jitter, random grey-scale)
    for a whole batch in a fixed handful of tensor operations: the crop and flip of every image are one affine
    sampling grid and one ``grid_sample``, the jitter factors are per-image tensors. Same distributions as the kornia
    pipeline (torchvision's crop algorithm with 10 tries and its centre-crop fallback, brightness, contrast and
    saturation factors in ``[1 - jitter, 1 + jitter]``, hue shift in ``[-jitter / 4, jitter / 4]`` turns, one random
    order of the four adjustments per batch, values clamped to [0, 1] after each), not the same random draws.

    Why it exists: on an H200 one kornia view of 512 64x64 images took 19.3 ms, two thirds of a SimCLR step of the
    zoo's encoder (``evaluations/results/gpu_h200/run3``); the step is bound by the augmentation, not the network.
    Its speed on a GPU is not measured yet. On a CPU it is no faster (``evaluations/results/augment_speed_cpu.md``:
    2.7x less fixed cost per call at batch 8, 0.87x at batch 512 where the bilinear sampling dominates), so the
    kornia pipeline stays the default.
    Randomness comes from torch's global generator on the batch's device, as kornia's, so :func:`pretrain`'s seed
    governs it.

    :param size: Output side length or ``(H, W)``.
    :param channels: Number of input channels (1 or 3).
    :param crop_scale: Area fraction range of the random crop.
    :param crop_ratio: Aspect-ratio (width / height) range of the random crop.
    :param jitter: Strength of brightness/contrast/saturation jitter.
    :param jitter_p: Probability of applying colour jitter to an image.
    :param grayscale_p: Probability of converting a colour image to grey-scale.
    :param flip: Random horizontal flips (probability 0.5).
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        channels: int,
        crop_scale: tuple[float, float] = (0.2, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        jitter: float = 0.4,
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        flip: bool = True,
    ) -> None:
        super().__init__()
        _check_augmentation_args(channels, crop_scale)
        if not 0.0 < crop_ratio[0] <= crop_ratio[1]:
            raise ValueError(f"`crop_ratio` must satisfy 0 < low <= high, got {crop_ratio}.")
        if jitter < 0 or not 0.0 <= jitter_p <= 1.0 or not 0.0 <= grayscale_p <= 1.0:
            raise ValueError(
                "`jitter` must be >= 0 and `jitter_p`, `grayscale_p` in [0, 1], "
                f"got {jitter}, {jitter_p}, {grayscale_p}."
            )
        self.size: tuple[int, int] = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.channels = channels
        self.crop_scale, self.crop_ratio = crop_scale, crop_ratio
        self.jitter, self.jitter_p, self.grayscale_p, self.flip = jitter, jitter_p, grayscale_p, flip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected a batch of shape (N, {self.channels}, H, W), got {tuple(x.shape)}.")
        n = x.shape[0]
        boxes = crop_boxes(n, x.shape[2], x.shape[3], self.crop_scale, self.crop_ratio, device=x.device)
        mirror = (
            torch.rand(n, device=x.device) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool, device=x.device)
        )
        views = resized_crops(x, boxes, self.size, mirror)
        return self._jitter(views)

    def _jitter(self, x: torch.Tensor) -> torch.Tensor:
        n, device, j = x.shape[0], x.device, self.jitter
        applied = (torch.rand(n, device=device) < self.jitter_p).to(x.dtype).view(n, 1, 1, 1)
        # per image: brightness, contrast, saturation (factors) and hue (turns); neutral where jitter is not applied
        ranges = [(1 - j, 1 + j, 1.0), (1 - j, 1 + j, 1.0)]
        if self.channels == 3:
            ranges += [(1 - j, 1 + j, 1.0), (-j / 4, j / 4, 0.0)]
        factors = []
        for low, high, neutral in ranges:
            drawn = low + (high - low) * torch.rand(n, device=device, dtype=x.dtype).view(n, 1, 1, 1)
            factors.append(applied * drawn + (1 - applied) * neutral)
        x = x.clamp(0.0, 1.0)
        for step in torch.randperm(len(ranges)).tolist():  # one order per batch, as kornia
            f = factors[step]
            if step == 0:
                x = x * f
            elif step == 1:
                x = _blend(x, _luma(x).mean(dim=(1, 2, 3), keepdim=True), f)
            elif step == 2:
                x = _blend(x, _luma(x), f)
            else:
                x = _shift_hue(x, f)
            x = x.clamp(0.0, 1.0)
        if self.channels == 3 and self.grayscale_p > 0:
            grey = (torch.rand(n, device=device) < self.grayscale_p).view(n, 1, 1, 1)
            x = torch.where(grey, _luma(x).expand_as(x), x)
        return x


def crop_boxes(
    n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], device: torch.device
) -> torch.Tensor:
    """
    ``n`` random crop boxes ``(top, left, h, w)`` in pixels, torchvision's ``RandomResizedCrop`` algorithm batched:
    10 tries of an area fraction uniform in ``scale`` and a log-uniform aspect ratio in ``ratio``, the first that fits
    (integer sides, uniform position), else the centre crop of the largest box whose ratio is clamped into ``ratio``.
    """
    tries = 10
    area = height * width * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, tries, device=device))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(n, tries, device=device))
    w = torch.round(torch.sqrt(area * aspect))
    h = torch.round(torch.sqrt(area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.argmax(fits.to(torch.int8), dim=1)  # first fitting try (0 where none fits: masked below)
    pick = torch.arange(n, device=device)
    h, w, ok = h[pick, first], w[pick, first], fits.any(dim=1)
    in_ratio = width / height  # the fallback: torchvision's centre crop
    if in_ratio < ratio[0]:
        fallback_w, fallback_h = float(width), float(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fallback_w, fallback_h = float(round(height * ratio[1])), float(height)
    else:
        fallback_w, fallback_h = float(width), float(height)
    h = torch.where(ok, h, torch.full_like(h, fallback_h))
    w = torch.where(ok, w, torch.full_like(w, fallback_w))
    top = torch.floor(torch.rand(n, device=device) * (height - h + 1))
    left = torch.floor(torch.rand(n, device=device) * (width - w + 1))
    top = torch.where(ok, top, torch.floor((height - h) / 2))
    left = torch.where(ok, left, torch.floor((width - w) / 2))
    return torch.stack([top, left, h, w], dim=1)


def resized_crops(
    x: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int], mirror: torch.Tensor | None = None
) -> torch.Tensor:
    """
    Each image's box ``(top, left, h, w)`` resized to ``size`` by bilinear interpolation (half-pixel centres, edge
    values beyond the border: what ``F.interpolate(crop, size, mode="bilinear")`` gives), mirrored left-right where
    ``mirror`` is true; one affine grid and one ``grid_sample`` for the whole batch.
    """
    n, _, height, width = x.shape
    top, left, h, w = boxes.to(x.dtype).unbind(dim=1)
    sign = torch.ones_like(w) if mirror is None else 1.0 - 2.0 * mirror.to(x.dtype)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = sign * w / width
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta, [n, x.shape[1], *size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _luma(x: torch.Tensor) -> torch.Tensor:
    """Grey level (ITU-R 601 weights, as torchvision and kornia) of each pixel, shape ``(N, 1, H, W)``."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``factor * x + (1 - factor) * other``: contrast (other: the mean grey) and saturation (other: the grey)."""
    return factor * x + (1 - factor) * other


def _shift_hue(rgb: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate each image's hue by ``turns`` (fractions of the colour circle) through HSV, batched."""
    r, g, b = rgb.unbind(dim=1)
    value, argmax = rgb.max(dim=1)
    chroma = value - rgb.min(dim=1).values
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(
        argmax == 0, ((g - b) / safe) % 6, torch.where(argmax == 1, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    hue = torch.where(chroma > 0, hue / 6, torch.zeros_like(hue))
    hue = (hue + turns.view(-1, 1, 1)) % 1.0
    saturation = chroma / torch.where(value > 0, value, torch.ones_like(value))  # chroma is 0 where value is
    k = (torch.tensor([5.0, 3.0, 1.0], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1) + hue.unsqueeze(1) * 6) % 6
    weight = torch.clamp(torch.minimum(k, 4 - k), 0.0, 1.0)  # the standard hsv -> rgb of each channel
    return value.unsqueeze(1) - value.unsqueeze(1) * saturation.unsqueeze(1) * weight
