"""
ART ``Trainer`` subclasses that fine-tune an encoder with a head (``PyTorchClassifier`` over an
``EncoderWithHead``): against adversarial examples Gen-AF, ZePAD, TRADES, MART, PGD-AT and plain
fine-tuning; against backdoors super-fine-tuning.
"""

from art_ssl.defences.trainer.base import EncoderHeadTrainer
from art_ssl.defences.trainer.finetune import FineTuningTrainer
from art_ssl.defences.trainer.genaf import GenAFTrainer
from art_ssl.defences.trainer.mart import MARTTrainer
from art_ssl.defences.trainer.super_finetune import SuperFineTuningTrainer, super_fine_tuning_lr
from art_ssl.defences.trainer.trades import TRADESTrainer
from art_ssl.defences.trainer.zepad import ZePADModel, ZePADTrainer

__all__ = [
    "EncoderHeadTrainer",
    "FineTuningTrainer",
    "GenAFTrainer",
    "MARTTrainer",
    "SuperFineTuningTrainer",
    "TRADESTrainer",
    "ZePADModel",
    "ZePADTrainer",
    "super_fine_tuning_lr",
]
