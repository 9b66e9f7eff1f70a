"""Defences for pre-trained encoders and their downstream models (ART ``Trainer`` subclasses and more)."""
from art_ssl.defences import trainer

__all__ = ["trainer"]
