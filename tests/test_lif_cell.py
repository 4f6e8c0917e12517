"""`LIFCell`: leaky integrate-and-fire units in `keras.layers.RNN`, noise on each step's current."""

import keras
import numpy as np
import pytest

import keras_glr
from keras_glr.layers import LIFCell
from keras_glr.layers import NoisyDense

_CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _membranes(x, kernel, bias, leak, threshold, reset):
    """The noiseless cell by hand: spikes (B, T, units)."""
    u = np.zeros((x.shape[0], kernel.shape[1]))
    s = np.zeros_like(u)
    out = []
    for t in range(x.shape[1]):
        current = x[:, t] @ kernel + bias
        u = leak * u + current - threshold * s if reset == "subtract" else leak * u * (1 - s) + current
        s = (u - threshold > 0).astype(float)
        out.append(s)
    return np.stack(out, axis=1)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_the_cell_integrates_leaks_fires_and_resets(reset):
    cell = LIFCell(4, leak=0.7, threshold=0.6, reset=reset, bias_initializer=keras.initializers.Constant(0.3))
    layer = keras.layers.RNN(cell, return_sequences=True)  # inference: no record, the while-loop form is fine
    x = np.random.default_rng(0).uniform(size=(5, 6, 3)).astype("float32")
    spikes = np.asarray(layer(x))
    kernel, bias = (np.asarray(w) for w in cell.current.weights)
    np.testing.assert_array_equal(spikes, _membranes(x, kernel, bias, 0.7, 0.6, reset))
    assert 0 < spikes.mean() < 1


def _snn(estimator):
    model = keras_glr.GLRSequential(
        [
            keras.Input((6, 3)),
            keras.layers.RNN(LIFCell(4), unroll=True, return_sequences=True),
            keras.layers.GlobalAveragePooling1D(),
            NoisyDense(3),
        ],
        seed=0,
    )
    model.compile("adam", _CE, copies=8, estimator=estimator)
    return model


@pytest.mark.parametrize("estimator", ["glr", "bp-ste"])
def test_a_spiking_network_trains_by_glr_and_by_its_straight_through_twin(estimator, tmp_path):
    model = _snn(estimator)
    x, y = np.random.default_rng(1).uniform(size=(16, 6, 3)).astype("float32"), np.arange(16) % 3
    gradients = model.estimate_gradients(x, y)
    assert np.any(
        np.asarray(gradients[0]) != 0
    )  # the current's kernel gets an estimate (GLR) or a surrogate gradient (bp-ste)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "snn.keras")
    loaded = keras.saving.load_model(tmp_path / "snn.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(units=0), "`units`"),
        (dict(units=4, leak=1.5), "`leak`"),
        (dict(units=4, threshold=0), "`threshold`"),
        (dict(units=4, reset="soft"), "`reset`"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LIFCell(**kwargs)
