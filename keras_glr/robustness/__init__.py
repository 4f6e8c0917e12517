"""Robustness: adversarial attacks, natural corruptions, certificates, and their evaluation."""

from keras_glr.robustness import attacks
from keras_glr.robustness import corruptions
from keras_glr.robustness.certification import Certificate
from keras_glr.robustness.certification import certify

__all__ = ["Certificate", "attacks", "certify", "corruptions"]
