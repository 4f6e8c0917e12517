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


#: Each estimate and the independent reference of its objective (a fixture's name): the smoothed loss's gradient,
#: and, with centred ranks, c_K a / (sigma |a|) on a linear loss (below).
COMPARISONS = ["estimates_and_reference", "ranked_estimates_and_reference"]


@pytest.mark.parametrize("comparison", COMPARISONS)
def test_weight_perturbation_has_the_mean_of_its_objective(comparison, request):
    (mean, se), (ref_mean, ref_se) = request.getfixturevalue(comparison)
    assert_agree(mean, se, ref_mean, ref_se, N_SE, what=f"weight perturbation vs its objective ({comparison})")


@pytest.mark.parametrize("comparison", COMPARISONS)
def test_the_comparison_detects_a_ten_percent_bias(comparison, request):
    (mean, se), (ref_mean, ref_se) = request.getfixturevalue(comparison)
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


# Fitness shaping by centred ranks (OpenES). Its mean is known where the loss is linear in the weights,
# L(theta) = a . theta: the ranks are those of z_p = a . e_p / |a|, and E[g] = c_K a / (sigma |a|) with
# c_K = E[u(z_1) z_1], u the centred rank among {z_1, ..., z_P, -z_1, ..., -z_P} (the module docstring).
RANKED_COPIES = 20
RANKED_SIGMA = 0.5


def _compile_ranked(model, loss):
    model.compile(
        "sgd",
        loss,
        copies=RANKED_COPIES,
        estimator="weight-perturbation",
        perturbation_scale=RANKED_SIGMA,
        fitness_shaping="centred-ranks",
    )
    return model


def _linear_model(loss):
    return _compile_ranked(keras_glr.GLRSequential([keras.Input((INPUT_DIM,)), NoisyDense(1)], seed=4), loss)


def _linear_loss(y_true, y_pred):
    return y_pred[:, 0]


def _rank_constant(pairs, draws, rng):
    """c_K = E[u(z_1) z_1] by Monte Carlo in numpy (scipy's average ranks), with its standard error."""
    from scipy import stats

    z = rng.normal(size=(draws, pairs))
    population = np.concatenate([z, -z], axis=1)
    u = stats.rankdata(population, axis=1) - 1.0
    u = u / (2 * pairs - 1) - 0.5
    per_draw = np.mean(u[:, :pairs] * z, axis=1)  # the P exchangeable terms of a draw, averaged
    return per_draw.mean(), per_draw.std(ddof=1) / np.sqrt(draws)


@pytest.fixture(scope="module")
def ranked_estimates_and_reference():
    model = _linear_model(_linear_loss)
    x, y = _batch()
    estimate = mean_and_se(_samples(model, x, y, replicates=600))
    gradient = np.concatenate([x.mean(axis=0), [1.0]])  # d mean_b (x_b . w + b) / d (w, b)
    direction = gradient / np.linalg.norm(gradient)
    c, c_se = _rank_constant(RANKED_COPIES // 2, 400_000, np.random.default_rng(7))
    return estimate, (c * direction / RANKED_SIGMA, c_se * np.abs(direction) / RANKED_SIGMA)


def test_centred_ranks_are_unchanged_by_an_increasing_transform_of_the_loss():
    x, y = _batch()
    x, y = x[:1], y[:1]  # one example: its loss is the batch's (a sum of transformed losses would not be monotone)
    model, estimates = _linear_model(_linear_loss), []
    states = checkpoints.noise_states(model)
    for loss in (_linear_loss, lambda y_true, y_pred: keras.ops.exp(3.0 * y_pred[:, 0])):
        checkpoints.restore_noise_states(model, states)  # the same perturbations
        _compile_ranked(model, loss)
        estimates.append(model.estimate_gradients(x, y))
    assert any(np.any(g != 0) for g in estimates[0])
    for a, b in zip(*estimates):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_centred_ranks_match_scipy_with_ties():
    from scipy import stats

    from keras_glr._src.perturbation import centred_ranks

    values = np.array([0.3, 0.1, 0.3, 0.7, 0.1, 0.1, 0.5], dtype="float32")
    expected = (stats.rankdata(values) - 1.0) / (len(values) - 1) - 0.5
    np.testing.assert_allclose(centred_ranks(values), expected, atol=1e-7)


def test_centred_ranks_refuse_chunks():
    model = keras_glr.GLRSequential([keras.Input((3,)), NoisyDense(2)])
    with pytest.raises(ValueError, match="Centred ranks rank the losses of the whole batch.*copies_per_chunk=4"):
        model.compile(
            "sgd",
            CE,
            estimator="weight-perturbation",
            copies=4,
            fitness_shaping="centred-ranks",
            copies_per_chunk=4,
        )
    with pytest.raises(ValueError, match="`fitness_shaping`: it is an option of estimator='weight-perturbation'"):
        model.compile("sgd", CE, estimator="spsa", copies=4, fitness_shaping="centred-ranks")
