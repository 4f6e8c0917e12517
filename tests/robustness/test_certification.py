"""Randomized-smoothing certificates against closed forms, scipy and exact operator norms."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from keras_glr import architectures
from keras_glr import noise
from keras_glr._src.model import GLRSequential
from keras_glr.layers import NoisyConv2D
from keras_glr.layers import NoisyDense
from keras_glr.robustness import certification
from keras_glr.robustness import operator_norms


def one_unit_model(distribution, a, b):
    """Input -> one noisy linear unit v = a.x + b + r -> logits (v, -v).

    The smoothed classifier says class 0 where u = a.x + b > 0, so the exact
    robust radius is the distance to that hyperplane: |u| / ||a||_2 in l2,
    |u| / ||a||_inf in l1. For one unit both certificates are tight:
    sigma Phi^-1(Phi(u / sigma)) = u and -b log(2 (1 - (1 - exp(-u / b) / 2))) = u.
    """
    unit = NoisyDense(1, activation=None, noise=distribution, name="unit")
    both = keras.layers.Lambda(lambda v: tf.concat([v, -v], axis=-1))
    model = GLRSequential([keras.Input((len(a),)), unit, both])
    unit.kernel.assign(np.reshape(a, (-1, 1)).astype("float32"))
    unit.bias.assign([b])
    return model


def points_at_margins(a, b, margins):
    """Inputs x with a.x + b equal to each margin."""
    a = np.asarray(a, dtype=np.float64)
    return np.stack([(m - b) * a / (a @ a) for m in margins]).astype("float32")


A, B = np.array([0.5, -1.0, 2.0, 0.25]), 0.3
MARGINS = np.array([0.3, 0.7, 1.2, 2.0, 3.0, -0.5, -1.5, -3.0])  # up to 3 sigma: p_A within reach of 100,000 draws


@pytest.mark.parametrize(
    "distribution, norm, dual",
    [(noise.Gaussian(1.5), "l2", lambda a: np.linalg.norm(a)), (noise.Laplace(1.0), "l1", lambda a: np.abs(a).max())],
    ids=["gaussian-l2", "laplace-l1"],
)
def test_certified_radius_never_exceeds_the_exact_one_and_comes_close(distribution, norm, dual):
    model = one_unit_model(distribution, A, B)
    x = points_at_margins(A, B, MARGINS * 1.5)
    exact = np.abs(MARGINS * 1.5) / dual(A)
    got = certification.certify(model, x, num_samples=100_000, alpha=0.001, progress=False)
    assert got.norm == norm
    np.testing.assert_allclose(got.operator_norm, dual(A), rtol=1e-6)
    np.testing.assert_array_equal(got.prediction, np.where(MARGINS > 0, 0, 1))
    assert np.all(got.radius <= exact), (got.radius, exact)
    assert np.all(got.radius >= 0.9 * exact), (got.radius, exact)


def test_a_tie_abstains_and_a_clear_majority_does_not():
    model = one_unit_model(noise.Gaussian(1.0), A, B)
    x = points_at_margins(A, B, [0.0, 0.0, 3.0])
    got = certification.certify(model, x, num_samples=20_000, progress=False)
    np.testing.assert_array_equal(got.prediction, [certification.ABSTAIN, certification.ABSTAIN, 0])
    np.testing.assert_array_equal(got.radius[:2], 0.0)
    assert got.radius[2] > 0
    np.testing.assert_array_equal(certification.predict(model, x, num_samples=20_000), [-1, -1, 0])


def test_the_seed_fixes_the_certificate():
    model = one_unit_model(noise.Gaussian(1.0), A, B)
    x = points_at_margins(A, B, [0.5, 1.0])
    first, again, other = (certification.certify(model, x, num_samples=2000, seed=s, progress=False) for s in (3, 3, 4))
    np.testing.assert_array_equal(first.p_lower, again.p_lower)
    assert not np.array_equal(first.p_lower, other.p_lower)


@pytest.mark.parametrize("k, n", [(1, 10), (7, 10), (10, 10), (990, 1000), (99_990, 100_000), (51, 100)])
@pytest.mark.parametrize("alpha", [0.001, 0.05])
def test_clopper_pearson_lower_bound_matches_scipy(k, n, alpha):
    got = certification.clopper_pearson_lower(k, n, alpha)
    # The one-sided 1 - alpha bound is the lower end of the two-sided exact 1 - 2 alpha interval.
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact").low
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert stats.binom.sf(k - 1, n, got) == pytest.approx(alpha, rel=1e-6)  # P(X >= k | p = bound) = alpha
    assert certification.clopper_pearson_lower(0, n, alpha) == 0.0


def test_clopper_pearson_covers_the_true_probability():
    rng = np.random.default_rng(0)
    for p in (0.3, 0.8, 0.97):
        bounds = certification.clopper_pearson_lower(rng.binomial(200, p, size=20_000), 200, 0.05)
        assert np.mean(bounds > p) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 20_000)


CONVS = [
    dict(strides=1, padding="same", dilation_rate=1),
    dict(strides=2, padding="same", dilation_rate=1),
    dict(strides=1, padding="valid", dilation_rate=2),
    dict(strides=(2, 1), padding="valid", dilation_rate=1),
]


@pytest.mark.parametrize("options", CONVS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_conv_operator_norms_match_the_dense_matrix_of_the_same_convolution(options):
    layer = NoisyConv2D(5, 3, **options)
    shape = (9, 11, 2)
    layer.build((None,) + shape)
    matrix = np.zeros((np.prod(shape), np.prod(layer.compute_output_shape((1,) + shape)[1:])))
    for j in range(len(matrix)):  # column by column, through the layer itself
        unit = np.zeros((1, np.prod(shape)), dtype="float32")
        unit[0, j] = 1.0
        matrix[j] = np.ravel(
            layer.pre_activation(unit.reshape((1,) + shape)) - layer.pre_activation(np.zeros((1,) + shape, "float32"))
        )
    exact_l2, exact_l1 = np.linalg.norm(matrix, 2), np.abs(matrix).sum(axis=1).max()
    np.testing.assert_allclose(operator_norms.upper_bound(layer, shape, "l2"), exact_l2, rtol=1e-5)
    np.testing.assert_allclose(operator_norms.upper_bound(layer, shape, "l1"), exact_l1, rtol=1e-5)
    np.testing.assert_allclose(operator_norms.power_iteration(layer, shape), exact_l2, rtol=1e-4)
    assert operator_norms.circular_bound(layer, shape) >= exact_l2 * (1 - 1e-9)


def test_dense_operator_norms_are_the_kernels():
    layer = NoisyDense(7)
    layer.build((None, 12))
    kernel = np.asarray(layer.kernel, dtype=np.float64)
    assert operator_norms.upper_bound(layer, (12,), "l2") == pytest.approx(np.linalg.svd(kernel, compute_uv=False)[0])
    assert operator_norms.upper_bound(layer, (12,), "l1") == pytest.approx(np.abs(kernel.T).sum(axis=0).max())


@pytest.mark.parametrize("pool", ["output", "pre-activation"])
def test_draws_start_at_the_first_noisy_layer_of_a_cnn(pool):
    model = architectures.small_cnn((14, 14, 1), 10, activation="relu", noise=noise.Gaussian(0.5), pool=pool)
    first = model.layers[0]
    seen = []
    original = first.pre_activation
    first.pre_activation = lambda inputs: (seen.append(inputs.shape[0]), original(inputs))[1]
    x = np.random.default_rng(0).random((3, 14, 14, 1)).astype("float32")
    got = certification.certify(model, x, num_samples=64, selection_samples=16, progress=False)
    assert set(seen) <= {3, None}, seen  # once per example, never once per draw
    assert got.layer == first.name and got.norm == "l2"


def test_models_without_a_certificate_are_refused_with_the_reason():
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no noisy layer"):
        certification.certify(plain, np.zeros((1, 4)), progress=False)
    before = GLRSequential(
        [keras.Input((4,)), keras.layers.Dense(3, trainable=False), NoisyDense(2, noise=noise.Gaussian(1.0))]
    )
    with pytest.raises(ValueError, match="comes before the first noisy layer"):
        certification.certify(before, np.zeros((1, 4)), progress=False)
    with pytest.raises(ValueError, match="alpha"):
        certification.certify(one_unit_model(noise.Gaussian(1.0), A, B), np.zeros((1, 4)), alpha=0.7, progress=False)


def test_certified_accuracy_counts_right_predictions_at_least_that_far():
    cert = certification.Certificate(
        np.array([0, 1, -1, 2]), np.array([0.5, 0.2, 0.0, 1.0]), "l2", np.zeros(4), 1.0, "x"
    )
    np.testing.assert_allclose(cert.accuracy([0, 0, 1, 2], [0.0, 0.3, 0.7, 2.0]), [0.5, 0.5, 0.25, 0.0])
