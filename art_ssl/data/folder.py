"""Image folders: ``root/<class name>/<image>``, one sub-folder a class, read with Pillow."""

from __future__ import annotations

import os

import numpy as np

from art_ssl.data._common import check_size, resolve_root, to_float_nchw

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def load_image_folder(
    root: str | os.PathLike, size: int | tuple[int, int] | None = None, mode: str = "RGB"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """
    Load every image under ``root/<class>/`` (classes sorted by name, as torchvision's ImageFolder does).

    :param root: Folder whose sub-folders are the classes.
    :param size: Output side length or ``(H, W)``; required unless all images share one size.
    :param mode: Pillow mode, ``"RGB"`` (3 channels) or ``"L"`` (grey-scale).
    :return: ``x`` float32 (N, C, H, W) in [0, 1], ``y`` int64 (N,), and the class names.
    """
    from PIL import Image

    if mode not in ("RGB", "L"):
        raise ValueError(f"`mode` must be 'RGB' or 'L', got {mode!r}.")
    out_size = check_size(size)
    path = resolve_root(root, root, "Image folder", "Pass `root=` a folder with one sub-folder per class.")
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(f"`root` '{path}' has no class sub-folders.")
    images, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted((path / name).iterdir()):
            if file.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            with Image.open(file) as opened:
                img = opened.convert(mode)
                if out_size is not None and img.size != (out_size[1], out_size[0]):
                    img = img.resize((out_size[1], out_size[0]), Image.Resampling.BILINEAR)
                images.append(np.asarray(img, dtype=np.uint8))
            labels.append(label)
    if not images:
        raise ValueError(f"`root` '{path}' holds no images with extensions {IMAGE_EXTENSIONS}.")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(f"Images in '{path}' have different sizes {sorted(shapes)[:3]}...; pass `size=`.")
    stacked = np.stack(images)
    if mode == "L":
        stacked = stacked[:, None]
    return to_float_nchw(stacked), np.asarray(labels, dtype=np.int64), classes
