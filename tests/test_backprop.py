"""The backprop controls: unbiased for the same objective as GLR, and the straight-through twin."""

import keras
import numpy as np
import pytest

import keras_glr
from keras_glr._src import backprop
from keras_glr._src import estimators
from keras_glr.layers import NoisyDense
from keras_glr.noise import Gaussian
from tests.stats import assert_agree
from tests.stats import mean_and_se
from tests.test_estimator_unbiased import _batch
from tests.test_estimator_unbiased import _model
from tests.test_estimator_unbiased import _reparameterised_gradients

SPARSE_CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.mark.parametrize("antithetic", [False, True])
def test_bp_noise_is_unbiased_for_the_smoothed_loss(antithetic):
    """Mean "bp-noise" estimate vs the numpy reparameterised reference (4 SE): d/dtheta E_r[L]."""
    noise = Gaussian(1.0)
    model = _model("sigmoid", noise, SPARSE_CE, "none", antithetic, copies=200)
    x, y = _batch()
    samples = np.stack(
        [
            np.concatenate([np.ravel(g) for g in model.estimate_gradients(x, y, estimator="bp-noise")])
            for _ in range(100)
        ]
    )
    mean, se = mean_and_se(samples)
    weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    ref_mean, ref_se = mean_and_se(_reparameterised_gradients(weights, x, y, noise, 200_000, np.random.default_rng(8)))
    assert_agree(mean, se, ref_mean, ref_se, 4.0, what="bp-noise vs reparameterised BP")
    with pytest.raises(AssertionError):
        assert_agree(0.9 * mean, 0.9 * se, ref_mean, ref_se, 4.0)


def test_straight_through_twin_trains_a_step_network_on_the_zero_one_loss():
    model = keras_glr.GLRSequential([keras.Input((4,)), NoisyDense(6, "step"), NoisyDense(3)])
    model.compile("sgd", "zero_one", copies=4, estimator="bp-ste")
    x, y = _batch(size=6)
    gradients = model.estimate_gradients(x, y)
    assert all(np.all(np.isfinite(g)) for g in gradients)
    assert all(np.any(np.asarray(g) != 0) for g in gradients)  # the surrogate reaches the hidden layer
    with pytest.raises(ValueError, match="estimator='bp'.*not differentiable"):
        model.estimate_gradients(x, y, estimator="bp")


def test_make_returns_one_estimator_per_name():
    loss = keras_glr.losses.per_example(SPARSE_CE)
    assert isinstance(estimators.make("glr", loss, loss, None), estimators.GLR)
    bp = estimators.make("bp", loss, loss, None)
    assert isinstance(bp, backprop.Backprop) and not bp.noise and bp.copies(100) == 1
    ste = estimators.make("bp-ste", loss, loss, None, ste_slope=2.0)
    assert ste.noise and ste.straight_through == {"slope": 2.0} and ste.copies(100) == 100
