"""The SavedModel export: both signatures, and noisy serving on the prediction streams."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_glr
from keras_glr import export
from keras_glr.layers import NoisyDense


def _model():
    model = keras_glr.GLRSequential([keras.Input((5,)), NoisyDense(6, "step"), NoisyDense(3)], seed=2)
    model.compile("sgd", "zero_one", copies=4)
    return model


def test_signatures_serve_the_model(tmp_path):
    model = _model()
    x = np.random.default_rng(0).uniform(size=(4, 5)).astype("float32")
    export.export_saved_model(model, tmp_path / "saved", noisy_passes=8)
    described = export.describe_signatures(tmp_path / "saved")
    assert {"serving_default", "serve", "serve_noisy"} <= set(described)
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    deterministic = loaded.signatures["serving_default"](inputs=tf.constant(x))["output_0"]
    np.testing.assert_allclose(deterministic, tf.nn.softmax(model.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)
    noisy = [np.asarray(loaded.signatures["serve_noisy"](inputs=tf.constant(x))["output_0"]) for _ in range(2)]
    assert noisy[0].shape == (4, 3)
    np.testing.assert_allclose(noisy[0].sum(axis=1), 1.0, rtol=1e-5)
    assert not np.array_equal(*noisy)  # fresh noise on every request


def test_export_leaves_the_training_noise_alone(tmp_path):
    model = _model()
    before = keras_glr.streams.noise_states(model)["training"]
    export.export_saved_model(model, tmp_path / "saved", noisy_passes=4)
    model.noisy_forward(np.ones((2, 5), "float32"), 4)
    assert keras_glr.streams.noise_states(model)["training"] == before


def test_bad_noisy_passes():
    with pytest.raises(ValueError, match="noisy_passes=0"):
        export.export_saved_model(_model(), "unused", noisy_passes=0)
