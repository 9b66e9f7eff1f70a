"""Poisoning attacks on pre-trained encoders (ART ``PoisoningAttackTransformer`` subclasses) and their triggers."""

from art_ssl.attacks.poisoning.bad_encoder import BadEncoder, freeze_batchnorm
from art_ssl.core.trigger import Trigger, square_trigger

__all__ = ["BadEncoder", "Trigger", "freeze_batchnorm", "square_trigger"]
