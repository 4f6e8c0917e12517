"""HopSkipJump (Chen, Jordan and Wainwright, 2020): a decision-based L-inf attack, batched.

It reads only the predicted class, never a score or a gradient, so neither a
step network's flat gradient nor the randomness of a noisy prediction can
mask a weakness. Per example:

1. start from a misclassified point (uniform noise, the first of up to 100
   draws that the model gets wrong) and bisect toward the input, down to the
   decision boundary;
2. at the boundary point x_b, estimate the direction toward the adversarial
   side from the decisions phi(x_b + delta u_i) = +-1 at n uniform directions
   u_i in [-1, 1]^d:  g = mean_i (phi_i - mean phi) u_i;
3. step along sign(g) by a geometric search (step dist / sqrt(t), halved
   until the point is adversarial), then bisect toward the input again.

The distance to the input shrinks with every iteration. An example counts as
broken at `eps` when its final point is within eps (L-inf) of the input:
then that point is returned, otherwise the input itself.
"""

import numpy as np
import tensorflow as tf


def hop_skip_jump(model_fn, x, y, eps, iterations=40, initial_evals=100, max_evals=1000, seed=0, batch_rows=20000):
    """Returns inputs, shape of x: an adversarial point within eps (L-inf) where one was found, else the input.

    Args:
        model_fn: x -> logits or scores; only their arg-max is read.
        x: inputs, shape (N, ...), values in [0, 1].
        y: integer labels, shape (N,).
        eps: L-inf radius.
        iterations: gradient-estimate-and-step iterations.
        initial_evals: directions at the first iteration, growing as
            sqrt(t) up to `max_evals`.
    """
    x0 = np.asarray(x, np.float32)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    n, shape = len(x0), x0.shape[1:]
    flat0 = x0.reshape(n, -1)
    d = flat0.shape[1]
    rng = np.random.default_rng(seed)

    def adversarial(rows, labels):
        out = [
            np.argmax(np.asarray(model_fn(tf.constant(rows[i : i + batch_rows].reshape((-1,) + shape)))), axis=1)
            for i in range(0, len(rows), batch_rows)
        ]
        return np.concatenate(out) != labels

    wrong = adversarial(flat0, y)
    todo = np.flatnonzero(~wrong)  # misclassified inputs need no attack
    points, found = _start(adversarial, flat0[todo], y[todo], rng)
    todo, points = todo[found], points[found]
    if len(todo):
        points = _walk(adversarial, flat0[todo], y[todo], points, d, iterations, initial_evals, max_evals, rng)
    result = flat0.copy()
    close = np.max(np.abs(points - flat0[todo]), axis=1) <= eps + 1e-6
    result[todo[close]] = points[close]
    return result.reshape(x0.shape)


def _start(adversarial, x, y, rng, draws=100):
    """(a misclassified uniform-noise point per example, which examples have one), bisected toward the input."""
    start, found = x.copy(), np.zeros(len(x), bool)
    for _ in range(draws):
        if found.all():
            break
        noise = rng.uniform(0.0, 1.0, x.shape).astype(np.float32)
        hit = adversarial(noise, y) & ~found
        start[hit], found = noise[hit], found | hit
    start[found] = _bisect(adversarial, x[found], y[found], start[found])
    return start, found


def _bisect(adversarial, x, y, points, steps=15):
    """Per example, the point of the L-inf segment between x and `points` closest to x that is still adversarial.

    The L-inf projection clips `points` to the box of radius alpha around x;
    alpha is bisected between 0 (the input) and the current distance.
    """
    high = np.max(np.abs(points - x), axis=1)
    low = np.zeros_like(high)
    for _ in range(steps):
        middle = (low + high) / 2
        candidate = np.clip(points, x - middle[:, None], x + middle[:, None])
        hit = adversarial(candidate, y)
        high, low = np.where(hit, middle, high), np.where(hit, low, middle)
    return np.clip(points, x - high[:, None], x + high[:, None]).astype(np.float32)


def _walk(adversarial, x, y, points, d, iterations, initial_evals, max_evals, rng):
    theta = 1.0 / (d * d)
    for t in range(1, iterations + 1):
        distance = np.max(np.abs(points - x), axis=1)
        delta = np.full(len(x), 0.1) if t == 1 else np.maximum(d * theta * distance, 1e-6)
        evals = min(int(initial_evals * np.sqrt(t)), max_evals)
        direction = np.sign(_direction(adversarial, y, points, delta, evals, rng))
        step = distance / np.sqrt(t)
        moved = np.zeros(len(x), bool)
        candidate = points.copy()
        for _ in range(25):
            if moved.all():
                break
            trial = np.clip(points + step[:, None] * direction, 0.0, 1.0).astype(np.float32)
            hit = adversarial(trial, y) & ~moved
            candidate[hit], moved = trial[hit], moved | hit
            step = np.where(moved, step, step / 2)
        points = _bisect(adversarial, x, y, candidate)
    return points


def _direction(adversarial, y, points, delta, evals, rng, chunk=64):
    """The estimate of the direction toward the adversarial side at each boundary point, shape (N, d)."""
    estimate = np.zeros_like(points)
    for start in range(0, len(points), chunk):
        rows = slice(start, start + chunk)
        base = points[rows]
        u = rng.uniform(-1.0, 1.0, (len(base), evals, base.shape[1])).astype(np.float32)
        perturbed = np.clip(base[:, None] + delta[rows, None, None] * u, 0.0, 1.0)
        u = (perturbed - base[:, None]) / delta[rows, None, None]
        labels = np.repeat(y[rows], evals)
        phi = 2.0 * adversarial(perturbed.reshape(-1, base.shape[1]), labels).reshape(len(base), evals) - 1.0
        mean = phi.mean(axis=1, keepdims=True)
        centred = np.where(np.abs(mean) == 1.0, phi, phi - mean)
        estimate[rows] = np.mean(centred[:, :, None] * u, axis=1)
    return estimate
