"""Self-supervised pre-training: SimCLR, MoCo v2, BYOL, SimSiam and Barlow Twins, with their view augmentations."""

from art_ssl.core.losses import nt_xent
from art_ssl.ssl.augment import BatchedSSLViews, ssl_augmentation
from art_ssl.ssl.methods import BYOL, METHODS, BarlowTwins, MoCo, SimCLR, SimSiam, SSLMethod
from art_ssl.ssl.pretrain import OPTIMIZER_DEFAULTS, PretrainResult, feature_dim_of, pretrain

__all__ = [
    "BYOL",
    "BatchedSSLViews",
    "METHODS",
    "OPTIMIZER_DEFAULTS",
    "BarlowTwins",
    "MoCo",
    "PretrainResult",
    "SSLMethod",
    "SimCLR",
    "SimSiam",
    "feature_dim_of",
    "nt_xent",
    "pretrain",
    "ssl_augmentation",
]
