"""ART estimators for SSL encoders and the downstream classifiers built on them."""

from art_ssl.estimators.classifier import HEADS, EncoderWithHead, encoder_classifier
from art_ssl.estimators.encoder import PyTorchEncoder, negative_cosine_loss

__all__ = ["HEADS", "EncoderWithHead", "PyTorchEncoder", "encoder_classifier", "negative_cosine_loss"]
