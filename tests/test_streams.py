"""Noise streams: one per call, counter-based rows, one home for the generators."""

import keras
import numpy as np
import pytest
import scipy.stats

import keras_glr
from keras_glr._src import checkpoints
from keras_glr._src import streams
from keras_glr._src.recording import recording
from keras_glr.layers import NoisyDense
from keras_glr.layers import noisy_layers
from keras_glr.noise import Gaussian
from keras_glr.noise import Laplace

_KEY = np.array([20261124], dtype=np.uint64)


def _layout(copies, antithetic=False, sampling="mc", first_example=0):
    return streams.CopyLayout(copies=copies, antithetic=antithetic, sampling=sampling, first_example=first_example)


def test_stream_ids_are_distinct_for_slot_call_and_purpose():
    ids = {
        streams.stream_id(slot, call, purpose)
        for slot in range(4)
        for call in range(3)
        for purpose in (streams.TRAINING, streams.PREDICTION)
    }
    assert len(ids) == 4 * 3 * 2
    assert all(i % 256 == 0 for i in ids)  # parts 0..255 are left to the distribution
    with pytest.raises(ValueError, match="call=16777216"):
        streams.stream_id(0, 2**24)


@pytest.mark.parametrize("distribution", [Gaussian(1.0), Laplace(1.0)], ids=repr)
@pytest.mark.parametrize("antithetic", [False, True])
def test_call_noise_rows_belong_to_examples(distribution, antithetic):
    """Examples 2..3 drawn alone equal examples 2..3 of a draw of 0..4; copies sit in rows b*K + k."""
    copies, units = 4, 3
    whole = np.asarray(streams.call_noise(distribution, _KEY, 0, 5, units, _layout(copies, antithetic)))
    part = np.asarray(streams.call_noise(distribution, _KEY, 0, 2, units, _layout(copies, antithetic, first_example=2)))
    assert whole.shape == (5 * copies, units)
    np.testing.assert_allclose(part, whole[2 * copies : 4 * copies], rtol=1e-6, atol=1e-7)
    if antithetic:
        np.testing.assert_array_equal(whole[0::2], -whole[1::2])
    other = np.asarray(
        streams.call_noise(distribution, _KEY, streams.stream_id(0, 1), 5, units, _layout(copies, antithetic))
    )
    assert not np.any(other == whole)


def test_a_layer_called_twice_draws_independent_noise():
    layer = NoisyDense(4, "sigmoid")
    x = np.ones((3, 4), "float32")
    with recording(copies=2, key=_KEY) as record:
        layer(layer(np.repeat(x, 2, axis=0)))
    first, second = record.entries
    assert first.layer is second.layer and first.stream != second.stream
    r1, r2 = np.asarray(first.noise).ravel(), np.asarray(second.noise).ravel()
    assert not np.any(r1 == r2)


def test_equal_names_and_seeds_do_not_share_streams():
    inner_inputs = keras.Input((4,))
    inner = keras.Model(inner_inputs, NoisyDense(4, seed=1, name="noisy")(inner_inputs))
    inputs = keras.Input((4,))
    model = keras_glr.GLRModel(inputs, NoisyDense(4, seed=1, name="noisy")(inner(inputs)))
    with recording(copies=2, key=_KEY, slots=noisy_layers(model)) as record:
        model(np.ones((2, 4), "float32"))
    first, second = record.entries
    assert first.stream != second.stream
    assert not np.any(np.asarray(first.noise) == np.asarray(second.noise))


def test_noise_states_round_trip_and_refuse_another_model():
    model = keras_glr.GLRSequential([keras.Input((3,)), NoisyDense(2), NoisyDense(2)], seed=3)
    states = checkpoints.noise_states(model)
    first = np.asarray(streams.next_key(model.training_noise))
    checkpoints.restore_noise_states(model, states)
    np.testing.assert_array_equal(np.asarray(streams.next_key(model.training_noise)), first)
    other = keras_glr.GLRSequential([keras.Input((3,)), NoisyDense(2)])
    with pytest.raises(ValueError, match="do not belong to this model"):
        checkpoints.restore_noise_states(other, states)


def test_the_model_seed_alone_fixes_the_training_noise():
    """Models built under different global seeds, with equal weights and `seed`, estimate alike."""
    x, y = np.ones((2, 3), "float32"), np.array([0, 1])

    def estimate(global_seed, seed, weights=None):
        keras.utils.set_random_seed(global_seed)
        model = keras_glr.GLRSequential([keras.Input((3,)), NoisyDense(2, "sigmoid"), NoisyDense(2)], seed=seed)
        if weights is not None:
            model.set_weights(weights)
        model.compile("sgd", "zero_one", copies=4, baseline="none")
        return model.get_weights(), [np.asarray(g) for g in model.estimate_gradients(x, y)]

    weights, first = estimate(0, seed=9)
    _, same = estimate(1, seed=9, weights=weights)
    _, other = estimate(1, seed=10, weights=weights)
    for a, b in zip(first, same):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def _cdf(distribution):
    if isinstance(distribution, Gaussian):
        return lambda v: scipy.stats.norm.cdf(v, scale=distribution.stddev)
    return lambda v: scipy.stats.laplace.cdf(v, scale=distribution.scale)


def _assert_stratified_counter_based_pairs(distribution, sampling, key, copies, units):
    """Each example's copies fall one per stratum of F in every coordinate; row b is the same
    whichever rows are drawn; antithetic pairs are (r, -r)."""
    r = (
        streams.call_noise(distribution, key, 0, 3, units, _layout(copies, sampling=sampling))
        .numpy()
        .reshape(3, copies, units)
    )
    strata = np.floor(_cdf(distribution)(r) * copies).astype(int)
    for b in range(3):
        for j in range(units):
            assert sorted(strata[b, :, j]) == list(range(copies))
    alone = (
        streams.call_noise(distribution, key, 0, 1, units, _layout(copies, sampling=sampling, first_example=2))
        .numpy()
        .reshape(copies, units)
    )
    np.testing.assert_array_equal(alone, r[2])
    pairs = streams.call_noise(distribution, key, 0, 3, units, _layout(copies, True, sampling)).numpy()
    pairs = pairs.reshape(3, copies // 2, 2, units)
    np.testing.assert_array_equal(pairs[:, :, 0], -pairs[:, :, 1])


@pytest.mark.parametrize("distribution", [Gaussian(2.0), Laplace(0.5)], ids=["gaussian", "laplace"])
def test_sobol_copies_keep_the_strata_and_the_noise_distribution(distribution):
    """K = 2^m randomised Sobol copies fall one per stratum of F in every coordinate; across
    examples each copy is distributed as the noise; row b is the same whichever rows are drawn."""
    key = streams.stream_key([5, 6])
    _assert_stratified_counter_based_pairs(distribution, "sobol", key, 16, 9)
    many = streams.call_noise(distribution, key, 0, 4000, 3, _layout(4, sampling="sobol")).numpy().reshape(4000, 4, 3)
    for k in range(4):  # every copy, the origin's included, is distributed as the noise
        for j in range(3):
            assert scipy.stats.kstest(_cdf(distribution)(many[:, k, j]), "uniform").pvalue > 1e-4
    assert abs(np.corrcoef(many[:, 1, 0], many[:, 1, 1])[0, 1]) < 0.1  # coordinates independent across examples


def test_sobol_refuses_more_units_than_its_dimensions():
    with pytest.raises(ValueError, match="at most 21201.*this call has 21202"):
        streams.call_noise(Gaussian(1.0), streams.stream_key([1, 2]), 0, 1, 21202, _layout(4, sampling="sobol"))


@pytest.mark.parametrize("distribution", [Gaussian(2.0), Laplace(0.5)], ids=["gaussian", "laplace"])
def test_latin_copies_take_one_stratum_each_and_keep_their_rows(distribution):
    """Each example's K copies fall one per stratum of F in every coordinate; row b is the same whichever rows are
    drawn."""
    _assert_stratified_counter_based_pairs(distribution, "latin", streams.stream_key([3, 4]), 10, 7)
