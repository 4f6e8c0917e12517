"""Robustness: adversarial attacks, natural corruptions, and their evaluation."""

from keras_glr.robustness import attacks
from keras_glr.robustness import corruptions

__all__ = ["attacks", "corruptions"]
