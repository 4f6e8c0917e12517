"""Carlini-Wagner L2 attack (Carlini & Wagner, 2017, "Towards evaluating the robustness of neural networks").

cleverhans 4's version fails under Keras 3 (its optimizer's `variables()`
call, and its batching of the labels), so it is written here in TensorFlow.
Untargeted, for each example with label y, in the tanh space that keeps
x + delta inside the box:

    x_adv = lo + (hi - lo) (tanh(w) + 1) / 2
    minimise_w   |x_adv - x|_2^2 + c * max(z_y - max_{j != y} z_j, -kappa)

with Adam (its step size decaying to 0 along a cosine, so the last steps
settle on the boundary instead of jumping across it), and a binary search
over c per example (c grows x10 until the
attack succeeds, then is bisected); the smallest successful perturbation is
kept. Examples where no c succeeds are returned unchanged.
"""

import numpy as np
import tensorflow as tf


def carlini_wagner_l2(
    model_fn,
    x,
    y=None,
    c_init=1e-2,
    binary_search_steps=6,
    max_iterations=100,
    learning_rate=0.01,
    kappa=0.0,
    clip_min=0.0,
    clip_max=1.0,
):
    """Returns adversarial examples of minimal L2 norm found, shape of `x`.

    Args:
        model_fn: callable returning logits, shape (N, C).
        x: inputs, shape (N, ...), inside [clip_min, clip_max].
        y: true labels (N,); predictions at x if None.
        c_init: first weight of the misclassification term.
        binary_search_steps: values of c tried per example.
        max_iterations: Adam steps per value of c.
        learning_rate: Adam's first step size in w (it decays to 0 over the
            iterations of each value of c).
        kappa: confidence: the margin z_y - max_{j != y} z_j must reach -kappa.
        clip_min: the box's lower bound.
        clip_max: the box's upper bound.
    """
    if binary_search_steps < 1 or max_iterations < 1:
        raise ValueError("binary_search_steps and max_iterations must be positive integers.")
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    logits = np.asarray(model_fn(tf.constant(x)))
    y = logits.argmax(1) if y is None else np.asarray(y).reshape(-1).astype(np.int64)
    classes = logits.shape[1]
    true_mask = tf.one_hot(y, classes)
    scale = (clip_max - clip_min) / 2.0
    x_t = tf.constant(x)
    w_start = np.arctanh(np.clip((x - clip_min) / scale - 1.0, -1 + 1e-6, 1 - 1e-6)).astype(np.float32)
    c = np.full(n, c_init, dtype=np.float32)
    low, high = np.zeros(n, np.float32), np.full(n, np.inf, np.float32)
    best, best_norm = x.copy(), np.full(n, np.inf, np.float32)
    best_norm[logits.argmax(1) != y] = 0.0  # already misclassified: nothing to add
    axes = tuple(range(1, x.ndim))

    for _ in range(binary_search_steps):
        w = tf.Variable(w_start)
        optimizer = _Adam(learning_rate, max_iterations)
        weight = tf.constant(c)
        success = np.zeros(n, bool)
        for _ in range(max_iterations):
            with tf.GradientTape() as tape:
                x_adv = clip_min + scale * (tf.tanh(w) + 1.0)
                z = model_fn(x_adv)
                real = tf.reduce_sum(z * true_mask, 1)
                other = tf.reduce_max(z - 1e9 * true_mask, 1)
                margin = real - other
                distance = tf.reduce_sum(tf.square(x_adv - x_t), axis=axes)
                loss = tf.reduce_sum(distance + weight * tf.maximum(margin, -kappa))
            optimizer.apply(tape.gradient(loss, w), w)
            fooled = (margin.numpy() < 0) & (best_norm > 0)
            norms = np.sqrt(distance.numpy())
            improved = fooled & (norms < best_norm)
            if improved.any():
                best[improved], best_norm[improved] = x_adv.numpy()[improved], norms[improved]
            success |= fooled
        high = np.where(success, np.minimum(high, c), high)
        low = np.where(success, low, np.maximum(low, c))
        c = np.where(np.isinf(high), c * 10.0, (low + high) / 2.0).astype(np.float32)
    return best


class _Adam:
    """Adam on one variable, its step size rate * (1 + cos(pi t / steps)) / 2 (a Keras optimizer tracks a model's
    variables)."""

    def __init__(self, learning_rate, steps, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.rate, self.steps, self.b1, self.b2, self.eps = learning_rate, steps, beta_1, beta_2, epsilon
        self.m = self.v = None
        self.t = 0

    def apply(self, gradient, variable):
        if self.m is None:
            self.m, self.v = tf.zeros_like(gradient), tf.zeros_like(gradient)
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * gradient
        self.v = self.b2 * self.v + (1 - self.b2) * tf.square(gradient)
        m_hat = self.m / (1 - self.b1**self.t)
        v_hat = self.v / (1 - self.b2**self.t)
        rate = self.rate * 0.5 * (1.0 + np.cos(np.pi * (self.t - 1) / self.steps))
        variable.assign_sub(rate * m_hat / (tf.sqrt(v_hat) + self.eps))
