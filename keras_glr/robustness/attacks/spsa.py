"""SPSA (Uesato et al., 2018): a gradient-free L-inf attack, batched.

The model is only queried, never differentiated, so step units and noisy
prediction cannot hide a weakness behind a zero or random gradient. Each
step estimates the gradient of the margin loss by simultaneous perturbation,

    g = mean_i [(f(x + c d_i) - f(x - c d_i)) / (2 c)] d_i,   d_i in {-1, +1}^D,

takes an Adam step on it and projects back onto the eps-ball around the
input and the [0, 1] box. The returned input is, per example, the iterate
with the lowest margin seen.
"""

import numpy as np
import tensorflow as tf


def margin(logits, y):
    """logit of the true class minus the largest other logit, shape (N,): < 0 means misclassified."""
    logits = np.asarray(logits, dtype=np.float64)
    true = logits[np.arange(len(y)), y]
    others = logits.copy()
    others[np.arange(len(y)), y] = -np.inf
    return true - others.max(axis=1)


def spsa(model_fn, x, y, eps, steps=20, samples=64, delta=0.01, learning_rate=0.01, seed=0, batch_rows=20000):
    """Returns adversarial inputs, shape of x, within eps (L-inf) and [0, 1].

    Args:
        model_fn: x -> logits (or log-probabilities), queried only.
        x: inputs, shape (N, ...), values in [0, 1].
        y: integer labels, shape (N,).
        eps: L-inf radius.
        steps: SPSA iterations.
        samples: perturbations d per iteration and example (in +-pairs).
        delta: c, the finite-difference step.
    """
    x0 = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    n, shape = len(x0), x0.shape[1:]
    flat0 = x0.reshape(n, -1)
    rng = np.random.default_rng(seed)

    def query(rows):
        out = [
            np.asarray(model_fn(tf.constant(rows[i : i + batch_rows].reshape((-1,) + shape))))
            for i in range(0, len(rows), batch_rows)
        ]
        return np.concatenate(out)

    current = flat0.copy()
    best = current.copy()
    best_margin = margin(query(current), y)
    m, v = np.zeros_like(current), np.zeros_like(current)
    half = max(1, samples // 2)
    for step in range(1, steps + 1):
        d = rng.choice(np.float32([-1.0, 1.0]), size=(n, half, current.shape[1]))
        points = np.concatenate([current[:, None] + delta * d, current[:, None] - delta * d], axis=1)
        values = margin(query(points.reshape(n * 2 * half, -1)), np.repeat(y, 2 * half)).reshape(n, 2 * half)
        slope = (values[:, :half] - values[:, half:]) / (2 * delta)
        gradient = np.mean(slope[:, :, None] * d, axis=1)
        m = 0.9 * m + 0.1 * gradient
        v = 0.999 * v + 0.001 * gradient**2
        update = (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
        current = np.clip(current - learning_rate * update, flat0 - eps, flat0 + eps)
        current = np.clip(current, 0.0, 1.0).astype(np.float32)
        now = margin(query(current), y)
        better = now < best_margin
        best[better], best_margin[better] = current[better], now[better]
    return best.reshape(x0.shape)
