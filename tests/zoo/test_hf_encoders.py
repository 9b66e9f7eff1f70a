"""ViT / DINOv2 / CLIP vision from a local Hugging Face folder: tiny config-built models saved to a temp dir."""

import json
import re

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from art_ssl.zoo import load_encoder  # noqa: E402

TINY = {
    "image_size": 32,
    "patch_size": 8,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
MEAN, STD = [0.48, 0.46, 0.41], [0.27, 0.26, 0.28]


def save(model, folder):
    model.save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": MEAN, "image_std": STD}))
    return folder


@pytest.mark.parametrize("family", ["vit", "dinov2", "clip"])
def test_vision_transformers_load_with_their_normalisation_and_layers(tmp_path, family):
    torch.manual_seed(0)
    if family == "vit":
        model = transformers.ViTModel(transformers.ViTConfig(**TINY), add_pooling_layer=False)
    elif family == "dinov2":
        model = transformers.Dinov2Model(transformers.Dinov2Config(**TINY, mlp_ratio=2))
    else:
        model = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**TINY))
    folder = save(model.eval(), tmp_path / family)
    encoder = load_encoder(str(folder), "cpu")
    assert encoder.input_shape == (3, 32, 32)
    x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    normalised = (x - np.reshape(MEAN, (1, 3, 1, 1))) / np.reshape(STD, (1, 3, 1, 1))
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(normalised.astype(np.float32)))
    expected = out.last_hidden_state[:, 0] if family == "vit" else out.pooler_output
    np.testing.assert_allclose(encoder.predict(x), expected.numpy(), atol=1e-5)
    # the first transformer block, as PAP/SSP would hook it (names differ across families and versions)
    layer = next(n for n, _ in encoder.model.named_modules() if re.fullmatch(r"backbone\.(.*\.)?layers?\.0", n))
    activations = encoder.get_activations(x, layer)
    assert activations.shape == (2, 17, 32)  # 16 patches + CLS, hidden 32
    grad = encoder.loss_gradient(x, encoder.predict(x[::-1].copy()))
    assert np.abs(grad).sum() > 0


def test_a_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a Hugging Face model folder"):
        load_encoder(str(tmp_path), "cpu")
