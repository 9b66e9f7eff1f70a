"""Evaluation that composes with ART: the audit grid and its report, linear probes, the attacker's label-free
surrogate classifier, AutoAttack, and the threat model the grid and the evaluation scripts share (craft a universal
perturbation, build the downstream victim, apply the perturbation)."""

from art_ssl.evaluation.autoattack import autoattack_accuracy
from art_ssl.evaluation.grid import GridConfig, run_grid
from art_ssl.evaluation.probe import ProbeResult, fit_linear_probe, linear_probe, probe_features, raw_pixel_probe
from art_ssl.evaluation.report import write_report
from art_ssl.evaluation.store import ResultStore, ResultsWriteError
from art_ssl.evaluation.surrogate import surrogate_classifier
from art_ssl.evaluation.threat import (
    apply_perturbation,
    build_victim,
    craft_perturbation,
    defended_encoder,
    universal_perturbations,
)

__all__ = [
    "GridConfig",
    "ProbeResult",
    "ResultStore",
    "ResultsWriteError",
    "apply_perturbation",
    "autoattack_accuracy",
    "build_victim",
    "craft_perturbation",
    "defended_encoder",
    "fit_linear_probe",
    "linear_probe",
    "probe_features",
    "raw_pixel_probe",
    "run_grid",
    "surrogate_classifier",
    "universal_perturbations",
    "write_report",
]
