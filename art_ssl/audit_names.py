"""
The names the audit accepts (attacks, defences, dataset kinds), in a module that imports nothing, so that
``art-ssl audit --help`` lists them without importing torch or ART. :mod:`art_ssl.evaluation.registry` and
:mod:`art_ssl.evaluation.sources` re-export them; this is their one definition.
"""

# Universal (downstream-agnostic) perturbations crafted on the public encoder; the first five need no surrogate head.
UNIVERSAL_ATTACKS = ("advencoder", "pap_base", "pap_ugs", "pap_fuse", "ssp", "uapepgd", "art_uap")
ENCODER_ATTACKS = ("advencoder", "pap_base", "pap_ugs", "pap_fuse", "ssp")
# White-box attacks on the downstream classifier: ART's PGD, pyautoattack's run_standard_evaluation, ART's
# AutoAttack, and any torchattacks attack as ``torchattacks:<Name>`` (e.g. ``torchattacks:APGD``).
WHITEBOX_ATTACKS = ("pgd", "autoattack", "art_autoattack")
# Backdoor: the recorded trigger of a backdoored zoo encoder (art_ssl.zoo.backdoor_targets).
BACKDOOR_ATTACKS = ("badencoder",)
DEFENCES = ("none", "finetune", "pgd_at", "trades", "mart", "genaf", "super_finetune", "zepad", "distillation")
DATA_KINDS = (
    "fashion-mnist",
    "fashion-mnist-subset",
    "digits",
    "mnist",
    "kmnist",
    "cifar10:ROOT",
    "stl10:ROOT",
    "folder:ROOT",
)
