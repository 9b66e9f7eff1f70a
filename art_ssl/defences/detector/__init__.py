"""ART ``EvasionDetector`` subclasses: ZePAD's training-free DAE detector."""

from art_ssl.defences.detector.zepad import ZePADDetector

__all__ = ["ZePADDetector"]
