"""
Where a SimCLR pre-training step's time goes on a GPU (GPU lease 3): the exact script that measured the "step split"
table of README.md in this folder, one run on an H200. Run from the repository root with kornia importable:

    PYTHONPATH=. OMP_NUM_THREADS=2 python3 evaluations/results/gpu_h200/run3/step_split.py
"""

import time

import torch
import torch.nn as nn

from art_ssl.models import build_encoder
from art_ssl.ssl import pretrain
from art_ssl.ssl.augment import ssl_augmentation
from art_ssl.zoo import ZOO_ARCH

x = torch.rand(512 * 30, 1, 64, 64).numpy()
for name, aug, bench, amp, bs in [
    ("kornia", None, False, "auto", 512),
    ("identity-aug", nn.Identity(), False, "auto", 512),
    ("kornia+cudnn.benchmark", None, True, "auto", 512),
    ("kornia fp32", None, False, False, 512),
    ("kornia bs1024", None, False, "auto", 1024),
]:
    torch.backends.cudnn.benchmark = bench
    enc = build_encoder(ZOO_ARCH[0], **ZOO_ARCH[1])
    pretrain(
        enc,
        x[: bs * 3],
        "simclr",
        nb_epochs=1,
        batch_size=bs,
        device_type="gpu",
        augmentation=aug,
        amp=amp,
        verbose=False,
    )
    torch.cuda.synchronize()
    t = time.perf_counter()
    pretrain(enc, x, "simclr", nb_epochs=1, batch_size=bs, device_type="gpu", augmentation=aug, amp=amp, verbose=False)
    torch.cuda.synchronize()
    s = time.perf_counter() - t
    print(
        f"{name}: {s / (len(x) // bs) * 1000:.1f} ms/step, {s / len(x) * 60000:.1f} s per 60k-image epoch", flush=True
    )
aug = ssl_augmentation(64, 1).cuda()
b = torch.rand(512, 1, 64, 64, device="cuda")
for _ in range(3):
    aug(b)
torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(20):
    aug(b)
torch.cuda.synchronize()
print(f"kornia view of 512: {(time.perf_counter() - t) / 20 * 1000:.1f} ms", flush=True)
