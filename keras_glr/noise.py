"""Noise distributions injected into pre-activations.

A distribution is a tiny object: `sample(shape, seed)` draws r ~ f and
`score(r)` returns s(r) = -d log f(r) / dr, the factor the GLR estimator
multiplies the loss by (DESIGN.md section 1).
"""

import math

import keras
import tensorflow as tf
from keras import ops

_PHILOX = tf.random.Algorithm.PHILOX.value


def uniform_rows(rows, length, key, first_row, stream=0):
    """Uniforms on the grid k / 2^23 in [0, 1), shape (rows, length).

    Row i is block `first_row + i` (of `length` values, a multiple of 4) of
    the Philox stream (`key`, `stream`): counter-based, so a row's values
    depend only on its index, never on which rows are drawn with it.
    """
    if length % 4:
        raise ValueError(f"Stream rows hold whole Philox blocks: `length` must be a multiple of 4. Received: length={length}")
    counter = tf.stack([tf.cast(first_row, tf.uint64) * (length // 4), tf.constant(stream, tf.uint64)])
    size = tf.reshape(tf.cast(rows, tf.int32) * length, [1])
    u = tf.raw_ops.StatelessRandomUniformV2(shape=size, key=key, counter=counter, alg=_PHILOX)
    return tf.reshape(u, [-1, length])


def normal_rows(rows, length, key, first_row, stddev=1.0):
    """N(0, stddev^2) values, shape (rows, length), row-wise as `uniform_rows`.

    Box-Muller, vectorised: the first half of each row is R cos(T), the
    second R sin(T), with R = stddev sqrt(-2 log(1 - u)), T = 2 pi u', from
    two independent uniform streams. `length` must be a multiple of 8.
    About 1.6 times faster on CPU than TensorFlow's scalar normal kernel,
    and stddev costs nothing (it sits inside the square root).
    """
    if length % 8:
        raise ValueError(f"Box-Muller rows need `length` a multiple of 8. Received: length={length}")
    half = length // 2
    u = uniform_rows(rows, half, key, first_row, stream=0)
    angle = (2.0 * math.pi) * uniform_rows(rows, half, key, first_row, stream=1)
    radius = tf.sqrt(tf.math.log(1.0 - u) * (-2.0 * stddev**2))
    return tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=1)


def _per_row(weights, r):
    """weights (N,) reshaped to broadcast against r (N, ...), in r's dtype."""
    weights = tf.cast(weights, r.dtype)
    return tf.reshape(weights, [-1] + [1] * (len(r.shape) - 1))


def _check_positive(name, value):
    """Returns `value` as a float, or raises if it is not a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a "
            f"positive float. Received: {name}={value!r} "
            f"(of type {type(value).__name__})"
        )
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a "
            f"finite float > 0. Received: {name}={value!r}"
        )
    return value


class NoiseDistribution:
    """Base class: a zero-mean, symmetric density f with a score function."""

    def sample(self, shape, seed):
        """Draws noise of `shape` using `seed` (a `keras.random.SeedGenerator`)."""
        raise NotImplementedError

    def score(self, r):
        """Returns s(r) = -d log f(r) / dr, elementwise, same shape as `r`."""
        raise NotImplementedError

    def weighted_score(self, r, weights):
        """Returns weights[n] * s(r)[n, ...]; `weights` has shape (N,), r (N, ...)."""
        return _per_row(weights, r) * self.score(r)

    def summed_weighted_score(self, r, weights, copies):
        """sum_k weights[b, k] * s(r)[b, k, ...], shape (B, ...).

        r has shape (B * K, ...), weights (B * K,), copies is K.
        """
        terms = self.weighted_score(r, weights)
        return tf.reduce_sum(tf.reshape(terms, tf.concat([[-1, copies], tf.shape(r)[1:]], axis=0)), axis=1)

    def sample_rows(self, rows, length, key, first_row):
        """Draws noise of shape (rows, length) from a counter-based stream.

        Used for training noise: row i is the same whichever rows are drawn
        with it (see `uniform_rows`). `length` must be a multiple of 8.
        """
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_glr")
class Gaussian(NoiseDistribution):
    """Gaussian noise N(0, stddev^2); score s(r) = r / stddev^2.

    Args:
        stddev: float > 0, the standard deviation sigma. The paper uses
            sigma^2 = 4, i.e. `Gaussian(2.0)`.
    """

    def __init__(self, stddev=1.0):
        self.stddev = _check_positive("stddev", stddev)

    def sample(self, shape, seed):
        return keras.random.normal(shape, stddev=self.stddev, seed=seed)

    def score(self, r):
        return r / (self.stddev**2)

    def weighted_score(self, r, weights):
        # One pass over r: the 1 / sigma^2 goes into the (N,) weights.
        return _per_row(weights / (self.stddev**2), r) * r

    def summed_weighted_score(self, r, weights, copies):
        # One read of r: a (1, K) x (K, units) product per example.
        rows = tf.reshape(tf.cast(weights, r.dtype) / (self.stddev**2), [-1, 1, copies])
        units = tf.reshape(r, [tf.shape(rows)[0], copies, -1])
        summed = tf.linalg.matmul(rows, units)
        return tf.reshape(summed, tf.concat([[-1], tf.shape(r)[1:]], axis=0))

    def sample_rows(self, rows, length, key, first_row):
        return normal_rows(rows, length, key, first_row, self.stddev)

    def get_config(self):
        return {"stddev": self.stddev}

    def __repr__(self):
        return f"Gaussian(stddev={self.stddev})"


@keras.saving.register_keras_serializable(package="keras_glr")
class Laplace(NoiseDistribution):
    """Laplace noise with density exp(-|r| / b) / (2 b); score s(r) = sign(r) / b.

    Args:
        scale: float > 0, the scale b (variance 2 b^2).
    """

    def __init__(self, scale=1.0):
        self.scale = _check_positive("scale", scale)

    def sample(self, shape, seed):
        # |r| ~ Exponential(1 / b) drawn as -b log(u), u in (0, 1]; sign +-1.
        u = 1.0 - keras.random.uniform(shape, seed=seed)
        positive = keras.random.uniform(shape, seed=seed) < 0.5
        magnitude = -self.scale * ops.log(u)
        return ops.where(positive, magnitude, -magnitude)

    def score(self, r):
        return ops.sign(r) / self.scale

    def sample_rows(self, rows, length, key, first_row):
        # Inverse CDF: r = -b sign(u - 1/2) log(1 - 2 |u - 1/2|), with u on the
        # symmetric grid (k + 1/2) / 2^23, never 0 or 1.
        centred = uniform_rows(rows, length, key, first_row) + (2.0**-24 - 0.5)
        magnitude = -self.scale * tf.math.log1p(-2.0 * tf.abs(centred))
        return tf.where(centred < 0, -magnitude, magnitude)

    def get_config(self):
        return {"scale": self.scale}

    def __repr__(self):
        return f"Laplace(scale={self.scale})"


def get(identifier):
    """Returns a `NoiseDistribution` from an instance, a config dict or a name.

    Names: "gaussian" and "laplace" (unit scale).
    """
    if isinstance(identifier, NoiseDistribution):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, str):
        by_name = {"gaussian": Gaussian, "normal": Gaussian, "laplace": Laplace}
        if identifier.lower() in by_name:
            return by_name[identifier.lower()]()
    raise ValueError(
        "Invalid value received for argument `noise`. Expected a "
        "keras_glr.noise distribution such as `Gaussian(1.0)` or "
        f"`Laplace(1.0)`, or one of 'gaussian', 'laplace'. Received: "
        f"noise={identifier!r}"
    )
