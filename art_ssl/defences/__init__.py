"""Defences for pre-trained encoders and their downstream models (ART ``Trainer`` subclasses and more)."""

from art_ssl.defences import detector, trainer, transformer

__all__ = ["detector", "trainer", "transformer"]
