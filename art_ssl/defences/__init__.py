"""Defences for pre-trained encoders and their downstream models (ART ``Trainer`` subclasses and more)."""

from art_ssl.defences import detector, trainer, transformer
from art_ssl.defences.zepad_io import load_zepad, save_zepad

__all__ = ["detector", "load_zepad", "save_zepad", "trainer", "transformer"]
