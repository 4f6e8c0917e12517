"""GLR through `keras.layers.RNN`: noisy cells in the while-loop and unrolled forms, and Keras's recurrence options."""

import keras
import numpy as np
import pytest

import keras_glr
from keras_glr._src import recording
from keras_glr._src import streams
from keras_glr.layers import LIFCell
from keras_glr.layers import NoisyDense
from keras_glr.layers import NoisyGRUCell
from keras_glr.layers import NoisyLSTMCell
from keras_glr.layers import NoisySimpleRNNCell

_CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
STEPS, FEATURES = 5, 3
CELLS = {
    "simple_rnn": lambda: NoisySimpleRNNCell(4),
    "simple_rnn_step": lambda: NoisySimpleRNNCell(4, activation="step"),
    "lstm": lambda: NoisyLSTMCell(4),
    "gru": lambda: NoisyGRUCell(4),
    "lif": lambda: LIFCell(4, bias_initializer=keras.initializers.Constant(0.5)),
}


def _data(seed=0, batch=8):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(batch, STEPS, FEATURES)).astype("float32"), (np.arange(batch) % 3).astype("int32")


def _model(make_cell, unroll=False, copies=4, **rnn_options):
    keras.utils.set_random_seed(0)
    model = keras_glr.GLRSequential(
        [keras.Input((STEPS, FEATURES)), keras.layers.RNN(make_cell(), unroll=unroll, **rnn_options), NoisyDense(3)],
        seed=1,
    )
    model.compile("adam", _CE, copies=copies)
    return model


def _estimate(model, x, y):
    return [np.asarray(g) for g in model.estimate_gradients(x, y)]


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_the_while_loop_and_unrolled_forms_give_the_same_estimate_for_the_same_key(cell):
    x, y = _data()
    looped, unrolled = (_model(CELLS[cell], unroll=u) for u in (False, True))
    for a, b in zip(_estimate(looped, x, y), _estimate(unrolled, x, y)):
        np.testing.assert_array_equal(a, b)
    assert any(np.any(g != 0) for g in _estimate(looped, x, y)[:-2])  # the cell gets an estimate
    assert not looped.layers[0].unroll  # the layer keeps its own form outside the step


def test_every_step_draws_its_own_stream():
    model = _model(CELLS["simple_rnn"])
    x, _ = _data()
    with recording.recording(
        copies=1, key=streams.stream_key([1, 2]), slots=keras_glr.layers.noisy_layers(model)
    ) as record:
        from keras_glr._src import recurrence

        with recurrence.unrolled(model):
            model(x, training=True)
    assert len(record.entries) == STEPS + 1 and len({e.stream for e in record.entries}) == STEPS + 1
    noise = [np.asarray(e.noise) for e in record.entries[:STEPS]]
    assert all(not np.allclose(noise[0], n) for n in noise[1:])


@pytest.mark.parametrize(
    "options",
    [dict(return_sequences=True), dict(go_backwards=True), dict(return_sequences=True, go_backwards=True)],
    ids=["return_sequences", "go_backwards", "both"],
)
def test_keras_recurrence_options_train_by_glr(options):
    x, y = _data()
    layers = [keras.Input((STEPS, FEATURES)), keras.layers.RNN(NoisySimpleRNNCell(4), **options)]
    if options.get("return_sequences"):
        layers.append(keras.layers.GlobalAveragePooling1D())
    model = keras_glr.GLRSequential(layers + [NoisyDense(3)], seed=0)
    model.compile("adam", _CE, copies=4)
    before = [np.asarray(w) for w in model.get_weights()]
    assert np.isfinite(model.fit(x, y, epochs=2, verbose=0).history["loss"][-1])
    assert all(np.any(a != b) for a, b in zip(before, model.get_weights()))


def test_stacked_bidirectional_and_masked_recurrences_train_by_glr():
    x, y = _data()
    x[:3, -2:] = 0.0  # padding, skipped by the mask
    inputs = keras.Input((STEPS, FEATURES))
    h = keras.layers.Masking(0.0)(inputs)
    h = keras.layers.Bidirectional(keras.layers.RNN(NoisySimpleRNNCell(4), return_sequences=True))(h)
    h = keras.layers.RNN(NoisyLSTMCell(4))(h)
    model = keras_glr.GLRModel(inputs, NoisyDense(3)(h), seed=0)
    model.compile("adam", _CE, copies=4)
    assert len(keras_glr.layers.noisy_layers(model)) == 4
    gradients = model.estimate_gradients(x, y)
    assert all(np.any(np.asarray(g) != 0) for g in gradients)
    assert np.isfinite(model.fit(x, y, epochs=1, verbose=0).history["loss"][0])


def test_chunked_passes_give_the_estimate_of_one_pass():
    x, y = _data()
    whole = _model(CELLS["simple_rnn"], copies=4)
    chunked = _model(CELLS["simple_rnn"], copies=4)
    chunked.compile("adam", _CE, copies=4, copies_per_chunk=12)
    for a, b in zip(_estimate(whole, x, y), _estimate(chunked, x, y)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_layerwise_injection_gives_the_cell_its_own_copies():
    x, y = _data()
    model = _model(CELLS["simple_rnn"], copies=8)
    model.compile("adam", _CE, copies=8, injection="layerwise", antithetic=True)
    assert all(np.any(g != 0) for g in _estimate(model, x, y))


def test_sequences_of_unknown_length_are_a_clear_error():
    import tensorflow as tf

    model = keras_glr.GLRSequential(
        [keras.Input((None, FEATURES)), keras.layers.RNN(NoisySimpleRNNCell(4)), NoisyDense(3)]
    )
    model.compile("adam", _CE, copies=4)
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)  # arrays of one length: the step is traced with it

    def sequences():  # of two lengths, padded per batch: unknown when the step is traced
        for i in range(8):
            yield x[i, : STEPS - i % 2], y[i]

    signature = (tf.TensorSpec((None, FEATURES), tf.float32), tf.TensorSpec((), tf.int32))
    padded = tf.data.Dataset.from_generator(sequences, output_signature=signature).padded_batch(4)
    with pytest.raises(
        ValueError, match=r"unrolled \(rnn.*\).*number of time steps.*keras\.Input\(\(time_steps, features\)\)"
    ):
        model.fit(padded, epochs=1, verbose=0)


@pytest.mark.parametrize("estimator", ["bp", "bp-noise"])
def test_the_backprop_twins_run_through_the_loop(estimator):
    x, y = _data()
    model = _model(CELLS["simple_rnn"])
    model.compile("adam", _CE, copies=4, estimator=estimator)
    assert all(np.any(g != 0) for g in _estimate(model, x, y))


@pytest.mark.parametrize(
    "keras_layer, cell",
    [
        (lambda: keras.layers.SimpleRNN(4, return_sequences=True), NoisySimpleRNNCell),
        (lambda: keras.layers.LSTM(4, return_sequences=True, bias_initializer="random_normal"), NoisyLSTMCell),
        (lambda: keras.layers.GRU(4, return_sequences=True, bias_initializer="random_normal"), NoisyGRUCell),
    ],
    ids=["simple_rnn", "lstm", "gru"],
)
def test_a_cell_holds_the_weights_of_keras_and_computes_its_function(keras_layer, cell):
    x, _ = _data()
    reference = keras_layer()
    expected = np.asarray(reference(x))
    noisy = keras.layers.RNN(cell(4), return_sequences=True)
    noisy.build(x.shape)
    assert [w.shape for w in noisy.get_weights()] == [w.shape for w in reference.get_weights()]
    noisy.set_weights(reference.get_weights())
    np.testing.assert_allclose(np.asarray(noisy(x)), expected, atol=1e-6)


def test_an_lstm_cell_starts_its_forget_gate_bias_at_one_as_keras():
    noisy = keras.layers.RNN(NoisyLSTMCell(4), return_sequences=True)
    noisy.build((None, STEPS, FEATURES))
    np.testing.assert_array_equal(noisy.get_weights()[2][4:8], np.ones(4))  # unit_forget_bias, as Keras


def test_a_gru_step_makes_two_noisy_calls_with_their_own_streams():
    model = _model(CELLS["gru"])
    x, _ = _data()
    from keras_glr._src import recurrence

    with recording.recording(
        copies=1, key=streams.stream_key([1, 2]), slots=keras_glr.layers.noisy_layers(model)
    ) as record:
        with recurrence.unrolled(model):
            model(x, training=True)
    widths = [e.pre_activation.shape[-1] for e in record.entries]
    assert widths == [8, 4] * STEPS + [3] and len({e.stream for e in record.entries}) == 2 * STEPS + 1


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_trained_recurrent_model_survives_a_keras_round_trip(cell, tmp_path):
    x, y = _data()
    model = _model(CELLS[cell])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "rnn.keras")
    loaded = keras.saving.load_model(tmp_path / "rnn.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert type(loaded.layers[0].cell) is type(model.layers[0].cell)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: NoisySimpleRNNCell(0), "`units`"),
        (lambda: NoisyLSTMCell(2.5), "`units`"),
        (lambda: NoisyGRUCell(-1), "`units`"),
        (lambda: LIFCell(4, refractory="yes"), "`refractory`"),
    ],
)
def test_bad_cell_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()
