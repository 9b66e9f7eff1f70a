"""Evaluation that composes with ART: linear probes, the attacker's label-free surrogate classifier, AutoAttack."""
from art_ssl.evaluation.autoattack import autoattack_accuracy
from art_ssl.evaluation.probe import ProbeResult, fit_linear_probe, linear_probe, probe_features, raw_pixel_probe
from art_ssl.evaluation.surrogate import surrogate_classifier

__all__ = [
    "ProbeResult", "autoattack_accuracy", "fit_linear_probe", "linear_probe", "probe_features", "raw_pixel_probe",
    "surrogate_classifier",
]  # fmt: skip
