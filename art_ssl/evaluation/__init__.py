"""Evaluation that composes with ART: linear probes, and (later) the audit grid and reports."""
from art_ssl.evaluation.probe import ProbeResult, fit_linear_probe, linear_probe, probe_features, raw_pixel_probe

__all__ = ["ProbeResult", "fit_linear_probe", "linear_probe", "probe_features", "raw_pixel_probe"]
