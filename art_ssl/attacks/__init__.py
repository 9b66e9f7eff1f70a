"""Attacks on self-supervised encoders."""
