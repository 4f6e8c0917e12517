import keras
import numpy as np
import pytest

from keras_glr._src import recording
from keras_glr.layers import NoisyConv2D
from keras_glr.layers import NoisyDense
from keras_glr.noise import Gaussian
from keras_glr.noise import Laplace

LAYERS = {
    "dense": (lambda **kw: NoisyDense(5, "step", **kw), (4, 3)),
    "conv": (lambda **kw: NoisyConv2D(2, 3, activation="abs", padding="same", **kw), (4, 6, 6, 1)),
    "conv_pooled": (lambda **kw: NoisyConv2D(2, 3, activation="abs", padding="same", pool_size=2, **kw), (4, 6, 6, 1)),
}


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_inference_is_deterministic_and_noise_only_under_a_recorder(kind):
    make, shape = LAYERS[kind]
    layer = make(noise=Gaussian(1.0))
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    np.testing.assert_array_equal(layer(x), layer(x))
    clean = np.asarray(layer.pre_activation(x))
    with recording.recording(copies=1) as record:
        noisy = layer(x)
    (entry,) = record.entries
    assert entry.layer is layer and entry.score.shape == clean.shape
    r = np.asarray(entry.pre_activation) - clean
    np.testing.assert_allclose(np.asarray(entry.score), r, atol=1e-5)  # Gaussian(1): s(r) = r
    np.testing.assert_array_equal(noisy, layer.activation(entry.pre_activation))


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_noisy_inference_keeps_noise_on(kind):
    make, shape = LAYERS[kind]
    layer = make(noise=Laplace(1.0), noisy_inference=True)
    x = np.ones(shape, "float32")
    noisy = layer(x)
    assert not np.array_equal(layer.activation(layer.pre_activation(x)), noisy)
    assert not np.array_equal(layer(x), layer(x))


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_config_round_trip(kind):
    make, shape = LAYERS[kind]
    layer = make(noise=Laplace(0.5), noisy_inference=True, seed=3, name="noisy")
    layer.build(shape)
    config = layer.get_config()
    restored = type(layer).from_config(config)
    assert restored.get_config() == config
    assert isinstance(restored.noise, Laplace) and restored.noise.scale == 0.5
    assert restored.noisy_inference and restored.seed == 3


def test_default_noise_is_unit_gaussian():
    assert NoisyDense(2).noise.get_config() == {"stddev": 1.0}


def test_bad_noise_argument():
    with pytest.raises(ValueError, match="noise="):
        NoisyDense(3, noise=0.5)


@pytest.mark.parametrize("activation", ["relu", "step", "sigmoid"])
def test_pooling_the_pre_activation_is_pooling_the_output_for_nondecreasing_units(activation):
    """maxpool(phi(v)) = phi(maxpool(v)) for nondecreasing phi: the noiseless layer is conv -> phi -> max-pool."""
    import keras

    pooled = NoisyConv2D(3, 3, activation=activation, padding="same", pool_size=2)
    x = np.random.default_rng(1).normal(size=(2, 7, 7, 1)).astype("float32")
    y = np.asarray(pooled(x))
    plain = NoisyConv2D(3, 3, activation=activation, padding="same")
    plain.build(x.shape)
    plain.set_weights(pooled.get_weights())
    np.testing.assert_allclose(y, keras.layers.MaxPooling2D()(plain(x)), rtol=1e-6, atol=1e-6)
    assert y.shape == (2, 3, 3, 3) == pooled.compute_output_shape(x.shape)
    assert pooled.compute_output_shape((None, 7, 7, 1)) == (None, 3, 3, 3)


@pytest.mark.parametrize("bad", [0, (2, 0), (2,), 1.5, True, "2"])
def test_bad_pool_size(bad):
    with pytest.raises(ValueError, match=r"Invalid value received for argument `pool_size`.*Received: pool_size="):
        NoisyConv2D(2, 3, pool_size=bad)


def test_a_pooled_cnn_survives_save_and_load(tmp_path):
    import keras

    from keras_glr import architectures

    model = architectures.small_cnn((6, 6, 1), 3, activation="relu", pool="pre-activation")
    model.compile("sgd", "mse", copies=2)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert [layer.pool_size for layer in loaded.layers[:2]] == [(2, 2), (2, 2)]
    x = np.random.default_rng(0).uniform(size=(2, 6, 6, 1)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_the_cnn_names_its_pooling_choices():
    from keras_glr import architectures

    with pytest.raises(ValueError, match="Invalid `pool`: 'avg'. Expected one of output, pre-activation"):
        architectures.small_cnn((6, 6, 1), 3, pool="avg")


def test_sine_positions_add_the_fixed_encoding_and_survive_a_round_trip(tmp_path):
    from keras_glr.layers import SinePositionEncoding

    x = np.random.default_rng(0).normal(size=(2, 5, 6)).astype("float32")
    added = np.asarray(SinePositionEncoding()(x)) - x
    t, i = np.arange(5)[:, None], np.arange(6)[None, :]
    angle = t / 10000.0 ** ((i // 2 * 2) / 6)
    np.testing.assert_allclose(added[0], np.where(i % 2 == 0, np.sin(angle), np.cos(angle)), atol=1e-6)
    np.testing.assert_allclose(added[0], added[1], atol=1e-6)
    model = keras.Sequential([keras.Input((5, 6)), SinePositionEncoding(wavelength=100.0)])
    model.save(tmp_path / "positions.keras")
    loaded = keras.saving.load_model(tmp_path / "positions.keras")
    assert loaded.layers[0].wavelength == 100.0
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
