"""Noise distributions injected into pre-activations.

A distribution is a tiny object: `sample(shape, seed)` draws r ~ f and
`score(r)` returns s(r) = -d log f(r) / dr, the factor the GLR estimator
multiplies the loss by (docs/guides/estimator.md, "The formula").
"""

import math

import keras
import tensorflow as tf
from keras import ops

from keras_glr._src.streams import normal_rows
from keras_glr._src.streams import uniform_rows


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
            f"Invalid value received for argument `{name}`. Expected a finite float > 0. Received: {name}={value!r}"
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

    def sample_rows(self, rows, length, key, first_row, stream=0):
        """Draws noise of shape (rows, length) from a counter-based stream.

        Used for training and noisy-prediction noise: row i of stream
        (`key`, `stream`) is the same whichever rows are drawn with it (see
        `keras_glr._src.streams`). `length` must be a multiple of 8.
        """
        raise NotImplementedError

    def quantile(self, u):
        """The inverse CDF: F^-1(u) for u in (0, 1), elementwise, in u's dtype."""
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

    def quantile(self, u):
        return self.stddev * tf.math.ndtri(u)

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

    def sample_rows(self, rows, length, key, first_row, stream=0):
        return normal_rows(rows, length, key, first_row, self.stddev, stream)

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
        return self._from_uniform(keras.random.uniform(shape, seed=seed))

    def score(self, r):
        return ops.sign(r) / self.scale

    def quantile(self, u):
        centred = u - 0.5
        magnitude = -self.scale * tf.math.log1p(-2.0 * tf.abs(centred))
        return tf.where(centred < 0, -magnitude, magnitude)

    def sample_rows(self, rows, length, key, first_row, stream=0):
        return self._from_uniform(uniform_rows(rows, length, key, first_row, stream))

    def _from_uniform(self, u):
        """Inverse CDF: r = -b sign(c) log(1 - 2 |c|), c = u - 1/2 moved onto
        the symmetric grid (k + 1/2) / 2^23, never 0 or 1. sign(c) and |c|
        are independent, so are the sign and magnitude of r."""
        centred = ops.cast(u, "float32") + (2.0**-24 - 0.5)
        magnitude = -self.scale * ops.log1p(-2.0 * ops.abs(centred))
        return ops.where(centred < 0, -magnitude, magnitude)

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
