"""Weight perturbation (evolution strategies): unbiased for the gradient of the loss smoothed by weight noise.

Reference, computed here in numpy and independent of the estimator: the
mean over many draws e ~ N(0, I) of the backprop gradient of the mean
cross-entropy of the noiseless sigmoid network at theta + sigma e, which is
d/dtheta E_e[L(theta + sigma e)] (reparameterisation). Tolerance: 4 standard
errors for every weight, with power against a 10% bias.
"""

import json

import keras
import numpy as np
import pytest

import keras_glr
from keras_glr import runs
from keras_glr._src import checkpoints
from keras_glr.layers import NoisyDense
from tests.stats import assert_agree
from tests.stats import mean_and_se

N_SE = 4.0
INPUT_DIM, HIDDEN, CLASSES = 4, 3, 3
SIGMA = 0.3
CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _model(copies=2000, activation="sigmoid", **options):
    model = keras_glr.GLRSequential(
        [
            keras.Input((INPUT_DIM,)),
            NoisyDense(HIDDEN, activation, bias_initializer=keras.initializers.RandomNormal(0, 0.5)),
            NoisyDense(CLASSES, bias_initializer=keras.initializers.RandomNormal(0, 0.5)),
        ],
        seed=3,
    )
    model.compile(
        "sgd",
        options.pop("loss", CE),
        copies=copies,
        estimator="weight-perturbation",
        perturbation_scale=SIGMA,
        **options,
    )
    return model


def _batch():
    rng = np.random.default_rng(0)
    return rng.uniform(0.0, 1.0, (3, INPUT_DIM)).astype("float32"), (np.arange(3) % CLASSES).astype("int32")


def _samples(model, x, y, replicates):
    return np.stack([np.concatenate([np.ravel(g) for g in model.estimate_gradients(x, y)]) for _ in range(replicates)])


def _smoothed_gradients(weights, x, y, sigma, draws, rng):
    """Per-draw backprop gradients of the batch's mean CE at theta + sigma e, shape (draws, P)."""
    w1, b1, w2, b2 = [w + sigma * rng.normal(size=(draws, *w.shape)) for w in weights]
    batch = len(x)
    a = 1.0 / (1.0 + np.exp(-(np.einsum("bi,nih->nbh", x, w1) + b1[:, None, :])))
    v2 = np.einsum("nbh,nhc->nbc", a, w2) + b2[:, None, :]
    p = np.exp(v2 - v2.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    g2 = (p - np.eye(CLASSES)[y]) / batch
    g1 = np.einsum("nbc,nhc->nbh", g2, w2) * a * (1.0 - a)
    parts = [np.einsum("bi,nbh->nih", x, g1), g1.sum(1), np.einsum("nbh,nbc->nhc", a, g2), g2.sum(1)]
    return np.concatenate([part.reshape(draws, -1) for part in parts], axis=1)


@pytest.fixture(scope="module")
def estimates_and_reference():
    model = _model()
    x, y = _batch()
    estimate = mean_and_se(_samples(model, x, y, replicates=120))
    weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    reference = mean_and_se(_smoothed_gradients(weights, x, y, SIGMA, 200_000, np.random.default_rng(5)))
    return estimate, reference


def test_weight_perturbation_is_unbiased_for_the_gradient_of_the_smoothed_loss(estimates_and_reference):
    (mean, se), (ref_mean, ref_se) = estimates_and_reference
    assert_agree(mean, se, ref_mean, ref_se, N_SE, what="weight perturbation vs backprop of the smoothed loss")


def test_the_comparison_detects_a_ten_percent_bias(estimates_and_reference):
    (mean, se), (ref_mean, ref_se) = estimates_and_reference
    with pytest.raises(AssertionError):
        assert_agree(0.9 * mean, 0.9 * se, ref_mean, ref_se, N_SE)


def test_chunks_and_the_whole_batch_give_the_same_estimate():
    """The perturbations come from the step's counter-based stream: every chunk sees the same e_p."""
    x, y = _batch()
    model, estimates = _model(copies=40), []
    states = checkpoints.noise_states(model)
    for chunk in (None, 40):  # 40 copies: one example (of K = 40) at a time
        checkpoints.restore_noise_states(model, states)
        model.compile(
            "sgd", CE, copies=40, estimator="weight-perturbation", perturbation_scale=SIGMA, copies_per_chunk=chunk
        )
        estimates.append(model.estimate_gradients(x, y))
    assert any(np.any(g != 0) for g in estimates[0])
    for a, b in zip(*estimates):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_step_units_and_the_zero_one_loss_train_by_glr_train(tmp_path):
    config = runs.RunConfig(
        run_name="es",
        hidden=(16,),
        estimator="weight-perturbation",
        copies=40,
        epochs=2,
        batch_size=32,
        noisy_passes=2,
        perturbation_scale=0.05,
        loss="zero-one",
    )
    result = runs.train(config, str(tmp_path), verbose=0)
    summary = json.loads((tmp_path / "es" / "run.json").read_text())
    assert summary["gradient"].startswith("weight perturbation: 20 antithetic Gaussian perturbations")
    assert result.metrics["test_accuracy"] > 0.3  # ten classes: chance is 0.1


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(copies=5), "antithetic pairs .* `copies` must be even. Received: copies=5"),
        (dict(perturbation_scale=0.0), "Expected a float sigma > 0. Received: perturbation_scale=0.0"),
        (
            dict(antithetic=True),
            "`antithetic`: it is an option of estimator=.* no effect with estimator='weight-perturbation'",
        ),
    ],
)
def test_bad_options_are_refused(options, message):
    model = keras_glr.GLRSequential([keras.Input((3,)), NoisyDense(2)])
    with pytest.raises(ValueError, match=message):
        model.compile("sgd", CE, estimator="weight-perturbation", **{"copies": 4, **options})
