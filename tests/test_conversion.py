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
    """Conv with its own activation, BatchNormalization, a residual add, a ReLU layer, a nested Sequential, a frozen
    layer."""
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


@pytest.mark.parametrize(
    "build, shape, kind",
    [(_mlp, (5,), keras_glr.GLRSequential), (_residual_cnn, (8, 8, 1), keras_glr.GLRModel)],
    ids=["sequential", "functional"],
)
def test_with_the_noise_off_the_converted_model_computes_the_original(build, shape, kind, tmp_path):
    x, y = _data(shape)
    original = _trained(build, x, y)
    converted = keras_glr.convert(original, noise=Gaussian(0.1), seed=0)
    assert type(converted) is kind
    np.testing.assert_allclose(converted.predict(x, verbose=0), original.predict(x, verbose=0), atol=1e-6)
    converted.compile(keras.optimizers.Adam(0.01), _CE, copies=8)  # and it trains by GLR
    assert np.isfinite(converted.fit(x, y, epochs=1, verbose=0).history["loss"][0])
    converted.save(tmp_path / "converted.keras")
    np.testing.assert_allclose(
        keras.saving.load_model(tmp_path / "converted.keras").predict(x, verbose=0),
        converted.predict(x, verbose=0),
        atol=1e-6,
    )


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


@pytest.mark.parametrize(
    "recurrent, cell",
    [
        (L.SimpleRNN(5), "NoisySimpleRNNCell"),
        (L.LSTM(5), "NoisyLSTMCell"),
        (L.GRU(5), "NoisyGRUCell"),
        (L.LSTM(5, return_sequences=True, go_backwards=True), "NoisyLSTMCell"),
    ],
    ids=["simple_rnn", "lstm", "gru", "lstm_sequences_backwards"],
)
def test_plain_recurrent_layers_become_rnns_over_the_noisy_cells_and_compute_the_same(recurrent, cell, tmp_path):
    original = keras.Sequential([keras.Input((6, 3)), recurrent, L.Flatten(), L.Dense(3)])
    for weight in original.weights:  # weights of a trained size: the cell's internal tanh matters
        weight.assign(weight.numpy() * 3.0)
    x, y = np.random.default_rng(0).normal(size=(8, 6, 3)).astype("float32"), np.arange(8) % 3
    converted = keras_glr.convert(original, noise=Gaussian(0.1), seed=0)
    rnn = converted.layers[0]
    assert type(rnn) is L.RNN and type(rnn.cell).__name__ == cell
    assert rnn.return_sequences == recurrent.return_sequences and rnn.go_backwards == recurrent.go_backwards
    np.testing.assert_allclose(converted.predict(x, verbose=0), original.predict(x, verbose=0), atol=1e-5)
    converted.compile(keras.optimizers.Adam(0.01), _CE, copies=8)
    before = [np.array(w) for w in rnn.weights]
    assert np.isfinite(converted.fit(x, y, epochs=1, verbose=0).history["loss"][0])
    assert all(np.any(a != np.asarray(b)) for a, b in zip(before, rnn.weights))  # the cell's weights train
    converted.save(tmp_path / "converted.keras")
    np.testing.assert_allclose(
        keras.saving.load_model(tmp_path / "converted.keras").predict(x, verbose=0),
        converted.predict(x, verbose=0),
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "recurrent, odd",
    [
        (L.LSTM(4, activation="relu"), "'activation': 'relu'"),
        (L.GRU(4, reset_after=False), "'reset_after': False"),
        (L.LSTM(4, recurrent_activation="hard_sigmoid"), "'recurrent_activation': 'hard_sigmoid'"),
    ],
)
def test_recurrent_layers_whose_gates_the_noisy_cells_do_not_compute_are_refused(recurrent, odd):
    with pytest.raises(
        ValueError, match=rf"cannot be converted: its noisy cell computes the standard gates.*{odd}.*Noisy\(layer\)"
    ):
        keras_glr.convert(keras.Sequential([keras.Input((6, 3)), recurrent, L.Dense(3)]))


class _ActivationFirst(L.Layer):
    """Applies its activation to the input, then the weights: moving it after the noise changes the function."""

    def __init__(self, units=3, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.activation = units, keras.activations.get(activation)

    def build(self, shape):
        self.w = self.add_weight((shape[-1], self.units), "ones")

    def call(self, x):
        return keras.ops.matmul(self.activation(x), self.w)

    def compute_output_shape(self, shape):
        return (*shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": keras.activations.serialize(self.activation)}


def test_convert_checks_itself_and_names_the_first_layer_whose_output_differs():
    original = keras.Sequential(
        [
            keras.Input((4,)),
            L.Dense(4, kernel_initializer="identity"),
            _ActivationFirst(3, "relu", name="odd"),
            L.Dense(2),
        ]
    )
    before = [np.array(w) for w in original.weights]
    with pytest.raises(
        ValueError, match=r"would change what model .* computes: layer 'odd' \(_ActivationFirst\) gives other outputs"
    ):
        keras_glr.convert(original)
    assert type(keras_glr.convert(original, verify=False).layers[1]) is Noisy  # the user may accept it knowingly
    assert all(np.array_equal(a, b) for a, b in zip(before, original.weights))  # the original is never modified


def test_a_functional_model_names_the_layer_that_differs_too():
    inputs = keras.Input((4,))
    h = _ActivationFirst(3, "relu", name="odd")(L.Dense(4, kernel_initializer="identity")(inputs))
    original = keras.Model(inputs, L.Add()([L.Dense(2)(h), L.Dense(2)(h)]))
    with pytest.raises(ValueError, match=r"layer 'odd' \(_ActivationFirst\) gives other outputs"):
        keras_glr.convert(original)


def test_ops_nodes_lambda_and_weightless_custom_layers_are_reused_as_they_are():
    inputs = keras.Input((6,))
    h = L.Dense(5)(inputs)
    h = h + L.Dense(5)(h)  # ops nodes of the functional graph
    h = keras.ops.mean(keras.ops.stack([h, h * 2.0]), axis=0)
    scale = L.Lambda(lambda t: t * 3.0)  # a Lambda cannot be re-created from its config in safe mode
    original = keras.Model(inputs, L.Dense(3)(scale(h)))
    converted = keras_glr.convert(original, noise=Gaussian(0.1))
    assert scale in converted.layers
    x, y = _data((6,))
    np.testing.assert_allclose(converted.predict(x, verbose=0), original.predict(x, verbose=0), atol=1e-6)
    converted.compile(keras.optimizers.Adam(0.01), _CE, copies=8)
    assert np.isfinite(converted.fit(x, y, epochs=1, verbose=0).history["loss"][0])


@keras.saving.register_keras_serializable(package="tests")
class _LayerScale(L.Layer):
    """A weight per channel and no compute_output_shape (as ConvNeXt's LayerScale)."""

    def build(self, shape):
        self.gamma = self.add_weight((shape[-1],), "ones")

    def call(self, x):
        return x * self.gamma


@keras.saving.register_keras_serializable(package="tests")
class _Block(L.Layer):
    """A custom block whose sublayers are built by its first call (no build of its own)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner, self.outer = L.Dense(4), L.Dense(4)

    def call(self, x):
        return x + self.outer(keras.ops.relu(self.inner(x)))


@pytest.mark.parametrize("custom", [_LayerScale, _Block], ids=["no_output_shape", "built_by_its_call"])
def test_custom_layers_convert_train_and_round_trip(custom, tmp_path):
    original = keras.Sequential([keras.Input((4,)), L.Dense(4), custom(), L.Dense(3)])
    for weight in original.weights:
        weight.assign(np.random.default_rng(1).uniform(-1, 1, weight.shape))
    x, y = _data((4,))
    converted = keras_glr.convert(original, noise=Gaussian(0.1))
    assert type(converted.layers[1]) is Noisy
    np.testing.assert_allclose(converted.predict(x, verbose=0), original.predict(x, verbose=0), atol=1e-6)
    converted.compile(keras.optimizers.Adam(0.01), _CE, copies=8)
    assert np.isfinite(converted.fit(x, y, epochs=1, verbose=0).history["loss"][0])
    converted.save(tmp_path / "converted.keras")
    np.testing.assert_allclose(
        keras.saving.load_model(tmp_path / "converted.keras").predict(x, verbose=0),
        converted.predict(x, verbose=0),
        atol=1e-6,
    )


# The noise of a converted network: each layer's scale from its own signal --------------------------------------


def test_by_default_each_layer_gets_noise_a_tenth_of_its_pre_activation_spread_on_the_calibration_batch():
    x, _ = _data((5,))
    original = keras.Sequential([keras.Input((5,)), L.Dense(8, activation="relu"), L.Dense(6), L.Dense(3)])
    original.layers[1].set_weights([w * 30.0 for w in original.layers[1].get_weights()])  # a layer 30 times louder
    converted = keras_glr.convert(original, calibration=x)
    linear = keras.Sequential([keras.Input((5,)), L.Dense(8), L.Dense(6), L.Dense(3)])
    linear.set_weights(original.get_weights())
    h = x
    for layer, made in zip(linear.layers, converted.layers):
        h = layer(h)
        assert made.noise.stddev == pytest.approx(0.1 * np.std(np.asarray(h, "float64")), rel=1e-5)
        h = keras.activations.relu(h) if layer is linear.layers[0] else h
    assert converted.layers[1].noise.stddev > 10 * converted.layers[0].noise.stddev
    half = keras_glr.convert(original, calibration=x, relative_noise=0.05)
    assert half.layers[2].noise.stddev == pytest.approx(0.5 * converted.layers[2].noise.stddev, rel=1e-5)
    fixed = keras_glr.convert(original, noise=Gaussian(0.3))  # a distribution given is every layer's
    assert [layer.noise.stddev for layer in fixed.layers] == [0.3] * 3


def test_the_calibrated_scales_are_saved_with_the_model(tmp_path):
    x, _ = _data((5,))
    converted = keras_glr.convert(_mlp(), calibration=x)
    converted.save(tmp_path / "calibrated.keras")
    loaded = keras.saving.load_model(tmp_path / "calibrated.keras")
    assert [l.noise.stddev for l in loaded.layers] == [l.noise.stddev for l in converted.layers]
    assert len({l.noise.stddev for l in loaded.layers}) == len(loaded.layers)


@pytest.mark.parametrize("fraction", [0, -0.1, "0.1", True])
def test_a_bad_relative_noise_is_refused(fraction):
    with pytest.raises(ValueError, match="relative_noise"):
        keras_glr.convert(_mlp(), relative_noise=fraction)


def _trains_every_weight_and_round_trips(original, converted, x, y, path):
    """Noise off equals `original`; one GLR epoch moves every weight; the `.keras` file predicts the same."""
    np.testing.assert_allclose(converted.predict(x, verbose=0), original.predict(x, verbose=0), atol=1e-6)
    converted.compile(keras.optimizers.Adam(0.01), _CE, copies=8)
    before = [v.numpy() for v in converted.trainable_variables]
    converted.fit(x, y, epochs=1, verbose=0)
    assert all(not np.allclose(a, v) for a, v in zip(before, converted.trainable_variables))
    converted.save(path)
    np.testing.assert_allclose(
        keras.saving.load_model(path).predict(x, verbose=0), converted.predict(x, verbose=0), atol=1e-6
    )


def test_a_transformer_of_built_in_layers_and_ops_converts_trains_and_round_trips(tmp_path):
    from keras import ops

    inputs = keras.Input((6, 8))
    h = L.LayerNormalization()(inputs)
    h = inputs + L.MultiHeadAttention(2, 4)(h, h, use_causal_mask=True)
    f = L.Dense(16, activation="gelu")(L.LayerNormalization()(h))
    h = h + L.Dense(8)(f)
    original = keras.Model(inputs, L.Dense(3)(ops.mean(h, axis=1)))
    x = np.random.default_rng(0).normal(size=(8, 6, 8)).astype("float32")
    converted = keras_glr.convert(original, calibration=x)
    assert type(converted.get_layer(original.layers[2].name).layer) is L.MultiHeadAttention
    _trains_every_weight_and_round_trips(original, converted, x, np.arange(8) % 3, tmp_path / "transformer.keras")


@pytest.mark.slow  # 20-50 s each
@pytest.mark.parametrize(
    "family, pixels, alive",
    [
        ("MobileNetV2", (-1, 1), False),  # with random weights its logits are constant (sd 1e-12): nothing to learn
        ("EfficientNetB0", (0, 255), False),  # (sd 1e-6) it and ConvNeXt rescale their inputs themselves
        ("ConvNeXtTiny", (0, 255), True),
        ("DenseNet121", (-2, 2), True),
    ],
)
def test_keras_applications_convert_equal_the_original_train_and_round_trip(family, pixels, alive, tmp_path):
    original = getattr(keras.applications, family)(
        weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None
    )
    x = np.random.default_rng(0).uniform(*pixels, (4, 32, 32, 3)).astype("float32")
    y = np.arange(4)
    logits = original.predict(x, verbose=0)
    assert (np.std(logits, axis=1).min() > 1e-4) == alive
    converted = keras_glr.convert(original, calibration=x, seed=0)
    np.testing.assert_allclose(converted.predict(x, verbose=0), logits, rtol=1e-4, atol=1e-4)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    converted.compile(keras.optimizers.SGD(0.0), loss, copies=4)
    clean = converted.evaluate(x, y, verbose=0)
    first_step = converted.fit(x, y, batch_size=4, epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(first_step) and first_step <= 3 * clean  # the default noise does not swamp the signal
    converted.compile(keras.optimizers.Adam(1e-3), loss, copies=4)
    before = [v.numpy() for v in converted.trainable_variables]
    converted.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert all(np.all(np.isfinite(v)) for v in converted.trainable_variables)
    if alive:
        moved = [not np.allclose(a, v) for a, v in zip(before, converted.trainable_variables)]
        assert np.mean(moved) > 0.9, f"{np.mean(moved):.2f} of the weights moved"
    converted.save(tmp_path / "converted.keras")
    loaded = keras.saving.load_model(tmp_path / "converted.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), converted.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@keras.saving.register_keras_serializable(package="tests")
class TokenAndPositionEmbedding(L.Layer):
    """keras.io's text-classification transformer, as its page writes it."""

    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.maxlen, self.vocab_size, self.embed_dim = maxlen, vocab_size, embed_dim
        self.token_emb = L.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = L.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        positions = keras.ops.arange(start=0, stop=keras.ops.shape(x)[-1], step=1)
        return self.token_emb(x) + self.pos_emb(positions)

    def get_config(self):
        return {
            **super().get_config(),
            "maxlen": self.maxlen,
            "vocab_size": self.vocab_size,
            "embed_dim": self.embed_dim,
        }


@keras.saving.register_keras_serializable(package="tests")
class TransformerBlock(L.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.ff_dim, self.rate = embed_dim, num_heads, ff_dim, rate
        self.att = L.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([L.Dense(ff_dim, activation="relu"), L.Dense(embed_dim)])
        self.layernorm1, self.layernorm2 = L.LayerNormalization(epsilon=1e-6), L.LayerNormalization(epsilon=1e-6)
        self.dropout1, self.dropout2 = L.Dropout(rate), L.Dropout(rate)

    def call(self, inputs, training=False):
        attention = self.dropout1(self.att(inputs, inputs), training=training)
        out1 = self.layernorm1(inputs + attention)
        return self.layernorm2(out1 + self.dropout2(self.ffn(out1), training=training))

    def get_config(self):
        config = {"embed_dim": self.embed_dim, "num_heads": self.num_heads, "ff_dim": self.ff_dim, "rate": self.rate}
        return {**super().get_config(), **config}


def test_the_keras_io_transformer_of_custom_layers_converts_block_by_block(tmp_path):
    inputs = L.Input(shape=(20,))
    h = TransformerBlock(8, 2, 16)(TokenAndPositionEmbedding(20, 50, 8)(inputs))
    h = L.Dropout(0.1)(L.GlobalAveragePooling1D()(h))
    original = keras.Model(inputs, L.Dense(2)(L.Dense(8, activation="relu")(h)))
    x = np.random.default_rng(0).integers(0, 50, (8, 20))
    converted = keras_glr.convert(original, calibration=x)
    blocks = [type(layer.layer).__name__ for layer in converted.layers if isinstance(layer, Noisy)]
    assert blocks == ["TokenAndPositionEmbedding", "TransformerBlock"]  # each a noisy block, backprop inside
    _trains_every_weight_and_round_trips(original, converted, x, np.arange(8) % 2, tmp_path / "keras_io.keras")


def test_a_model_with_two_outputs_converts_and_trains_on_weighted_losses(tmp_path):
    inputs = keras.Input((5,))
    hidden = L.Dense(8, activation="relu")(inputs)
    original = keras.Model(inputs, {"digit": L.Dense(3, name="digit")(hidden), "size": L.Dense(1, name="size")(hidden)})
    x, y = _data((5,))
    converted = keras_glr.convert(original, calibration=x)
    for name in ("digit", "size"):
        np.testing.assert_allclose(
            converted.predict(x, verbose=0)[name], original.predict(x, verbose=0)[name], atol=1e-6
        )
    converted.compile(keras.optimizers.Adam(0.01), {"digit": _CE, "size": "mse"}, loss_weights={"size": 0.1}, copies=8)
    history = converted.fit(x, {"digit": y, "size": y.astype("float32")}, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    converted.save(tmp_path / "two.keras")
    loaded = keras.saving.load_model(tmp_path / "two.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["size"], converted.predict(x, verbose=0)["size"], atol=1e-6)
