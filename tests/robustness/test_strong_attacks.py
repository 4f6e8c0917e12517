"""The worst-case ensemble and its members: APGD reaches a linear model's exact robust accuracy, HopSkipJump
breaks a step network whose gradient is zero, and the per-example worst case is never above any member."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_glr
from keras_glr.layers import NoisyDense
from keras_glr.robustness import attacks
from keras_glr.robustness import evaluation


def _linear(seed=0, classes=3, features=8):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(features, classes)).astype("float32")
    b = rng.normal(size=classes).astype("float32") * 0.1
    x = rng.uniform(0.2, 0.8, size=(100, features)).astype("float32")
    y = np.argmax(x @ w + b, axis=1)  # every clean example is right
    return w, b, x, y


def _exact_robust_accuracy(w, b, x, y, eps):
    """Linear logits: min over the L-inf ball and the box of z_y - z_j is linear per j, so the worst case is exact."""
    low, high = np.maximum(x - eps, 0.0), np.minimum(x + eps, 1.0)
    robust = np.ones(len(x), bool)
    for j in range(w.shape[1]):
        v = w[:, y].T - w[:, j]  # (N, features): d(z_y - z_j)/dx
        worst = np.sum(np.minimum(v * low, v * high), axis=1) + b[y] - b[j]
        robust &= (j == y) | (worst > 0)
    return robust.mean()


@pytest.mark.parametrize("loss, restarts, tolerance", [("ce", 1, 0.03), ("dlr", 3, 0.0)])
def test_apgd_reaches_the_exact_robust_accuracy_of_a_linear_model(loss, restarts, tolerance):
    w, b, x, y = _linear()

    def model_fn(t):
        return tf.matmul(t, w) + b

    for eps in (0.05, 0.1):
        exact = _exact_robust_accuracy(w, b, x, y, eps)
        x_adv = attacks.apgd(model_fn, x, y, eps, loss=loss, steps=100, restarts=restarts)
        assert np.abs(x_adv - x).max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        found = np.mean(np.argmax(x_adv @ w + b, axis=1) == y)
        assert exact < 0.95 and exact <= found <= exact + tolerance, (eps, found, exact)


@pytest.mark.slow
def test_the_ensemble_reaches_the_exact_robust_accuracy_of_a_linear_model():
    w, b, x, y = _linear()
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model.set_weights([w, b])
    plan = evaluation.Plan(attacks=attacks.parse_names("ensemble"), eps=(0.05, 0.1), corruptions=(), mode="whitebox")
    results, _ = evaluation.evaluate(
        [evaluation.ModelEntry("linear", "linear", model, None, None)], x, y, plan, progress=False
    )
    for eps in (0.05, 0.1):
        exact = _exact_robust_accuracy(w, b, x, y, eps)
        assert exact <= results["attacks"]["ensemble"][str(eps)]["linear"] <= exact + 0.005


def _step_network():
    """x in [0, 1]^4, class 1 when x_0 > 0.5: one step unit reads x_0; its gradient is zero almost everywhere."""
    model = keras_glr.GLRSequential([keras.Input((4,)), NoisyDense(1, "step"), NoisyDense(2)])
    model.layers[0].set_weights([np.array([[1.0], [0.0], [0.0], [0.0]], "float32"), np.array([-0.5], "float32")])
    model.layers[1].set_weights([np.array([[-4.0, 4.0]], "float32"), np.array([2.0, -2.0], "float32")])
    x = np.random.default_rng(1).uniform(size=(60, 4)).astype("float32")
    return model, x, (x[:, 0] > 0.5).astype("int64")


def test_hop_skip_jump_breaks_a_step_network_whose_gradient_is_zero():
    model, x, y = _step_network()
    assert evaluation.accuracy(model, x, y) == 1.0
    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        logits = model(t, training=False)
    gradient = tape.gradient(logits, t)
    assert gradient is None or not np.any(gradient.numpy())  # a plain gradient attack sees nothing
    eps = 0.1
    x_adv = attacks.hop_skip_jump(evaluation.logits_fn(model), x, y, eps, iterations=10)
    assert np.abs(x_adv - x).max() <= eps + 1e-6
    exact = np.mean(np.abs(x[:, 0] - 0.5) > eps)  # moving x_0 across 0.5 is the only way
    found = evaluation.accuracy(model, x_adv, y)
    assert found <= exact + 0.02, (found, exact)


@pytest.mark.slow
def test_the_worst_case_is_never_above_any_member_and_bpda_tries_several_slopes():
    model, x, y = _step_network()
    plan = evaluation.Plan(attacks=attacks.parse_names("ensemble"), eps=(0.05, 0.1), corruptions=(), mode="whitebox")
    assert plan.attacks[-1] == "ensemble" and set(attacks.ENSEMBLE) < set(plan.attacks)
    entry = evaluation.ModelEntry("step", "step", model, None, None)
    assert len(evaluation.attack_model_fns(model, attacks.get("apgd-ce"))) == 3  # identity and two sigmoid slopes
    results, _ = evaluation.evaluate([entry], x, y, plan, progress=False)
    for eps in ("0.05", "0.1"):
        worst = results["attacks"]["ensemble"][eps]["step"]
        members = [results["attacks"][name][eps]["step"] for name in attacks.ENSEMBLE]
        assert worst <= min(members)
        assert worst <= np.mean(np.abs(x[:, 0] - 0.5) > float(eps)) + 0.02


def test_worst_case_takes_the_first_candidate_that_breaks_each_example():
    model, x, y = _step_network()
    flipped = x.copy()
    flipped[:, 0] = 1.0 - flipped[:, 0]  # every example misclassified
    half = x.copy()
    half[:30] = flipped[:30]
    result = evaluation.worst_case(model, [x, half, flipped], x, y)
    np.testing.assert_array_equal(result[:30], flipped[:30])  # broken by `half` first: its rows
    np.testing.assert_array_equal(result[30:], flipped[30:])
    assert evaluation.accuracy(model, evaluation.worst_case(model, [x], x, y), y) == 1.0
