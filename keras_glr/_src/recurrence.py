"""Recurrent layers under a GLR record: `keras.layers.RNN` runs unrolled.

A noisy cell reports every step's pre-activation and noise to the active
`ForwardRecord`, and the estimate reads those reports after the loss is
known: the cell's estimate is the sum over steps of each step's own VJP at
cotangent L * s(r_t), the step's inputs and carried state cut off from the
gradient. Reports made inside a `tf.while_loop` cannot leave it, so while a
noisy pass is recorded every `keras.layers.RNN` holding noisy layers runs as
the Python loop that `unroll=True` gives (`unrolled`); inference, export and
backprop without noise keep the layer's own form. Both forms compute the
same function, and call t of a cell reads stream (slot, t) whichever form
runs, so they give the same estimate for the same key.

What a step keeps until the estimate: its inputs (x_t and the carried
state, the VJP's operands) and its pre-activation and noise, each of shape
(B * K, ...): memory grows with the number of steps, as for backprop
through time. The sequence length must be known when the model is built.
"""

import contextlib

import keras

from keras_glr._src import keras_private
from keras_glr.layers import noisy_layers


def recurrent_layers(model):
    """The `keras.layers.RNN` layers of `model` (nested ones included) that hold noisy layers."""
    return [
        layer
        for layer in keras_private.sublayers(model, include_self=True)
        if isinstance(layer, keras.layers.RNN) and noisy_layers(layer)
    ]


@contextlib.contextmanager
def unrolled(model):
    """Within the block, every recurrent layer of `model` holding noisy layers runs unrolled.

    Raises ValueError, naming the layers, when one meets sequences of
    unknown length (an unrolled loop needs the number of steps).
    """
    layers = recurrent_layers(model)
    before = [layer.unroll for layer in layers]
    for layer in layers:
        layer.unroll = True
    try:
        yield layers
    except ValueError as error:
        if "Cannot unroll" not in str(error):
            raise
        raise ValueError(
            "A GLR step runs the recurrent layers that hold noisy cells unrolled "
            f"({', '.join(l.name for l in layers)}), "
            "so it needs the number of time steps, and it is unknown here. Give the Input a fixed length, e.g. "
            "keras.Input((time_steps, features)), and pad the sequences to it (a Masking layer skips the padding)."
        ) from None
    finally:
        for layer, unroll in zip(layers, before):
            layer.unroll = unroll
