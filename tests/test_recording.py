"""The recorder: scoped, one entry per noisy call, fan-out broadcast, local gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_glr._src import estimators
from keras_glr._src import recording
from keras_glr._src import streams
from keras_glr.layers import NoisyDense
from keras_glr.noise import Gaussian

_KEY = np.array([11], dtype=np.uint64)


def test_records_are_scoped_and_nest():
    layer = NoisyDense(2)
    x = np.ones((1, 3), "float32")
    assert recording.current() is None
    with recording.recording(copies=1, key=_KEY) as outer:
        with recording.recording(copies=1, noise=False) as inner:
            layer(x)
            assert recording.current() is inner
        layer(x)
    assert recording.current() is None
    assert (len(outer.entries), len(inner.entries)) == (1, 0)


@pytest.mark.parametrize("noise", [True, False])
def test_fan_out_broadcasts_the_first_noisy_call_to_the_copies(noise):
    first, second = NoisyDense(4, noise=Gaussian(0.5)), NoisyDense(2)
    x = np.random.default_rng(0).uniform(size=(3, 5)).astype("float32")
    with recording.recording(copies=6, fan_out=True, noise=noise, key=_KEY) as record:
        out = second(first(x))
    assert out.shape == (18, 2)
    if not noise:
        np.testing.assert_allclose(out, np.repeat(second(first(x)), 6, axis=0), rtol=1e-6)
        return
    entry = record.entries[0]
    np.testing.assert_allclose(np.asarray(entry.clean), np.asarray(first.pre_activation(x)), rtol=1e-6)
    r = np.asarray(entry.pre_activation) - np.repeat(np.asarray(entry.clean), 6, axis=0)
    np.testing.assert_allclose(r, np.asarray(entry.noise), atol=1e-5)
    assert record.entries[1].clean is None


def test_target_and_cotangent_give_the_layer_its_own_term():
    """Fanned-out: the VJP of the clean pre-activation at sum_k w_k s(r_k) equals sum_n w_n s(r_n) dv_n/dW."""
    layer = NoisyDense(3)
    x = np.random.default_rng(1).uniform(size=(2, 4)).astype("float32")
    weights = np.random.default_rng(2).normal(size=2 * 5).astype("float32")
    with tf.GradientTape() as tape:
        with recording.recording(copies=5, fan_out=True, key=_KEY) as record:
            layer(x)
    target, cotangent = estimators.target_and_cotangent(record.entries[0], weights)
    got = tape.gradient(target, layer.kernel, output_gradients=cotangent)
    expected = np.repeat(x, 5, axis=0).T @ (weights[:, None] * np.asarray(record.entries[0].score))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_local_records_stop_gradients_between_layers():
    first, second = NoisyDense(3, "sigmoid"), NoisyDense(2)
    x = np.ones((2, 4), "float32")
    with tf.GradientTape() as tape:
        with recording.recording(copies=1, key=_KEY, local=True):
            out = second(first(x))
    assert tape.gradient(out, first.kernel) is None
    with tf.GradientTape() as tape:
        with recording.recording(copies=1, key=_KEY, local=False):
            out = second(first(x))
    assert tape.gradient(out, first.kernel) is not None


def test_antithetic_needs_even_copies():
    with pytest.raises(ValueError, match="even number of copies. Received: copies=3"):
        recording.ForwardRecord(copies=3, antithetic=True)


def test_a_record_without_a_key_draws_fresh_noise():
    layer = NoisyDense(3)
    x = np.ones((1, 4), "float32")
    draws = []
    for _ in range(2):
        with recording.recording(copies=1) as record:
            layer(x)
        draws.append(np.asarray(record.entries[0].noise))
    assert not np.array_equal(*draws)
    keras.utils.set_random_seed(1)


def test_a_noisy_layer_in_a_tf_while_loop_of_its_own_is_a_clear_error():
    """keras.layers.RNN is unrolled for a GLR step (tests/test_recurrence.py); a hand-written loop cannot be."""
    layer = NoisyDense(3, "tanh")
    layer.build((None, 3))

    @tf.function
    def looped(x):
        with recording.recording(copies=1, key=streams.stream_key([1, 2])):
            return tf.while_loop(lambda i, h: i < 3, lambda i, h: (i + 1, layer(h)), (tf.constant(0), x))[1]

    with pytest.raises(ValueError, match=r"inside a tf\.while_loop.*keras\.layers\.RNN"):
        looped(tf.ones((2, 3)))
