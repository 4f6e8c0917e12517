"""Spike encoders: static inputs as sequences, (batch, ...) -> (batch, T, features)."""

import keras
import numpy as np
import pytest

from keras_glr.layers import DirectEncoder
from keras_glr.layers import RateEncoder


def _images(batch=4):
    return np.random.default_rng(0).uniform(size=(batch, 3, 2, 1)).astype("float32")


def test_direct_coding_presents_the_flattened_input_at_every_step():
    x = _images()
    sequences = np.asarray(DirectEncoder(5)(x))
    assert sequences.shape == (4, 5, 6)
    for t in range(5):
        np.testing.assert_array_equal(sequences[:, t], x.reshape(4, -1))
    assert DirectEncoder(5).compute_output_shape((None, 3, 2, 1)) == (None, 5, 6)


def test_rate_coding_fires_with_the_input_as_probability_and_its_seed_fixes_the_draws():
    x = np.full((2000, 2), [0.2, 0.7], "float32")
    spikes = np.asarray(RateEncoder(10, seed=3)(x))
    assert set(np.unique(spikes)) <= {0.0, 1.0} and spikes.shape == (2000, 10, 2)
    rates = spikes.mean(axis=(0, 1))
    np.testing.assert_allclose(rates, [0.2, 0.7], atol=0.01)  # 20000 draws each: standard error below 0.004
    np.testing.assert_array_equal(np.asarray(RateEncoder(10, seed=3)(x)), spikes)
    assert not np.array_equal(np.asarray(RateEncoder(10, seed=4)(x)), spikes)
    np.testing.assert_allclose(
        np.asarray(RateEncoder(10, gain=2.0, seed=3)(x)).mean(axis=(0, 1)), [0.4, 1.0], atol=0.01
    )


def test_an_encoder_survives_a_keras_round_trip(tmp_path):
    model = keras.Sequential([keras.Input((3, 2, 1)), RateEncoder(4, gain=0.5, seed=1)])
    model.save(tmp_path / "encoder.keras")
    layer = keras.saving.load_model(tmp_path / "encoder.keras").layers[0]
    assert (type(layer), layer.time_steps, layer.gain, layer.seed) == (RateEncoder, 4, 0.5, 1)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: DirectEncoder(0), "`time_steps`"),
        (lambda: RateEncoder(2.5), "`time_steps`"),
        (lambda: RateEncoder(4, gain=0), "`gain`"),
    ],
)
def test_bad_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()
