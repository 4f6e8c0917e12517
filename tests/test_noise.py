import keras
import numpy as np
import pytest
from scipy import stats

from keras_glr import noise


@pytest.mark.parametrize(
    "distribution, variance",
    [(noise.Gaussian(2.0), 4.0), (noise.Laplace(1.5), 2 * 1.5**2)],
    ids=["gaussian", "laplace"],
)
def test_samples_have_zero_mean_and_the_stated_variance(distribution, variance):
    r = np.asarray(distribution.sample((200_000,), seed=keras.random.SeedGenerator(0)))
    se_mean = np.sqrt(variance / r.size)
    assert abs(r.mean()) < 4 * se_mean
    assert r.var() == pytest.approx(variance, rel=0.03)


def test_scores_are_minus_the_derivative_of_the_log_density():
    r = np.linspace(-3, 3, 13).astype("float32")
    r = r[r != 0]
    eps = 1e-3
    gauss = noise.Gaussian(2.0)
    log_f = lambda t: -0.5 * t**2 / 4.0  # noqa: E731
    numeric = -(log_f(r + eps) - log_f(r - eps)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(gauss.score(r)), numeric, rtol=1e-3)
    lap = noise.Laplace(0.5)
    log_f = lambda t: -np.abs(t) / 0.5  # noqa: E731
    numeric = -(log_f(r + eps) - log_f(r - eps)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(lap.score(r)), numeric, rtol=1e-3)


def test_sampling_is_reproducible_with_set_random_seed():
    draws = []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        draws.append(np.asarray(noise.Laplace(1.0).sample((10,), seed=keras.random.SeedGenerator())))
    np.testing.assert_array_equal(draws[0], draws[1])


@pytest.mark.parametrize("cls, arg", [(noise.Gaussian, "stddev"), (noise.Laplace, "scale")])
@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "1.0", None, True])
def test_invalid_parameters_name_the_argument_and_value(cls, arg, bad):
    with pytest.raises(ValueError, match=f"`{arg}`.*{arg}="):
        cls(bad)


@pytest.mark.parametrize("distribution", [noise.Gaussian(0.3), noise.Laplace(2.5)], ids=repr)
def test_serialization_round_trip(distribution):
    config = keras.saving.serialize_keras_object(distribution)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(distribution)
    assert restored.get_config() == distribution.get_config()


def test_get_accepts_names_and_rejects_others():
    assert isinstance(noise.get("gaussian"), noise.Gaussian)
    assert isinstance(noise.get("Laplace"), noise.Laplace)
    with pytest.raises(ValueError, match="Received: noise='cauchy'"):
        noise.get("cauchy")


@pytest.mark.parametrize("distribution", [noise.Gaussian(0.7), noise.Laplace(1.3)], ids=repr)
def test_weighted_scores_equal_the_plain_formula(distribution):
    """The fused forms used by the estimator: w_n s(r_n), and its sum over each example's K copies."""
    rng = np.random.default_rng(0)
    batch, copies = 3, 5
    r = rng.normal(size=(batch * copies, 4, 2)).astype("float32")
    w = rng.normal(size=batch * copies).astype("float32")
    terms = w[:, None, None] * np.asarray(distribution.score(r))
    np.testing.assert_allclose(np.asarray(distribution.weighted_score(r, w)), terms, rtol=1e-5, atol=1e-6)
    summed = terms.reshape(batch, copies, 4, 2).sum(axis=1)
    np.testing.assert_allclose(
        np.asarray(distribution.summed_weighted_score(r, w, copies)), summed, rtol=1e-5, atol=1e-5
    )


_KEY = np.array([20261123], dtype=np.uint64)


@pytest.mark.parametrize(
    "distribution, cdf",
    [
        (noise.Gaussian(2.0), lambda t: stats.norm.cdf(t, scale=2.0)),
        (noise.Laplace(1.5), lambda t: stats.laplace.cdf(t, scale=1.5)),
    ],
    ids=["gaussian", "laplace"],
)
def test_training_stream_has_the_stated_distribution(distribution, cdf):
    """Kolmogorov-Smirnov on 400,000 values of the stream that training draws from."""
    r = np.asarray(distribution.sample_rows(50, 8000, _KEY, 0)).ravel()
    assert stats.kstest(r, cdf).pvalue > 1e-4
    # The two halves of a Gaussian row (cosine, sine) and rows must be uncorrelated.
    rows = r.reshape(50, 8000)
    assert abs(np.corrcoef(rows[:, :4000].ravel(), rows[:, 4000:].ravel())[0, 1]) < 4 / np.sqrt(200_000)
    assert abs(np.corrcoef(rows[:-1].ravel(), rows[1:].ravel())[0, 1]) < 4 / np.sqrt(392_000)


@pytest.mark.parametrize("distribution", [noise.Gaussian(0.5), noise.Laplace(1.0)], ids=repr)
def test_training_stream_rows_do_not_depend_on_their_neighbours(distribution):
    """Rows 3..5 drawn alone equal rows 3..5 of a draw of rows 0..7: chunks and replicas see the same noise."""
    whole = np.asarray(distribution.sample_rows(8, 24, _KEY, 0))
    part = np.asarray(distribution.sample_rows(3, 24, _KEY, 3))
    # Equal up to rounding: vectorised and scalar math kernels may differ in the last bit.
    np.testing.assert_allclose(part, whole[3:6], rtol=1e-6, atol=1e-7)
    other_key = np.asarray(distribution.sample_rows(8, 24, _KEY + np.uint64(1), 0))
    assert not np.any(other_key == whole)


@pytest.mark.parametrize("distribution", [noise.Gaussian(1.0), noise.Laplace(1.0)], ids=repr)
def test_training_stream_rejects_rows_of_partial_blocks(distribution):
    with pytest.raises(ValueError, match="Received: length=6"):
        distribution.sample_rows(2, 6, _KEY, 0)


def test_laplace_with_an_integer_seed_has_independent_sign_and_magnitude():
    """With one integer seed the sign and the magnitude must not be tied to one uniform draw."""
    r = np.asarray(noise.Laplace(1.5).sample((200_000,), seed=7))
    se_mean = np.sqrt(2 * 1.5**2 / r.size)
    assert abs(r.mean()) < 4 * se_mean
    assert r.var() == pytest.approx(2 * 1.5**2, rel=0.03)
    assert abs(np.mean(r > 0) - 0.5) < 4 * 0.5 / np.sqrt(r.size)
    positive, negative = np.abs(r[r > 0]), np.abs(r[r < 0])
    se = 1.5 * np.sqrt(1 / positive.size + 1 / negative.size)
    assert abs(positive.mean() - negative.mean()) < 4 * se
    assert stats.kstest(r, lambda t: stats.laplace.cdf(t, scale=1.5)).pvalue > 1e-4
