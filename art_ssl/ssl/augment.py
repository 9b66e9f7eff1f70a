"""The SimCLR family's view augmentations, as a kornia pipeline that runs batched on the data's device."""

from __future__ import annotations

from torch import nn


def ssl_augmentation(
    size: int | tuple[int, int],
    channels: int,
    crop_scale: tuple[float, float] = (0.2, 1.0),
    jitter: float = 0.4,
    jitter_p: float = 0.8,
    grayscale_p: float = 0.2,
    flip: bool = True,
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
    """
    import kornia.augmentation as K

    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3, got {channels}.")
    if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
        raise ValueError(f"`crop_scale` must satisfy 0 < low <= high <= 1, got {crop_scale}.")
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
