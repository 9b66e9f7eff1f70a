"""ART estimators for SSL encoders and the downstream classifiers built on them."""

from art_ssl.estimators.classifier import HEADS, EncoderWithHead, encoder_classifier, mean_std_of
from art_ssl.estimators.encoder import PyTorchEncoder, negative_cosine_loss

__all__ = ["HEADS", "EncoderWithHead", "PyTorchEncoder", "encoder_classifier", "mean_std_of", "negative_cosine_loss"]
