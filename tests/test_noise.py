import keras
import numpy as np
import pytest

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
    np.testing.assert_allclose(np.asarray(distribution.summed_weighted_score(r, w, copies)), summed, rtol=1e-5, atol=1e-5)
