"""Operator norms of a noisy layer's linear map, for certificates in input space.

A noisy layer's pre-activation is affine, u(x) = A x + b, so an input
perturbation d moves it by A d and ||A d||_p <= ||A||_{p->p} ||d||_p. A
radius certified around u therefore certifies radius / ||A||_{p->p} around x.
The certificate needs an *upper* bound on the norm (a smaller norm would claim
a larger radius than is proved), so:

- `upper_bound(layer, input_shape, "l2")`: the exact largest singular value
  of A when its matrix is small enough to build (every dense layer; a conv
  with up to `EXACT_LIMIT` matrix entries: one unit input per column, each
  entry a single kernel value, then an SVD in float64); for a larger conv,
  the largest singular value of the circular convolution on a grid large
  enough to contain the zero-padded one (Sedghi et al., 2019): A is a
  restriction of that operator, so its norm is no larger (strides only drop
  outputs).
- `upper_bound(layer, input_shape, "l1")`: exact for both, the largest
  column sum max_j sum_i |A_ij| (for a conv: the transposed convolution
  with |K| applied to ones).
- a `NoisyConv2D` with `pool_size` has u(x) = maxpool(A x + b), pooled over
  disjoint windows. That pool is 1-Lipschitz in l1 and l2
  (|max a - max a'| <= max |a - a'| per window), so the bounds on A bound
  the pooled layer too.
- `power_iteration(layer, input_shape)`: the l2 norm estimated from below
  by power iteration on A^T A (A and its transpose through autodiff), to
  show how tight the upper bound is.
"""

import keras
import numpy as np
import tensorflow as tf

NORMS = ("l2", "l1")
EXACT_LIMIT = 2**25  # matrix entries (256 MiB in float64)


def linear_map(layer):
    """x -> A x: the layer's pre-activation without its bias, for a batch of inputs."""
    if _is_conv(layer):
        return lambda x: layer.convolution_op(x, layer.kernel)
    return lambda x: tf.matmul(x, layer.kernel)


def _is_conv(layer):
    return isinstance(layer, keras.layers.Conv2D)


def _is_dense(layer):
    return isinstance(layer, keras.layers.Dense)


def _check(layer, norm):
    if norm not in NORMS:
        raise ValueError(f"Invalid norm {norm!r}: expected one of {list(NORMS)}.")
    if not (_is_conv(layer) or _is_dense(layer)):
        raise ValueError(
            f"Operator norms are implemented for dense and 2-D convolution layers; received "
            f"{type(layer).__name__} ({layer.name})."
        )
    if _is_conv(layer) and getattr(layer, "groups", 1) != 1:
        raise ValueError(
            f"{layer.name} is a grouped convolution (groups={layer.groups}); its operator norm is not implemented."
        )


def upper_bound(layer, input_shape, norm="l2"):
    """An upper bound on ||A||_{p->p} of `layer`'s linear map (see the module docstring).

    Args:
        layer: a built `NoisyDense` or `NoisyConv2D` (any keras Dense / Conv2D).
        input_shape: one input's shape, e.g. (196,) or (14, 14, 1).
        norm: "l2" or "l1".
    """
    _check(layer, norm)
    kernel = np.asarray(layer.kernel, dtype=np.float64)
    if _is_dense(layer):
        # u = x @ W, so A = W^T: its l2 norm is W's, its columns are W's rows.
        return float(np.linalg.norm(kernel, 2)) if norm == "l2" else float(np.abs(kernel).sum(axis=1).max())
    if norm == "l1":
        return _conv_l1(layer, input_shape)
    outputs = int(np.prod(layer.compute_output_shape((1,) + tuple(input_shape))[1:]))
    if int(np.prod(input_shape)) * outputs <= EXACT_LIMIT:
        return float(np.linalg.norm(dense_matrix(layer, input_shape), 2))
    return circular_bound(layer, input_shape)


def _spatial(layer, input_shape):
    return tuple(input_shape[:2]) if layer.data_format == "channels_last" else tuple(input_shape[1:])


def circular_bound(layer, input_shape):
    """Largest singular value of the circular convolution that contains the layer's: >= ||A||_2."""
    kernel = np.asarray(layer.kernel, dtype=np.float64)
    kh, kw, cin, cout = kernel.shape
    dh, dw = layer.dilation_rate
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    h, w = _spatial(layer, input_shape)
    grid = np.zeros((h + eh - 1, w + ew - 1, cin, cout))
    grid[:eh:dh, :ew:dw] = kernel
    spectrum = np.fft.fft2(grid, axes=(0, 1))  # (H', W', cin, cout): one matrix per frequency
    return float(np.linalg.svd(spectrum, compute_uv=False).max())


def _conv_l1(layer, input_shape):
    """max_j sum_i |A_ij| = max of |A|^T 1, with |A| the convolution by |K|."""
    ones = tf.ones((1,) + tuple(input_shape), dtype=tf.float64)
    absolute = tf.abs(tf.cast(layer.kernel, tf.float64))
    with tf.GradientTape() as tape:
        tape.watch(ones)
        total = tf.reduce_sum(layer.convolution_op(ones, absolute))
    return float(tf.reduce_max(tape.gradient(total, ones)))


def power_iteration(layer, input_shape, iterations=500, seed=0):
    """||A||_2 estimated from below: ||A v|| after `iterations` steps v <- A^T A v / ||A^T A v||.

    A v is the layer's linear map; A^T w comes from its gradient. Returns a float.
    """
    apply = linear_map(layer)
    v = tf.random.stateless_normal((1,) + tuple(input_shape), seed=[seed, 0])
    v = v / tf.norm(v)
    for _ in range(iterations):
        with tf.GradientTape() as tape:
            tape.watch(v)
            energy = 0.5 * tf.reduce_sum(tf.square(apply(v)))
        back = tape.gradient(energy, v)  # A^T A v
        v = back / tf.norm(back)
    return float(tf.norm(apply(v)))


def dense_matrix(layer, input_shape):
    """The matrix of the layer's linear map, shape (D_in, D_out): row j is A e_j (for tests and small layers)."""
    size = int(np.prod(input_shape))
    basis = tf.reshape(tf.eye(size), (size,) + tuple(input_shape))
    return np.asarray(tf.reshape(linear_map(layer)(basis), [size, -1]), dtype=np.float64)
