"""The batched SSL views (:class:`art_ssl.ssl.augment.BatchedSSLViews`): the geometry against a plain crop and
resize, the jitter's ranges and the seed (pre-training with either implementation: tests/ssl/test_pretrain.py)."""

import pytest
import torch
import torch.nn.functional as F

from art_ssl.ssl import BatchedSSLViews, ssl_augmentation
from art_ssl.ssl.augment import _shift_hue, crop_boxes, resized_crops

BOXES = torch.tensor(
    [[3.0, 5.0, 40.0, 30.0], [0.0, 0.0, 64.0, 64.0], [10.0, 20.0, 13.0, 44.0], [50.0, 1.0, 14.0, 63.0]]
)


def test_resized_crops_equal_slicing_and_bilinear_resize_inside_the_box():
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    out = resized_crops(x, BOXES, (32, 24))
    for b, (top, left, h, w) in enumerate(BOXES.tolist()):
        crop = x[b : b + 1, :, int(top) : int(top + h), int(left) : int(left + w)]
        reference = F.interpolate(crop, size=(32, 24), mode="bilinear", align_corners=False)
        # pixels whose sampling point lies inside the box (at the box's edge the full image has neighbours that
        # the sliced crop has not: both kornia and this sampler read them)
        ys = top + (torch.arange(32) + 0.5) * h / 32 - 0.5
        xs = left + (torch.arange(24) + 0.5) * w / 24 - 0.5
        rows, cols = (ys >= top) & (ys <= top + h - 1), (xs >= left) & (xs <= left + w - 1)
        assert rows.sum() >= 28 and cols.sum() >= 20
        torch.testing.assert_close(out[b][:, rows][:, :, cols], reference[0][:, rows][:, :, cols], atol=1e-5, rtol=0)


def test_mirrored_crops_are_the_crops_flipped():
    x = torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    mirror = torch.tensor([True, False, True, True])
    plain, flipped = resized_crops(x, BOXES, (64, 64)), resized_crops(x, BOXES, (64, 64), mirror=mirror)
    torch.testing.assert_close(flipped[mirror], plain[mirror].flip(-1))
    torch.testing.assert_close(flipped[~mirror], plain[~mirror])


def test_crop_boxes_follow_the_scale_and_ratio_and_stay_inside():
    torch.manual_seed(0)
    top, left, h, w = crop_boxes(20_000, 64, 48, (0.2, 1.0), (3 / 4, 4 / 3), torch.device("cpu")).unbind(dim=1)
    area = h * w / (64 * 48)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 64).all() and (left + w <= 48).all()
    assert area.min() >= 0.2 - 0.02 and area.max() <= 1.0  # integer sides round the area
    assert (w / h).min() >= 3 / 4 - 0.05 and (w / h).max() <= 4 / 3 + 0.05
    assert area.std() > 0.15 and (top > 0).float().mean() > 0.5  # really random, not a fixed box


def test_no_crop_no_flip_no_jitter_is_the_identity():
    views = BatchedSSLViews(
        64, 3, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), jitter_p=0.0, grayscale_p=0.0, flip=False
    )
    x = torch.rand(8, 3, 64, 64)
    torch.testing.assert_close(views(x), x)


def test_brightness_and_contrast_stay_in_their_ranges_on_grey_images():
    torch.manual_seed(0)
    views = BatchedSSLViews(32, 1, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), jitter=0.4, jitter_p=1.0, flip=False)
    x = torch.full((2000, 1, 32, 32), 0.5)  # constant images: contrast changes nothing, brightness scales
    factor = views(x)[:, 0, 0, 0] / 0.5
    assert factor.min() >= 0.6 - 1e-6 and factor.max() <= 1.4 + 1e-6
    assert factor.std() > 0.2  # uniform on [0.6, 1.4]: std 0.23
    views.jitter_p = 0.0
    torch.testing.assert_close(views(x), x)


def test_hue_rotation_by_a_third_turn_permutes_the_channels():
    x = torch.rand(4, 3, 8, 8)
    torch.testing.assert_close(_shift_hue(x, torch.zeros(4)), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(_shift_hue(x, torch.full((4,), 1 / 3)), x[:, [2, 0, 1]], atol=1e-6, rtol=0)


def test_same_seed_same_views_and_colour_views_are_in_range():
    views = ssl_augmentation(32, 3, implementation="batched")
    x = torch.rand(64, 3, 40, 40)
    torch.manual_seed(3)
    first = views(x)
    torch.manual_seed(3)
    second = views(x)
    assert first.shape == (64, 3, 32, 32) and torch.equal(first, second)
    assert first.min() >= 0 and first.max() <= 1
    grey = (first[:, 0] == first[:, 1]).flatten(1).all(dim=1) & (first[:, 1] == first[:, 2]).flatten(1).all(dim=1)
    assert 0 < grey.float().mean() < 0.5  # random grey-scale at p = 0.2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channels": 2}, "`channels`"),
        ({"crop_scale": (0.0, 1.0)}, "`crop_scale`"),
        ({"crop_ratio": (2.0, 1.0)}, "`crop_ratio`"),
        ({"jitter_p": 1.5}, "`jitter_p`"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BatchedSSLViews(**{"size": 32, "channels": 1, **kwargs})
    with pytest.raises(ValueError, match="`implementation`"):
        ssl_augmentation(32, 1, implementation="torchvision")
