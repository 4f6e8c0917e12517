"""Honest gradients for white-box attacks on GLR networks.

A step network has zero gradient almost everywhere, so a plain gradient
attack "fails" for the wrong reason (gradient masking). These wrap a model
into a logits function for cleverhans-style attacks:

- `bpda_model_fn`: BPDA (Athalye et al., 2018): the exact noiseless forward
  pass, with step and sign units passing gradients straight through.
- `eot_model_fn`: EOT: logits averaged over `samples` noisy forward passes
  (gradients straight through too), for models whose prediction is noisy.

No one surrogate is the right one for every network, so a white-box attack on
step or sign units runs once per slope in `SLOPES` and keeps, per example,
the worst case (`keras_glr.robustness.evaluation`).
"""

import tensorflow as tf

from keras_glr import activations
from keras_glr._src import keras_private
from keras_glr._src.recording import recording
from keras_glr.layers import LIFCell

#: The surrogate slopes BPDA tries on step and sign units: the identity, and the derivative of sigmoid(s u).
SLOPES = (None, 1.0, 10.0)


def bpda_model_fn(model, slope=None):
    """Returns x -> logits of the deterministic network, straight-through gradients."""

    def model_fn(x):
        with recording(copies=1, noise=False, local=False, straight_through={"slope": slope}):
            return model(x, training=False)

    return model_fn


def eot_model_fn(model, samples=16, slope=None):
    """Returns x -> logits averaged over `samples` noisy passes (straight-through)."""

    def model_fn(x):
        passes = model.noisy_forward(x, samples, straight_through={"slope": slope})
        return tf.reduce_mean(passes, axis=1)

    return model_fn


def has_noisy_prediction(model):
    """True when some layer keeps its noise at inference."""
    return any(getattr(layer, "noisy_inference", False) for layer in keras_private.sublayers(model))


def has_straight_through_units(model):
    """True when some unit is a step or a sign (spiking cells included): BPDA's surrogate slope then matters."""
    return any(
        getattr(layer, "activation", None) in (activations.step, activations.sign) or isinstance(layer, LIFCell)
        for layer in keras_private.sublayers(model)
    )
