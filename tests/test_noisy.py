"""`Noisy`: any Keras layer or block as a noisy layer, through every mechanism of the step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_glr
from keras_glr._src import checkpoints
from keras_glr._src import copies
from keras_glr._src import fan_out
from keras_glr._src import streams
from keras_glr.layers import Noisy
from keras_glr.layers import NoisyDense

_CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
L = keras.layers


def _block(name="block"):
    inputs = keras.Input((6, 2))
    inner = L.Conv1D(2, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, L.Add()([inputs, inner]), name=name)


# name -> (input shape, input dtype, the layers before the logits)
KINDS = {
    "dense": ((6, 2), "float32", lambda: [L.Flatten(), Noisy(L.Dense(5), "tanh")]),
    "conv1d": ((6, 2), "float32", lambda: [Noisy(L.Conv1D(3, 3), "relu"), L.Flatten()]),
    "conv2d": ((6, 6, 1), "float32", lambda: [Noisy(L.Conv2D(2, 3), "relu"), L.Flatten()]),
    "conv3d": ((4, 4, 4, 1), "float32", lambda: [Noisy(L.Conv3D(2, 3), "relu"), L.Flatten()]),
    "depthwise_conv2d": ((6, 6, 2), "float32", lambda: [Noisy(L.DepthwiseConv2D(3), "relu"), L.Flatten()]),
    "separable_conv2d": ((6, 6, 2), "float32", lambda: [Noisy(L.SeparableConv2D(2, 3), "relu"), L.Flatten()]),
    "conv2d_transpose": ((4, 4, 1), "float32", lambda: [Noisy(L.Conv2DTranspose(2, 3), "relu"), L.Flatten()]),
    "embedding": ((5,), "int32", lambda: [Noisy(L.Embedding(7, 3), "tanh"), L.Flatten()]),
    "layer_normalization": ((6, 2), "float32", lambda: [L.Flatten(), Noisy(L.LayerNormalization(), "tanh")]),
    "group_normalization": ((6, 4), "float32", lambda: [Noisy(L.GroupNormalization(2), "tanh"), L.Flatten()]),
    "batch_normalization": ((6, 2), "float32", lambda: [L.Flatten(), Noisy(L.BatchNormalization(), "tanh")]),
    "composite_block": ((6, 2), "float32", lambda: [Noisy(_block(), "tanh"), L.Flatten()]),
}


# Every kind runs in the slow suite; these four, one of each sort, in the default one.
DEFAULT_KINDS = ("conv1d", "embedding", "batch_normalization", "composite_block")
ALL_KINDS = [k if k in DEFAULT_KINDS else pytest.param(k, marks=pytest.mark.slow) for k in KINDS]


def _data(kind, examples=5, seed=0):
    shape, dtype, _ = KINDS[kind]
    rng = np.random.default_rng(seed)
    x = (
        rng.integers(0, 7, (examples, *shape)).astype(dtype)
        if dtype == "int32"
        else rng.uniform(size=(examples, *shape)).astype(dtype)
    )
    return x, np.arange(examples) % 3


def _model(kind):
    shape, dtype, layers = KINDS[kind]
    return keras_glr.GLRSequential([keras.Input(shape, dtype=dtype), *layers(), NoisyDense(3, name="logits")], seed=0)


def _estimate(model, x, y, **options):
    """One estimate; the noise generators and a BatchNormalization's moving statistics are put back after it."""
    states = checkpoints.noise_states(model)
    statistics = [v.numpy() for v in model.non_trainable_variables]
    model.compile(keras.optimizers.SGD(0.1), _CE, **options)
    estimate = [np.asarray(g) for g in model.estimate_gradients(x, y)]
    checkpoints.restore_noise_states(model, states)
    for variable, value in zip(model.non_trainable_variables, statistics):
        variable.assign(value)
    return estimate


def _assert_same(a, b):
    assert any(np.any(g != 0) for g in a)
    for g, h in zip(a, b):
        np.testing.assert_allclose(g, h, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_fan_out_and_chunks_give_the_tiled_one_pass_estimate(kind, monkeypatch):
    model = _model(kind)
    x, y = _data(kind)
    fanned = _estimate(model, x, y, copies=6)
    monkeypatch.setattr(fan_out, "can_fan_out", lambda model: False)
    tiled = _estimate(model, x, y, copies=6)
    _assert_same(fanned, tiled)
    if kind == "batch_normalization":  # its statistics move after every chunk: refused, with what to do
        with pytest.raises(ValueError, match="copies_per_chunk=None"):
            _estimate(model, x, y, copies=6, copies_per_chunk=12)
        return
    _assert_same(_estimate(model, x, y, copies=6, copies_per_chunk=12), tiled)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_layerwise_fan_out_gives_the_tiled_estimate(kind, monkeypatch):
    model = _model(kind)
    x, y = _data(kind)
    assert fan_out.can_fan_out_by_layer(model)
    by_layer = _estimate(model, x, y, copies=8, injection="layerwise", antithetic=True)
    monkeypatch.setattr(fan_out, "can_fan_out_by_layer", lambda model: False)
    tiled = _estimate(model, x, y, copies=8, injection="layerwise", antithetic=True)
    _assert_same(by_layer, tiled)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_a_wrapped_model_trains_and_survives_a_keras_round_trip(kind, tmp_path):
    model = _model(kind)
    x, y = _data(kind, examples=8)
    model.compile(keras.optimizers.Adam(0.01), _CE, copies=4, metrics=["accuracy"])
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_no_gradient_crosses_from_one_noisy_block_into_another():
    first, second = Noisy(_block("first"), "tanh"), Noisy(_block("second"), "tanh")
    model = keras_glr.GLRSequential([keras.Input((6, 2)), first, second, L.Flatten(), NoisyDense(3)])
    x, _ = _data("composite_block")
    with tf.GradientTape(persistent=True) as tape:
        _, record = copies.forward(model, x, 2, key=streams.stream_key([1, 2]))
    into_second = record.entries[1].pre_activation
    assert all(g is None for g in tape.gradient(into_second, first.trainable_variables))
    assert all(g is not None for g in tape.gradient(into_second, second.trainable_variables))  # backprop inside a block


def test_batch_normalization_under_copies_uses_and_then_follows_the_batch_statistics():
    """Every row is normalised by the moving statistics from before the step; they then move to the rows' moments."""
    norm = L.BatchNormalization(momentum=0.9)
    model = keras_glr.GLRSequential([keras.Input((4,)), Noisy(norm, "tanh"), NoisyDense(3)], seed=0)
    model.compile(keras.optimizers.SGD(0.0), _CE, copies=4)
    x = np.random.default_rng(1).normal(2.0, 3.0, (8, 4)).astype("float32")
    model.fit(x, np.arange(8) % 3, batch_size=8, epochs=1, verbose=0)
    np.testing.assert_allclose(norm.moving_mean, 0.1 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm.moving_variance, 0.9 + 0.1 * x.var(0), rtol=1e-5)
    # Copies of one example never see the other examples: its rows are the same whatever else is in the batch.
    key, statistics = streams.stream_key([5, 6]), [norm.moving_mean.numpy(), norm.moving_variance.numpy()]
    rows = []
    for batch in (x[:3], np.concatenate([x[:1], -x[1:3]])):
        rows.append(np.asarray(copies.forward(model, batch, 4, key=key)[0])[:4])
        norm.moving_mean.assign(statistics[0])
        norm.moving_variance.assign(statistics[1])
    np.testing.assert_allclose(rows[0], rows[1], rtol=1e-6)


def test_after_training_inference_equals_a_plain_keras_model_with_the_same_weights_and_statistics():
    wrapped = keras_glr.GLRSequential(
        [keras.Input((4,)), Noisy(L.Dense(5)), Noisy(L.BatchNormalization(), "relu"), NoisyDense(3)], seed=0
    )
    wrapped.compile(keras.optimizers.Adam(0.05), _CE, copies=8)
    x = np.random.default_rng(2).normal(1.0, 2.0, (32, 4)).astype("float32")
    wrapped.fit(x, np.arange(32) % 3, batch_size=8, epochs=3, verbose=0)
    plain = keras.Sequential([keras.Input((4,)), L.Dense(5), L.BatchNormalization(), L.ReLU(), L.Dense(3)])
    plain.set_weights(wrapped.get_weights())
    assert not np.allclose(wrapped.layers[1].layer.moving_mean, 0.0)  # the statistics were trained
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), plain.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "layer, message",
    [
        (
            lambda: L.Dense(3, activation="relu"),
            "give the activation to Noisy: Noisy(Dense(..., activation=None), activation='relu')",
        ),
        (lambda: NoisyDense(3), "is noisy already"),
        (lambda: keras.Sequential([keras.Input((3,)), NoisyDense(3)]), "holds noisy layers"),
        (
            lambda: keras.Sequential([keras.Input((3,)), L.Dense(3), L.BatchNormalization()]),
            "Wrap the normalization on its own",
        ),
        (lambda: L.BatchNormalization(renorm=True), "renorm=False"),
        (lambda: "dense", "wraps a Keras layer or model; received str"),
    ],
    ids=["own_activation", "noisy_layer", "block_of_noisy_layers", "block_with_batch_norm", "renorm", "not_a_layer"],
)
def test_layers_that_cannot_be_wrapped_are_refused_with_what_to_do(layer, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        Noisy(layer())


def test_an_unwrapped_trainable_layer_is_refused_with_the_wrapper_named():
    model = keras_glr.GLRSequential([keras.Input((4,)), Noisy(L.Dense(4)), L.LayerNormalization(), NoisyDense(3)])
    with pytest.raises(ValueError, match=r"Use keras_glr\.layers\.Noisy\(LayerNormalization\(\.\.\.\)\) instead"):
        model.compile("sgd", _CE)


def test_default_names_never_clash_with_noisy_dense():
    model = keras_glr.GLRSequential([keras.Input((4,)), Noisy(L.Dense(4), "tanh"), NoisyDense(4), Noisy(L.Dense(3))])
    names = [layer.name for layer in model.layers]
    assert len(set(names)) == len(names)


# Layers called with several tensors: attention, a list, keywords ------------------------------------------------


@keras.saving.register_keras_serializable(package="tests")
class Gate(L.Layer):
    """A layer of the user's with two tensor arguments and a weight: x * sigmoid(g w)."""

    def build(self, x_shape, g_shape):
        self.w = self.add_weight(shape=(g_shape[-1], x_shape[-1]), initializer="glorot_uniform")

    def call(self, x, g):
        return x * keras.ops.sigmoid(keras.ops.matmul(g, self.w))


def _attention_model(wrap, causal=False):
    """A transformer block's attention over (5, 4) sequences, masked by a second input; `wrap` makes layers noisy."""
    tokens, keep = keras.Input((5, 4), name="tokens"), keras.Input((5, 5), dtype="bool", name="keep")
    attention = L.MultiHeadAttention(2, 3, name="attention")
    h = wrap(attention)(tokens, tokens, attention_mask=keep, use_causal_mask=causal)
    h = wrap(L.Attention(name="dot_attention"))([h, tokens])
    h = wrap(Gate(name="gate"))(h, tokens)
    h = L.Add()([tokens, h])
    logits = wrap(L.Dense(3, name="logits"))(L.GlobalAveragePooling1D()(h))
    return (keras_glr.GLRModel if wrap is not _plain else keras.Model)([tokens, keep], logits)


def _plain(layer):
    return layer


def _attention_data(examples=6, seed=0):
    rng = np.random.default_rng(seed)
    keep = np.tril(np.ones((5, 5), bool)) | (rng.uniform(size=(examples, 5, 5)) < 0.5)
    return [rng.normal(size=(examples, 5, 4)).astype("float32"), keep], np.arange(examples) % 3


def test_a_layer_called_with_several_tensors_computes_what_it_computes_unwrapped():
    wrapped, plain = _attention_model(lambda layer: Noisy(layer, seed=0)), _attention_model(_plain)
    assert len(wrapped.trainable_variables) == len(plain.trainable_variables) == 11
    plain.set_weights(wrapped.get_weights())
    x, _ = _attention_data()
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), plain.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    x[1][:, :, 3] = False  # the mask reaches the attention
    assert not np.allclose(wrapped.predict(x, verbose=0), plain.predict(_attention_data()[0], verbose=0))
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), plain.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_several_tensors_fan_out_by_example_and_by_layer_as_the_tiled_pass(monkeypatch):
    model = _attention_model(lambda layer: Noisy(layer, "tanh", seed=0))
    x, y = _attention_data()
    fanned = _estimate(model, x, y, copies=8)
    by_layer = _estimate(model, x, y, copies=8, injection="layerwise", antithetic=True)
    monkeypatch.setattr(fan_out, "can_fan_out", lambda model: False)
    monkeypatch.setattr(fan_out, "can_fan_out_by_layer", lambda model: False)
    _assert_same(fanned, _estimate(model, x, y, copies=8))
    _assert_same(by_layer, _estimate(model, x, y, copies=8, injection="layerwise", antithetic=True))
    _assert_same(fanned, _estimate(model, x, y, copies=8, copies_per_chunk=16))


def test_several_tensors_train_and_survive_a_keras_round_trip(tmp_path):
    model = _attention_model(lambda layer: Noisy(layer, "tanh", seed=0))
    x, y = _attention_data(examples=8)
    before = [v.numpy() for v in model.trainable_variables]
    model.compile(keras.optimizers.Adam(0.01), _CE, copies=4)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert all(not np.allclose(a, v) for a, v in zip(before, model.trainable_variables))  # every weight moved
    model.save(tmp_path / "attention.keras")
    loaded = keras.saving.load_model(tmp_path / "attention.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_the_padding_mask_of_an_embedding_survives_the_cut_at_a_noisy_layer():
    """Under a GLR record a noisy layer's inputs are cut from the gradient; the attention still sees their mask."""
    from keras_glr._src import recording

    ids = keras.Input((5,), dtype="int32")
    h = L.Embedding(7, 4, mask_zero=True)(ids)
    h = Noisy(L.MultiHeadAttention(2, 2), seed=0)(h, h)
    model = keras_glr.GLRModel(ids, NoisyDense(3)(L.Flatten()(h)))
    x = np.array([[3, 1, 0, 0, 0], [2, 5, 6, 0, 0]], "int32")
    with recording.recording(copies=1, noise=False):
        cut = model(x)
    np.testing.assert_allclose(cut, model(x), rtol=1e-6)


def test_a_layer_with_several_outputs_is_refused_with_what_to_do():
    tokens = keras.Input((5, 4))
    with pytest.raises(ValueError, match="returned 2.*return_attention_scores=False"):
        Noisy(L.MultiHeadAttention(2, 3))(tokens, tokens, return_attention_scores=True)
