"""Write the Fashion-MNIST subset shipped in the package: 5,000 train and 1,000 test images, class-balanced, seed 0.

python evaluations/make_subset.py   # needs `apt-get install dataset-fashion-mnist`
"""

from pathlib import Path

import numpy as np

from art_ssl.data import FASHION_MNIST_ROOT, read_idx, subsample

OUT = Path(__file__).resolve().parents[1] / "art_ssl" / "data" / "fashion_mnist_subset.npz"


def main() -> None:
    arrays = {}
    for split, prefix, n in (("train", "train", 5000), ("test", "t10k", 1000)):
        x = read_idx(f"{FASHION_MNIST_ROOT}/{prefix}-images-idx3-ubyte.gz")
        y = read_idx(f"{FASHION_MNIST_ROOT}/{prefix}-labels-idx1-ubyte.gz").astype(np.uint8)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = subsample(x, y, n, seed=0)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
