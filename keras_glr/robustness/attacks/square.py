"""Square Attack (Andriushchenko et al., ECCV 2020): random search, queries only, batched.

Each iteration proposes, for every example not yet misclassified, a change
of the current perturbation inside one random square window and keeps it
when the margin loss (true logit minus the largest other) goes down. The
window's side shrinks on the paper's schedule: a fraction p of the image,
p_init halved at 1%, 0.5%, 2%, 5%, 10%, 20%, 40%, 60% and 80% of the queries.

- L-inf: the perturbation starts as random vertical stripes of +-eps; a
  proposal sets the window to +-eps, one sign per channel.
- L2: the perturbation starts as a grid of +-"pseudo-Gaussian" squares
  scaled to norm eps; a proposal moves the mass of a second window into the
  first one, adding a new pseudo-Gaussian bump, and rescales to norm eps.

Like SPSA, it never asks for a gradient, so step units and noisy
prediction cannot mask one; with noisy prediction every query is an
average over noisy passes (EOT).
"""

import numpy as np
import tensorflow as tf

from keras_glr.robustness.attacks.spsa import margin


def window_fraction(p_init, iteration, iterations):
    """The paper's schedule for p, the share of the image one window covers."""
    progress = int(iteration / iterations * 10000)
    for limit, divisor in (
        (10, 1),
        (50, 2),
        (200, 4),
        (500, 8),
        (1000, 16),
        (2000, 32),
        (4000, 64),
        (6000, 128),
        (8000, 256),
        (10000, 512),
    ):
        if progress <= limit:
            return p_init / divisor
    return p_init / 512


def _pseudo_gaussian(rows, cols):
    """Concentric rectangles weighted 1 / (k + 1)^2, unit l2 norm, shape (rows, cols)."""
    delta = np.zeros((rows, cols))
    top, left = rows // 2, cols // 2
    for k in range(max(top, left) + 1):
        delta[max(top - k, 0) : top + k + 1, max(left - k, 0) : left + k + 1] += 1.0 / (k + 1) ** 2
    return delta / np.sqrt(np.sum(delta**2))


def _bump(side, rng):
    """Two pseudo-Gaussian halves of opposite sign, unit norm, randomly transposed: shape (side, side)."""
    delta = np.zeros((side, side))
    half = side // 2
    if half:
        delta[:half] = _pseudo_gaussian(half, side)
    delta[half:] = -_pseudo_gaussian(side - half, side)
    delta /= np.sqrt(np.sum(delta**2))
    return delta.T if rng.random() > 0.5 else delta


def square(
    model_fn, x, y, eps, norm=np.inf, queries=1000, p_init=None, image_shape=None, seed=0, clip_min=0.0, clip_max=1.0
):
    """Returns adversarial inputs of x's shape within eps (L-inf or L2) and [clip_min, clip_max].

    Args:
        model_fn: x -> logits (or log-probabilities), queried only.
        x: inputs, shape (N, ...); images, or flat inputs with `image_shape`.
        y: integer labels, shape (N,).
        eps: radius of the L-inf or L2 ball.
        norm: np.inf or 2.
        queries: iterations (one query per example still classified right, plus one to start).
        p_init: first window fraction (default 0.3 for L-inf, 0.1 for L2; the paper's values for MNIST).
        image_shape: (H, W, C) of one input when x is flat.
    """
    if norm not in (np.inf, 2):
        raise ValueError(f"Square Attack supports norm=np.inf or norm=2; received norm={norm!r}.")
    x0 = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    shape = tuple(image_shape) if image_shape is not None else x0.shape[1:]
    if len(shape) != 3 or int(np.prod(shape)) != int(np.prod(x0.shape[1:])):
        raise ValueError(
            f"Square Attack works on images (H, W, C); inputs of shape {x0.shape[1:]} need image_shape=(H, W, C)."
        )
    h, w, c = shape
    images = x0.reshape((-1,) + shape).astype(np.float64)
    rng = np.random.default_rng(seed)

    def loss(candidates, labels):
        logits = model_fn(tf.constant(candidates.reshape((-1,) + x0.shape[1:]).astype(np.float32)))
        return margin(np.asarray(logits), labels)

    if norm == np.inf:
        p_init = 0.3 if p_init is None else p_init
        best = np.clip(images + eps * rng.choice([-1.0, 1.0], size=(len(images), 1, w, c)), clip_min, clip_max)
    else:
        p_init = 0.1 if p_init is None else p_init
        delta = np.zeros_like(images)
        side = max(h // 5, 1)
        start = (h - side * 5) // 2
        for top in range(start, h - side + 1, side):
            for left in range(start, w - side + 1, side):
                signs = rng.choice([-1.0, 1.0], size=(len(images), 1, 1, c))
                delta[:, top : top + side, left : left + side, :] += _bump(side, rng)[None, :, :, None] * signs
        delta *= eps / np.sqrt(np.sum(delta**2, axis=(1, 2, 3), keepdims=True))
        best = np.clip(images + delta, clip_min, clip_max)
    best_margin = loss(best, y)
    rows, cols = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    for iteration in range(queries):
        active = np.flatnonzero(best_margin > 0)
        if not len(active):
            break
        x_a, best_a = images[active], best[active]
        delta = best_a - x_a
        p = window_fraction(p_init, iteration, queries)
        if norm == np.inf:
            side = int(min(max(round(np.sqrt(p * h * w)), 1), h - 1, w - 1))
            top = rng.integers(0, h - side, size=len(active))[:, None, None]
            left = rng.integers(0, w - side, size=len(active))[:, None, None]
            inside = ((rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side))[..., None]
            signs = eps * rng.choice([-1.0, 1.0], size=(len(active), 1, 1, c))
            candidate = np.clip(x_a + np.where(inside, signs, delta), clip_min, clip_max)
        else:
            candidate = _l2_proposal(x_a, delta, eps, p, rng, clip_min, clip_max)
        new_margin = loss(candidate, y[active])
        better = new_margin < best_margin[active]
        best[active[better]], best_margin[active[better]] = candidate[better], new_margin[better]
    return best.reshape(x0.shape).astype(np.float32)


def _l2_proposal(x, delta, eps, p, rng, clip_min, clip_max):
    """One L2 step for a batch: window 1 gets a new bump plus its old direction, window 2 is emptied into it."""
    n, h, w, c = x.shape
    side = int(min(max(round(np.sqrt(p * h * w)), 3), h - 1, w - 1))
    if side % 2 == 0 and side + 1 < min(h, w):
        side += 1  # odd sides, as the paper's
    t1, l1, t2, l2 = (int(rng.integers(0, limit - side)) for limit in (h, w, h, w))
    one = (slice(None), slice(t1, t1 + side), slice(l1, l1 + side))
    two = (slice(None), slice(t2, t2 + side), slice(l2, l2 + side))
    both = np.zeros((1, h, w, 1))
    both[0, t1 : t1 + side, l1 : l1 + side] = 1.0
    both[0, t2 : t2 + side, l2 : l2 + side] = 1.0
    window_norm = np.sqrt(np.sum(delta[one] ** 2, axis=(1, 2), keepdims=True))
    image_norm = np.sqrt(np.sum(delta**2, axis=(1, 2, 3), keepdims=True))
    mass = np.sqrt(np.sum((delta * both) ** 2, axis=(1, 2), keepdims=True))  # per channel, both windows
    bump = _bump(side, rng)[None, :, :, None] * rng.choice([-1.0, 1.0], size=(n, 1, 1, c))
    bump = bump + delta[one] / (1e-10 + window_norm)
    bump *= np.sqrt(np.maximum(eps**2 - image_norm**2, 0.0) / c + mass**2) / np.sqrt(
        np.sum(bump**2, axis=(1, 2), keepdims=True)
    )
    new = delta.copy()
    new[two] = 0.0
    new[one] = bump
    new *= eps / np.maximum(np.sqrt(np.sum(new**2, axis=(1, 2, 3), keepdims=True)), 1e-12)
    return np.clip(x + new, clip_min, clip_max)
