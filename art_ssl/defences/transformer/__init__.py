"""ART ``Transformer`` defences that return a cleaned encoder."""

from art_ssl.defences.transformer.distillation import EncoderDistillation

__all__ = ["EncoderDistillation"]
