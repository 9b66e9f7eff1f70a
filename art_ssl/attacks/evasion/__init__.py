"""Downstream-agnostic universal evasion attacks on pre-trained encoders, as ART ``EvasionAttack`` subclasses, and
torchattacks' attacks on downstream classifiers (``TorchattacksAttack``)."""

from art_ssl.attacks.evasion.adv_encoder import AdvEncoder, UniversalGenerator
from art_ssl.attacks.evasion.pap import PAP
from art_ssl.attacks.evasion.ssp import SSP
from art_ssl.attacks.evasion.torchattacks_wrapper import TorchattacksAttack
from art_ssl.attacks.evasion.uap_epgd import UAPEPGD
from art_ssl.attacks.evasion.universal_base import UniversalEncoderAttack

__all__ = [
    "PAP",
    "SSP",
    "UAPEPGD",
    "AdvEncoder",
    "TorchattacksAttack",
    "UniversalEncoderAttack",
    "UniversalGenerator",
]
