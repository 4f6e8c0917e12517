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
        noise: r, same shape as `pre_activation`.
        distribution: the `NoiseDistribution` r was drawn from.
        copies: K.
        clean: g(x; theta) with one row per example, shape (B, ...), when the
            layer fanned the examples out into copies; else None.
    """

    layer: object
    pre_activation: object
    noise: object
    distribution: object
    copies: int = 1
    clean: object = None

    @property
    def score(self):
        """s(r), same shape as `pre_activation`."""
        return self.distribution.score(self.noise)

    def weighted_score(self, weights):
        """weights[n] * s(r)[n, ...] for per-row weights of shape (N,)."""
        return self.distribution.weighted_score(self.noise, weights)

    def target_and_cotangent(self, weights):
        """(tensor, cotangent) whose VJP is this layer's GLR estimate.

        sum_n weights[n] * s(r_n) * dv_n/dtheta. For a fanned-out layer
        v_n = clean_b + r_n, so the K copies of example b are summed first:
        the VJP of `clean` at sum_k weights[b, k] * s(r_bk), shape (B, ...).
        """
        if self.clean is None:
            return self.pre_activation, self.weighted_score(weights)
        return self.clean, self.distribution.summed_weighted_score(self.noise, weights, self.copies)


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
        keys: optional {layer name: stream key (uint64, shape (1,))}. With
            keys, a layer's noise for example b (of the whole batch) and copy
            k is a fixed element of row b of the layer's stream (see
            `noise.uniform_rows`), whatever part of the batch this pass
            holds: chunked passes and replicas draw the noise of one pass
            over the whole batch.
        first_example: index, in the whole batch, of this pass's first example.
    """

    def __init__(self, copies=1, noise=True, local=True, antithetic=False, fan_out=False, straight_through=False,
                 keys=None, first_example=0):
        if antithetic and copies % 2:
            raise ValueError(f"Antithetic noise needs an even number of copies. Received: copies={copies}")
        self.copies = copies
        self.noise = noise
        self.local = local
        self.antithetic = antithetic
        self.fanned_out = not fan_out
        self.straight_through = straight_through
        self.keys = keys
        self.first_example = first_example
        self.entries = []

    def perturb(self, layer, v):
        """Returns v + r for `layer`'s noiseless pre-activation `v`; records it.

        At the first noisy layer of a fanned-out pass, v has one row per
        example and v + r one row per copy: the rows are broadcast, not
        repeated first.
        """
        fan_out = not self.fanned_out
        self.fanned_out = True
        if not self.noise:
            return ops.repeat(v, self.copies, axis=0) if fan_out else v
        shape = tf.shape(v)
        if fan_out:
            shape = tf.concat([[shape[0] * self.copies], shape[1:]], axis=0)
        if self.keys is not None and layer.name in self.keys:
            r = self._draw_stream(layer.noise, self.keys[layer.name], shape, v.shape[1:])
        else:
            r = self._draw(layer.noise, layer.seed_generator, shape)
        clean = v
        if fan_out:
            per_example = tf.concat([[-1, self.copies], shape[1:]], axis=0)
            v = tf.reshape(tf.reshape(r, per_example) + tf.expand_dims(v, 1), shape)
        else:
            v = v + r
        self.entries.append(Entry(layer, v, r, layer.noise, self.copies, clean if fan_out else None))
        return v

    def _draw(self, distribution, seed, shape):
        if not self.antithetic:
            return distribution.sample(shape, seed=seed)
        half_shape = tf.concat([[shape[0] // 2, 1], shape[1:]], axis=0)
        half = distribution.sample(half_shape, seed=seed)
        return tf.reshape(tf.concat([half, -half], axis=1), shape)


    def _draw_stream(self, distribution, key, shape, unit_shape):
        """Noise of `shape` for rows b*K + k, read from example b's row of the stream.

        Example b (counted in the whole batch) owns row b of the layer's
        stream: its K * units values (K / 2 * units with antithetic pairs),
        the row rounded up to a multiple of 8.
        """
        units = 1
        for d in unit_shape:
            units *= int(d)
        drawn = self.copies // 2 if self.antithetic else self.copies
        length = -(-drawn * units // 8) * 8
        examples = shape[0] // self.copies
        r = distribution.sample_rows(examples, length, key, self.first_example)
        if length != drawn * units:
            r = r[:, : drawn * units]
        r = tf.reshape(r, [examples, drawn, units])
        if self.antithetic:
            r = tf.reshape(tf.stack([r, -r], axis=2), [examples, self.copies, units])
        return tf.reshape(r, shape)


def stream_key(seed):
    """A Philox key (uint64, shape (1,)) from a Keras seed (two 32-bit values)."""
    return tf.reshape(tf.bitcast(tf.cast(seed, tf.uint32), tf.uint64), [1])


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
