"""SPSA / MeZO: two passes per direction, the weights moved in place.

Objectives, each checked against a reference computed here in numpy,
independent of the estimator (4 standard errors for every weight, power
against a 10% bias):

- Gaussian directions: the gradient of E_d[L(theta + sigma d)], d ~ N(0, I),
  the loss smoothed by weight noise (the mean over many draws of the backprop
  gradient at theta + sigma d; the reference of tests/test_perturbation.py).
- Rademacher directions: dL/dtheta itself when L is quadratic in the weights
  (a linear network and a squared error), computed exactly.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_glr
from keras_glr._src import checkpoints
from keras_glr.layers import NoisyDense
from tests import test_perturbation as smoothed
from tests.stats import assert_agree
from tests.stats import mean_and_se

N_SE = 4.0
CLASSES = 3


def _samples(model, x, y, replicates):
    return np.stack([np.concatenate([np.ravel(g) for g in model.estimate_gradients(x, y)]) for _ in range(replicates)])


@pytest.fixture(scope="module")
def gaussian():
    model = smoothed._model(copies=2000)
    model.compile("sgd", smoothed.CE, copies=2000, estimator="spsa", perturbation_scale=smoothed.SIGMA)
    x, y = smoothed._batch()
    estimate = mean_and_se(_samples(model, x, y, replicates=120))
    weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    reference = mean_and_se(
        smoothed._smoothed_gradients(weights, x, y, smoothed.SIGMA, 200_000, np.random.default_rng(7))
    )
    return estimate, reference


def test_gaussian_directions_are_unbiased_for_the_gradient_of_the_smoothed_loss(gaussian):
    (mean, se), (ref_mean, ref_se) = gaussian
    assert_agree(mean, se, ref_mean, ref_se, N_SE, what="spsa (gaussian) vs backprop of the smoothed loss")


def test_the_gaussian_comparison_detects_a_ten_percent_bias(gaussian):
    (mean, se), (ref_mean, ref_se) = gaussian
    with pytest.raises(AssertionError):
        assert_agree(0.9 * mean, 0.9 * se, ref_mean, ref_se, N_SE)


def squared_error(y_true, y_pred):
    """Per example sum_c (z_c - onehot(y)_c)^2: quadratic in a linear network's weights."""
    target = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), CLASSES)
    return tf.reduce_sum((y_pred - target) ** 2, axis=-1)


def _linear(copies, directions="rademacher", scale=0.5):
    model = keras_glr.GLRSequential([keras.Input((4,)), NoisyDense(CLASSES)], seed=2)
    model.compile(
        "sgd", squared_error, copies=copies, estimator="spsa", perturbation_scale=scale, spsa_directions=directions
    )
    return model


@pytest.fixture(scope="module")
def rademacher():
    model = _linear(copies=400)
    x, y = smoothed._batch()
    w, b = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    residual = 2.0 * (x @ w + b - np.eye(CLASSES)[y]) / len(x)  # d(mean loss) / dz
    exact = np.concatenate([(x.T @ residual).ravel(), residual.sum(0)])
    return mean_and_se(_samples(model, x, y, replicates=120)), exact


def test_rademacher_directions_are_unbiased_for_the_gradient_of_a_quadratic_loss(rademacher):
    (mean, se), exact = rademacher
    assert_agree(mean, se, exact, np.zeros_like(exact), N_SE, what="spsa (rademacher) vs the exact gradient")


def test_the_rademacher_comparison_detects_a_ten_percent_bias(rademacher):
    (mean, se), exact = rademacher
    with pytest.raises(AssertionError):
        assert_agree(0.9 * mean, 0.9 * se, exact, np.zeros_like(exact), N_SE)


def test_the_weights_come_back_after_each_direction_and_chunks_give_the_same_estimate():
    """The directions come from the step's counter-based stream: every chunk sees the same d_p."""
    x, y = smoothed._batch()
    model = _linear(copies=8, directions="gaussian")
    states = checkpoints.noise_states(model)
    estimates = []
    for chunk in (None, 2):
        checkpoints.restore_noise_states(model, states)
        model.compile("sgd", squared_error, copies=8, estimator="spsa", copies_per_chunk=chunk)
        before = [np.array(v) for v in model.trainable_variables]
        estimates.append(model.estimate_gradients(x, y))
        for a, b in zip(before, model.trainable_variables):
            np.testing.assert_allclose(a, np.asarray(b), atol=1e-6)  # moved back, up to float rounding
    for a, b in zip(*estimates):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_step_units_and_the_zero_one_loss_train_and_bad_options_are_refused():
    x = np.random.default_rng(0).uniform(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0.5).astype("int32")
    model = keras_glr.GLRSequential([keras.Input((4,)), NoisyDense(8, "step"), NoisyDense(2)], seed=0)
    model.compile("adam", "zero_one", copies=20, estimator="spsa", perturbation_scale=0.1)
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    with pytest.raises(ValueError, match="spsa estimator runs its copies as antithetic pairs .* copies=5"):
        model.compile("sgd", "zero_one", copies=5, estimator="spsa")
    with pytest.raises(ValueError, match="Expected one of \\['gaussian', 'rademacher'\\]"):
        model.compile("sgd", "zero_one", copies=4, estimator="spsa", spsa_directions="uniform")
    with pytest.raises(ValueError, match="`spsa_directions`: it is an option of estimator='spsa'"):
        model.compile("sgd", "zero_one", copies=4, spsa_directions="rademacher")
