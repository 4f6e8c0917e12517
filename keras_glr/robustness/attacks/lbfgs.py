"""L-BFGS attack (Szegedy et al., 2014, "Intriguing properties of neural networks").

cleverhans 4 has no L-BFGS, so it is written here with scipy's box-constrained
L-BFGS-B. For each example, with target class t (by default the most likely
wrong class at x):

    minimise_r   c * |r|_2^2 + CE(model_fn(x + r), t)   s.t.  x + r in [clip_min, clip_max]

and a search over c keeps the smallest perturbation that reaches t: c grows
(x10) while the attack succeeds and is bisected once it fails. The batch is
solved jointly; the objective is a sum of per-example terms.
"""

import numpy as np
import scipy.optimize
import tensorflow as tf


def lbfgs(
    model_fn, x, y=None, target=None, c_init=1.0, binary_search_steps=6, max_iterations=100, clip_min=0.0, clip_max=1.0
):
    """Returns adversarial examples; examples where no c succeeds stay as x.

    Args:
        model_fn: callable returning logits, shape (N, C).
        x: inputs, shape (N, ...).
        y: true labels (N,); predictions at x if None.
        target: target classes (N,); the runner-up class at x if None.
        c_init: first weight of the distortion term.
        binary_search_steps: number of values of c tried per example.
        max_iterations: L-BFGS-B iterations per solve.
        clip_min: the box's lower bound.
        clip_max: the box's upper bound.
    """
    if binary_search_steps < 1 or max_iterations < 1:
        raise ValueError("binary_search_steps and max_iterations must be positive integers.")
    x = np.asarray(x, dtype=np.float32)
    logits = np.asarray(model_fn(tf.constant(x)))
    y = logits.argmax(1) if y is None else np.asarray(y).reshape(-1)
    if target is None:
        ranked = np.argsort(-logits, axis=1)
        target = np.where(ranked[:, 0] == y, ranked[:, 1], ranked[:, 0])
    target = np.asarray(target)
    n, shape = len(x), x.shape
    flat = x.reshape(n, -1).astype(np.float64)
    bounds = list(zip((clip_min - flat).ravel(), (clip_max - flat).ravel()))
    c = np.full(n, float(c_init))
    low, high = np.zeros(n), np.full(n, np.inf)
    best = x.copy()
    best_norm = np.full(n, np.inf)
    already_wrong = logits.argmax(1) != y
    best_norm[already_wrong] = 0.0
    target_t = tf.constant(target)

    def objective(r_flat):
        r = tf.constant(r_flat.reshape(shape), dtype=tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(r)
            out = model_fn(tf.constant(x) + r)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(target_t, out)
            distortion = tf.reduce_sum(tf.reshape(r, [n, -1]) ** 2, axis=1)
            total = tf.reduce_sum(tf.constant(c, tf.float32) * distortion + ce)
        grad = tape.gradient(total, r)
        return float(total), np.asarray(grad, dtype=np.float64).ravel()

    r0 = np.zeros(flat.size)
    for _ in range(binary_search_steps):
        solution = scipy.optimize.minimize(
            objective, r0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": max_iterations}
        )
        candidate = (flat + solution.x.reshape(n, -1)).reshape(shape).astype(np.float32)
        predicted = np.asarray(model_fn(tf.constant(candidate))).argmax(1)
        norms = np.sqrt(((candidate - x).reshape(n, -1) ** 2).sum(1))
        success = (predicted == target) & ~already_wrong
        improved = success & (norms < best_norm)
        best[improved], best_norm[improved] = candidate[improved], norms[improved]
        low = np.where(success, c, low)
        high = np.where(success, high, c)
        c = np.where(np.isinf(high), c * 10.0, (low + high) / 2.0)
    return best
