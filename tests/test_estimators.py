"""The estimator's pieces: baselines, antithetic pairs, locality, fan-out."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_glr
import keras_glr._src.fan_out
from keras_glr._src import checkpoints
from keras_glr._src import estimators
from keras_glr._src.recording import recording
from keras_glr.layers import NoisyDense


def _loo_reference(losses, copies, antithetic):
    """Plain loops: subtract the mean of the copies that do not share noise."""
    losses = np.asarray(losses, dtype=np.float64).reshape(-1, copies)
    out = np.empty_like(losses)
    for b, row in enumerate(losses):
        for k in range(copies):
            partner = k ^ 1 if antithetic else k
            others = [row[j] for j in range(copies) if j not in (k, partner)]
            out[b, k] = row[k] - np.mean(others)
    return out.ravel()


@pytest.mark.parametrize("antithetic", [False, True])
def test_leave_one_out_baseline(antithetic):
    losses = np.random.default_rng(0).normal(size=3 * 6).astype("float32")
    got = estimators.centre_losses(losses, 6, "loo", antithetic)
    np.testing.assert_allclose(got, _loo_reference(losses, 6, antithetic), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(estimators.centre_losses(losses, 6, "none", antithetic), losses)


def test_antithetic_copies_come_in_negated_pairs_within_an_example():
    layer = NoisyDense(3)
    x = np.ones((2, 4), "float32")
    with recording(copies=4, antithetic=True, fan_out=True) as record:
        layer(x)
    r = np.asarray(record.entries[0].score)  # Gaussian(1): s(r) = r
    assert r.shape == (8, 3)
    np.testing.assert_array_equal(r[0::2], -r[1::2])
    assert not np.allclose(r[0], r[2])


@pytest.mark.parametrize(
    "copies, baseline, antithetic, message",
    [
        (1, "loo", False, "at least two copies"),
        (3, "none", True, "must be even"),
        (2, "loo", True, "at least two antithetic pairs"),
        (0, "none", False, "copies=0"),
        (4, "mean", False, "baseline='mean'"),
    ],
)
def test_invalid_options_are_clear_errors(copies, baseline, antithetic, message):
    model = keras_glr.GLRSequential([keras.Input((2,)), NoisyDense(2)])
    with pytest.raises(ValueError, match=message):
        model.compile("sgd", "mse", copies=copies, baseline=baseline, antithetic=antithetic)


def test_dense_estimate_is_the_local_formula():
    """x^T (w * s) per layer, from each layer's own input and score."""
    model = keras_glr.GLRSequential([keras.Input((3,)), NoisyDense(4, "step"), NoisyDense(2)])
    x = np.random.default_rng(0).uniform(size=(5, 3)).astype("float32")
    copies = 6
    with tf.GradientTape() as tape:
        with recording(copies=copies, fan_out=True) as record:
            model(x)
    weights = np.random.default_rng(1).normal(size=5 * copies).astype("float32")
    got = estimators.local_gradients(tape, record.entries, weights, model.trainable_variables)
    first, second = record.entries
    inputs = [np.repeat(x, copies, axis=0), np.asarray(keras_glr.activations.step(first.pre_activation))]
    for layer_index, (entry, layer_input) in enumerate(zip(record.entries, inputs)):
        cot = weights[:, None] * np.asarray(entry.score)
        np.testing.assert_allclose(got[2 * layer_index], layer_input.T @ cot, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got[2 * layer_index + 1], cot.sum(0), rtol=1e-4, atol=1e-5)


class _GradientSpy(keras.layers.Layer):
    """Identity whose backward pass records that a gradient crossed it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.crossings = 0

    def call(self, x):
        @tf.custom_gradient
        def identity(t):
            def grad(upstream):
                self.crossings += 1
                return upstream

            return tf.identity(t), grad

        return identity(x)


@pytest.mark.parametrize("estimator, crosses", [("glr", False), ("bp-noise", True)])
def test_no_gradient_flows_between_layers_under_glr(estimator, crosses):
    spy = _GradientSpy()
    inputs = keras.Input((3,))
    hidden = NoisyDense(4, "sigmoid")(inputs)
    outputs = NoisyDense(2)(spy(hidden))
    model = keras_glr.GLRModel(inputs, outputs)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), copies=4, estimator=estimator)
    x = np.ones((2, 3), "float32")
    gradients = model.estimate_gradients(x, np.array([0, 1]))
    assert all(np.all(np.isfinite(g)) for g in gradients)
    assert (spy.crossings > 0) == crosses


@pytest.mark.parametrize("antithetic", [False, True])
def test_fan_out_gives_the_same_estimate_as_repeating_the_input(monkeypatch, antithetic):
    """Copies begin at the first noise: computing x W once per example is exact."""
    model = keras_glr.GLRSequential([keras.Input((4, 4)), keras.layers.Flatten(), NoisyDense(5, "step"), NoisyDense(3)])
    model.compile("sgd", "zero_one", copies=8, antithetic=antithetic)
    x = np.random.default_rng(0).uniform(size=(3, 4, 4)).astype("float32")
    y = np.array([0, 1, 2])
    states = checkpoints.noise_states(model)
    estimates = []
    for fan_out in (True, False):
        monkeypatch.setattr(keras_glr._src.fan_out, "can_fan_out", lambda model, f=fan_out: f)
        checkpoints.restore_noise_states(model, states)
        model.compile("sgd", "zero_one", copies=8, antithetic=antithetic)
        estimates.append(model.estimate_gradients(x, y))
    assert any(np.any(g != 0) for g in estimates[0])
    for a, b in zip(*estimates):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(sampling="halton"), "Expected one of \\['mc', 'latin', 'sobol'\\]"),
        (dict(sampling="latin"), "leave-one-out baseline .* would depend on the copy's own noise"),
        (dict(sampling="sobol"), "Randomised Sobol copies .* leave-one-out baseline"),
        (
            dict(sampling="sobol", baseline="none", estimator="bp"),
            "Randomised Sobol sampling is an option of the GLR estimator",
        ),
        (dict(sampling="latin", baseline="none", estimator="bp-noise"), "option of the GLR estimator"),
        (dict(injection="layerwise", estimator="bp"), "Layer-wise injection"),
        (dict(copies_per_layer=[50, 50]), "needs injection='layerwise'"),
    ],
)
def test_sampling_and_injection_options_are_checked(options, message):
    model = keras_glr.GLRSequential([keras.Input((3,)), NoisyDense(2)])
    with pytest.raises(ValueError, match=message):
        model.compile("sgd", "zero_one", **options)
