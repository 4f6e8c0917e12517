"""`keras_glr.convert`: existing Keras models become GLR models with the same weights."""

import keras
import numpy as np
import pytest

import keras_glr
from keras_glr.layers import Noisy
from keras_glr.layers import NoisyConv2D
from keras_glr.layers import NoisyDense
from keras_glr.noise import Gaussian

L = keras.layers
_CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _residual_cnn():
    """Conv with its own activation, BatchNormalization, a residual add, a ReLU layer, a nested Sequential, a frozen layer."""
    inputs = keras.Input((8, 8, 1))
    h = L.Conv2D(4, 3, activation="relu", padding="same")(inputs)
    h = L.BatchNormalization()(h)
    branch = L.ReLU()(L.Conv2D(4, 3, padding="same")(h))
    h = L.MaxPooling2D()(L.Add()([h, branch]))
    frozen = L.Dense(4, name="frozen")
    frozen.trainable = False
    head = keras.Sequential([keras.Input((4, 4, 4)), L.Flatten(), L.Dense(6, activation="tanh")], name="head")
    return keras.Model(inputs, L.Dense(3)(frozen(head(h))), name="residual_cnn")


def _mlp():
    return keras.Sequential([keras.Input((5,)), L.Dense(4, activation="relu"), L.Dense(3)], name="mlp")


def _trained(build, x, y):
    model = build()
    model.compile(keras.optimizers.Adam(0.01), _CE)
    model.fit(x, y, epochs=2, verbose=0)
    return model


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(16, *shape)).astype("float32"), np.arange(16) % 3


@pytest.mark.parametrize("build, shape, kind", [(_mlp, (5,), keras_glr.GLRSequential), (_residual_cnn, (8, 8, 1), keras_glr.GLRModel)],
                         ids=["sequential", "functional"])
def test_with_the_noise_off_the_converted_model_computes_the_original(build, shape, kind, tmp_path):
    x, y = _data(shape)
    original = _trained(build, x, y)
    converted = keras_glr.convert(original, noise=Gaussian(0.1), seed=0)
    assert type(converted) is kind
    np.testing.assert_allclose(converted.predict(x, verbose=0), original.predict(x, verbose=0), atol=1e-6)
    converted.compile(keras.optimizers.Adam(0.01), _CE, copies=8)  # and it trains by GLR
    assert np.isfinite(converted.fit(x, y, epochs=1, verbose=0).history["loss"][0])
    converted.save(tmp_path / "converted.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "converted.keras").predict(x, verbose=0),
                               converted.predict(x, verbose=0), atol=1e-6)


def test_each_layer_becomes_its_noisy_counterpart_with_its_activation_after_the_noise():
    converted = keras_glr.convert(_residual_cnn())
    layers = converted._flatten_layers(include_self=False, recursive=True)
    first = next(layer for layer in converted.layers if isinstance(layer, NoisyConv2D))
    assert first.activation is keras.activations.relu
    assert [type(layer.layer).__name__ for layer in layers if isinstance(layer, Noisy)] == ["BatchNormalization"]
    assert type(next(layer for layer in layers if layer.name == "frozen")) is L.Dense  # frozen layers stay as they are
    assert sum(type(layer) is NoisyDense for layer in layers) == 2  # the nested Sequential's Dense too


def test_an_activation_mapping_binarises_a_relu_network():
    converted = keras_glr.convert(_mlp(), activation={"relu": "step"})
    assert converted.layers[0].activation is keras_glr.activations.step
    inputs = keras.Input((5,))
    with_layer = keras.Model(inputs, L.Dense(3)(L.ReLU()(L.Dense(4)(inputs))))
    mapped = keras_glr.convert(with_layer, activation={"relu": "step"})
    assert [type(l).__name__ for l in mapped.layers][1:] == ["NoisyDense", "Activation", "NoisyDense"]
    x = np.linspace(-1, 1, 20, dtype="float32").reshape(4, 5)
    assert set(np.unique(mapped.layers[2](mapped.layers[1](x)))) <= {0.0, 1.0}


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = L.Dense(3)

    def call(self, x):
        return self.dense(x)


@pytest.mark.parametrize(
    "model, message",
    [
        (lambda: _Subclassed(), "is subclassed"),
        (lambda: keras.Sequential([L.Dense(3)]), "is not built"),
        (lambda: keras_glr.GLRSequential([keras.Input((3,)), NoisyDense(3)]), "already has noisy layers"),
        (lambda: L.Dense(3), "takes a Keras model; received Dense"),
    ],
    ids=["subclassed", "unbuilt", "noisy_already", "a_layer"],
)
def test_models_that_cannot_be_converted_get_a_clear_error(model, message):
    with pytest.raises(ValueError, match=message):
        keras_glr.convert(model())


def test_a_bad_activation_mapping_is_refused():
    with pytest.raises(ValueError, match=r"Expected None or a dict"):
        keras_glr.convert(_mlp(), activation="step")
