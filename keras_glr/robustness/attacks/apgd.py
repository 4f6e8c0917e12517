"""APGD (Croce and Hein, ICML 2020): step-size-free projected gradient ascent, L-inf, batched.

Each iteration takes a momentum step on the sign of the loss's gradient,

    z = P(x_k + eta sign(grad)),  x_k+1 = P(x_k + a (z - x_k) + (1 - a)(x_k - x_k-1)),  a = 0.75,

projecting onto the eps-ball around the input and the [0, 1] box. The step
eta starts at 2 eps and is halved at checkpoints (after 22% of the steps,
then at gaps shrinking by 3% of the steps down to 6%) for every example whose
loss rose in fewer than 75% of the steps since the last checkpoint, or did not
rise at all after the previous halving; a halved example restarts from the
best point it has found. Losses: "ce" (cross-entropy) and "dlr", the
difference-of-logits ratio, invariant to the logits' scale:

    DLR(z, y) = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3),   z_pi1 >= z_pi2 >= ... the sorted logits.

With a noisy prediction, `model_fn` is an EOT average over noisy passes; with
step units, a BPDA view (`surrogate_gradients`). An example counts as fooled
by the first iterate that `model_fn` misclassifies, which is what the attack
returns for it; otherwise it returns the point of highest loss.
"""

import numpy as np
import tensorflow as tf

LOSSES = ("ce", "dlr")


def dlr_loss(logits, y):
    """The difference-of-logits ratio per example, shape (N,).

    With two classes there is no third logit to scale by, and the ratio would
    be +-1 everywhere: the loss is then the plain margin -(z_y - z_other).
    """
    true = tf.gather(logits, y, axis=1, batch_dims=1)
    others = tf.where(tf.one_hot(y, tf.shape(logits)[1]) > 0, -np.inf, logits)
    margin = true - tf.reduce_max(others, axis=1)
    if logits.shape[1] < 3:
        return -margin
    ordered = tf.sort(logits, axis=1, direction="DESCENDING")
    return -margin / (ordered[:, 0] - ordered[:, 2] + 1e-12)


def checkpoints(steps):
    """The steps after which eta may be halved: 22% of the steps, then gaps shrinking by 3% down to 6%."""
    found, gap = [], max(int(0.22 * steps), 1)
    at = gap
    while at < steps:
        found.append(at)
        gap = max(gap - max(int(0.03 * steps), 1), max(int(0.06 * steps), 1))
        at += gap
    return found


def apgd(model_fn, x, y, eps, loss="ce", steps=100, restarts=1, seed=0, rho=0.75):
    """Returns adversarial inputs, shape of x, within eps (L-inf) and [0, 1].

    Args:
        model_fn: x -> logits, differentiable (or a BPDA / EOT view of one).
        x: inputs, shape (N, ...), values in [0, 1].
        y: integer labels, shape (N,).
        eps: L-inf radius.
        loss: "ce" or "dlr".
        steps: iterations per restart.
        restarts: random starts; an example fooled by one is not attacked again.
        rho: the share of steps whose loss must rise between checkpoints.
    """
    if loss not in LOSSES:
        raise ValueError(f"Invalid `loss`: {loss!r}. Expected one of {list(LOSSES)}.")
    x0 = tf.convert_to_tensor(np.asarray(x, np.float32))
    y = tf.convert_to_tensor(np.asarray(y).astype(np.int64).reshape(-1))
    n = int(x0.shape[0])
    result = x0.numpy().copy()
    fooled = np.zeros(n, bool)
    loss_fn = _loss(loss)
    for restart in range(restarts):
        todo = np.flatnonzero(~fooled)
        if not len(todo):
            break
        found, hit = _run(model_fn, tf.gather(x0, todo), tf.gather(y, todo), eps, loss_fn, steps, seed + restart, rho)
        result[todo] = found
        fooled[todo[hit]] = True
    return result


def _loss(name):
    if name == "dlr":
        return dlr_loss
    return lambda logits, y: tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)


def _run(model_fn, x0, y, eps, loss_fn, steps, seed, rho):
    """One restart: (the returned inputs, which examples were fooled)."""
    lower, upper = tf.maximum(x0 - eps, 0.0), tf.minimum(x0 + eps, 1.0)

    def project(z):
        return tf.clip_by_value(tf.minimum(tf.maximum(z, lower), upper), 0.0, 1.0)

    @tf.function(autograph=False)
    def evaluate(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            logits = model_fn(z)
            values = loss_fn(logits, y)
        return values, tape.gradient(values, z), tf.argmax(logits, axis=1) != y

    rows = (-1,) + (1,) * (len(x0.shape) - 1)
    start = tf.random.stateless_uniform(x0.shape, [seed, 2026], -1.0, 1.0)
    largest = tf.reduce_max(tf.abs(tf.reshape(start, [x0.shape[0], -1])), axis=1)
    current = project(x0 + eps * start / tf.reshape(largest, rows))
    values, gradient, now = evaluate(current)
    fooled, adversarial = now.numpy(), current.numpy()
    best, best_values, best_gradient = current, values, gradient
    eta = tf.fill([x0.shape[0]], 2.0 * eps)
    previous, rises = current, tf.zeros_like(values)
    halved, values_at_check = tf.ones_like(values, bool), best_values
    marks, last_mark = set(checkpoints(steps)), 0
    for step in range(1, steps + 1):
        a = 0.75 if step > 1 else 1.0
        z = project(current + tf.reshape(eta, rows) * tf.sign(gradient))
        current, previous = project(current + a * (z - current) + (1 - a) * (current - previous)), current
        values, gradient, now = evaluate(current)
        new = now.numpy() & ~fooled
        adversarial[new] = current.numpy()[new]
        fooled |= new
        rises += tf.cast(values > best_values, rises.dtype)
        improved = values > best_values
        best = tf.where(tf.reshape(improved, rows), current, best)
        best_gradient = tf.where(tf.reshape(improved, rows), gradient, best_gradient)
        best_values = tf.maximum(values, best_values)
        if step in marks:
            oscillating = rises < rho * (step - last_mark)
            stuck = tf.logical_and(tf.logical_not(halved), values_at_check >= best_values)
            halve = tf.logical_or(oscillating, stuck)
            eta = tf.where(halve, eta / 2.0, eta)
            current = tf.where(tf.reshape(halve, rows), best, current)
            gradient = tf.where(tf.reshape(halve, rows), best_gradient, gradient)
            halved, values_at_check, rises, last_mark = halve, best_values, tf.zeros_like(rises), step
    returned = np.where(fooled.reshape(rows), adversarial, best.numpy())
    return returned, fooled
