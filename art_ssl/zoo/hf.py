"""
Vision transformers (ViT, DINOv2, CLIP's vision tower) from a local Hugging Face model folder, through the optional
``transformers`` dependency (``pip install art_ssl[transformers]``). Nothing is downloaded
(``local_files_only=True``) and no remote code runs (``trust_remote_code`` is never set).

The embedding is the one each family is evaluated with: CLIP's ``pooler_output`` (the post-layer-norm CLS token,
before the projection into the joint space), DINOv2's ``pooler_output`` (the layer-normed CLS token) and ViT's
layer-normed CLS token (``last_hidden_state[:, 0]``; ViT's ``pooler`` is a tanh layer trained for classification
only, absent from self-supervised checkpoints). Normalisation comes from ``preprocessor_config.json``
(``image_mean``/``image_std``) into the estimator's ``preprocessing``, so attacks stay in [0, 1] pixel space.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

POOLER_FAMILIES = ("clip", "clip_vision_model", "dinov2")


class HFVisionEncoder(nn.Module):
    """
    A Hugging Face vision backbone as an encoder ``(N, C, H, W) -> (N, D)``. Its layers are reachable by name for
    :meth:`~art_ssl.estimators.PyTorchEncoder.get_activations` (e.g. ``"backbone.embeddings"``,
    ``"backbone.encoder.layer.3"``; CLIP: ``"backbone.vision_model.encoder.layers.3"``).

    :param backbone: A ``transformers`` vision model.
    :param pooling: ``"pooler"`` (``pooler_output``) or ``"cls"`` (``last_hidden_state[:, 0]``).
    """

    def __init__(self, backbone: nn.Module, pooling: str) -> None:
        super().__init__()
        if pooling not in ("pooler", "cls"):
            raise ValueError(f"`pooling` must be 'pooler' or 'cls', got {pooling!r}.")
        self.backbone, self.pooling = backbone, pooling
        params = inspect.signature(backbone.forward).parameters
        self._interpolate = "interpolate_pos_encoding" in params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kwargs = {"interpolate_pos_encoding": True} if self._interpolate else {}
        out = self.backbone(pixel_values=x, **kwargs)
        if self.pooling == "pooler":
            return out.pooler_output
        return out.last_hidden_state[:, 0]


def is_hf_folder(path: str | os.PathLike) -> bool:
    """A folder holding a ``config.json`` (a saved Hugging Face model)."""
    return Path(path).is_dir() and (Path(path) / "config.json").is_file()


def load_hf_vision(folder: str | os.PathLike, pooling: str | None = None) -> tuple[HFVisionEncoder, dict[str, Any]]:
    """
    Load a local ViT / DINOv2 / CLIP(-vision) folder.

    :param folder: Output of ``model.save_pretrained(folder)`` (and ideally the image processor's
                   ``save_pretrained``, for the normalisation).
    :param pooling: Override of the family's embedding (``"pooler"`` or ``"cls"``).
    :return: The encoder and ``{"input_shape", "mean", "std", "model_type"}`` (mean/std ``None`` without a
             preprocessor config).
    :raises ImportError: ``transformers`` is not installed.
    :raises ValueError: the folder holds no vision model.
    """
    try:
        import transformers
    except ImportError as err:
        raise ImportError("A Hugging Face model folder needs transformers: pip install art_ssl[transformers]") from err
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    model_type = config.get("model_type", "")
    # ViT's pooler is a classification layer, unused here and absent from SSL checkpoints: not built, not missed.
    kwargs: dict[str, Any] = {"add_pooling_layer": False} if model_type == "vit" else {}
    cls = transformers.CLIPVisionModel if model_type == "clip" else transformers.AutoModel
    # with output_loading_info, from_pretrained returns (model, info); transformers annotates the model alone
    backbone, loading = cast(
        tuple[Any, dict[str, Any]],
        cls.from_pretrained(str(folder), local_files_only=True, output_loading_info=True, **kwargs),
    )
    vision = config.get("vision_config", {}) if model_type == "clip" else config
    missing = sorted(loading.get("missing_keys", []))
    if missing:  # transformers would initialise them at random and carry on: a silent wrong encoder
        raise ValueError(f"'{folder}' lacks weights of its model: missing {missing[:12]} ({len(missing)}).")
    if not hasattr(backbone.config, "image_size") and not hasattr(
        getattr(backbone.config, "vision_config", None), "image_size"
    ):
        raise ValueError(f"'{folder}' holds a {model_type!r} model, not a vision model (ViT, DINOv2, CLIP).")
    pooling = pooling or ("pooler" if model_type in POOLER_FAMILIES else "cls")
    cfg = backbone.config
    size = int(getattr(cfg, "image_size", vision.get("image_size", 224)))
    channels = int(getattr(cfg, "num_channels", vision.get("num_channels", 3)))
    info: dict[str, Any] = {"input_shape": (channels, size, size), "mean": None, "std": None, "model_type": model_type}
    processor = folder / "preprocessor_config.json"
    if processor.is_file():
        pre = json.loads(processor.read_text())
        if "image_mean" in pre and "image_std" in pre:
            info["mean"], info["std"] = list(pre["image_mean"]), list(pre["image_std"])
        crop = pre.get("crop_size")
        if isinstance(crop, dict) and "height" in crop:
            info["input_shape"] = (channels, int(crop["height"]), int(crop["width"]))
    return HFVisionEncoder(backbone.eval(), pooling).eval(), info
