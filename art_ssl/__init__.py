"""
art_ssl: an Adversarial Robustness Toolbox (ART) plugin for pre-trained self-supervised image encoders.

Sub-packages: ``estimators`` (PyTorchEncoder, encoder_classifier), ``models``, ``data``, ``ssl`` (pre-training),
``zoo`` (shipped encoders), ``evaluation`` (linear probe), ``metrics``, ``core`` (shared torch helpers).
"""

__version__ = "0.2.0"
