"""The forward-pass recorder: how noisy layers report their signals.

Like `tf.GradientTape`, a record is explicit and scoped:

    with recording(copies=100) as record:
        y_pred = model(x)
    for entry in record.entries:          # one per noisy layer, in call order
        entry.layer, entry.pre_activation, entry.score

Inside the `with` block every noisy layer adds noise to its pre-activation
v = g(x; theta) + r and appends (layer, v, s(r)) to `record.entries`.
Outside one, noisy layers are deterministic (unless `noisy_inference=True`).

Copies. The K noise copies of example b occupy rows b*K .. b*K + K - 1. With
`fan_out=True` the model's input has one row per example and the first noisy
layer repeats its noiseless pre-activation K times, so everything before the
first noise is computed once per example, not K times.
"""

import contextlib
import dataclasses
import threading

import tensorflow as tf
from keras import ops

_state = threading.local()


@dataclasses.dataclass
class Entry:
    """What one noisy layer reported.

    Attributes:
        layer: the reporting layer.
        pre_activation: v = g(x; theta) + r, shape (N, ...) with N = batch * K.
        score: s(r), same shape as `pre_activation`.
    """

    layer: object
    pre_activation: object
    score: object


class ForwardRecord:
    """Collects the noisy layers' reports during one forward pass.

    Args:
        copies: K, noise copies per example.
        noise: whether layers add noise (False gives the noiseless network).
        local: whether layers stop the gradient at their inputs, so that
            differentiating a layer's pre-activation reaches its own weights
            only (the GLR locality rule).
        antithetic: draw noise in pairs (r, -r): copies 2j and 2j+1 of an
            example are partners. Needs an even K.
        fan_out: True when the model's input has one row per example; the
            first noisy layer then repeats its pre-activation K times.
        straight_through: False, or a dict {"slope": None or float}: step
            and sign units then pass gradients straight through (see
            `keras_glr.activations.straight_through`).
    """

    def __init__(self, copies=1, noise=True, local=True, antithetic=False, fan_out=False, straight_through=False):
        if antithetic and copies % 2:
            raise ValueError(f"Antithetic noise needs an even number of copies. Received: copies={copies}")
        self.copies = copies
        self.noise = noise
        self.local = local
        self.antithetic = antithetic
        self.fanned_out = not fan_out
        self.straight_through = straight_through
        self.entries = []

    def perturb(self, layer, v):
        """Returns v + r for `layer`'s noiseless pre-activation `v`; records it."""
        if not self.fanned_out:
            v = ops.repeat(v, self.copies, axis=0)
            self.fanned_out = True
        if not self.noise:
            return v
        r = self._draw(layer.noise, layer.seed_generator, tf.shape(v))
        v = v + r
        self.entries.append(Entry(layer, v, layer.noise.score(r)))
        return v

    def _draw(self, distribution, seed, shape):
        if not self.antithetic:
            return distribution.sample(shape, seed=seed)
        half_shape = tf.concat([[shape[0] // 2, 1], shape[1:]], axis=0)
        half = distribution.sample(half_shape, seed=seed)
        return tf.reshape(tf.concat([half, -half], axis=1), shape)


def current():
    """Returns the innermost active `ForwardRecord`, or None."""
    stack = getattr(_state, "stack", None)
    return stack[-1] if stack else None


@contextlib.contextmanager
def recording(**kwargs):
    """Context manager that activates a `ForwardRecord(**kwargs)`."""
    record = ForwardRecord(**kwargs)
    if not hasattr(_state, "stack"):
        _state.stack = []
    _state.stack.append(record)
    try:
        yield record
    finally:
        _state.stack.pop()
