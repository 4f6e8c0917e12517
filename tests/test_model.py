"""GLRModel as a Keras model: fit, evaluate, save/load, estimators, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_glr
from keras_glr._src import checkpoints
from keras_glr.layers import NoisyConv2D
from keras_glr.layers import NoisyDense
from keras_glr.noise import Laplace

SPARSE_CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _data(n=64, dim=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, dim)).astype("float32")
    y = (x[:, :classes].argmax(axis=1)).astype("int32")
    return x, y


def _sequential(activation="step", dim=6, classes=3):
    return keras_glr.GLRSequential(
        [keras.Input((dim,)), NoisyDense(8, activation, noise=Laplace(1.0)), NoisyDense(classes)]
    )


def _functional(activation="sigmoid", dim=6, classes=3):
    inputs = keras.Input((dim,))
    hidden = NoisyDense(8, activation)(inputs)
    return keras_glr.GLRModel(inputs, NoisyDense(classes)(hidden))


@pytest.mark.parametrize("build", [_sequential, _functional], ids=["sequential", "functional"])
@pytest.mark.parametrize("loss", ["zero_one", SPARSE_CE], ids=["zero_one", "cross_entropy"])
def test_fit_behaves_like_keras(build, loss, tmp_path):
    model = build()
    model.compile(keras.optimizers.SGD(0.1), loss, metrics=["accuracy"], copies=4)
    x, y = _data()
    log = tmp_path / "log.csv"
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        validation_data=_data(seed=1),
        callbacks=[keras.callbacks.CSVLogger(str(log))],
        verbose=0,
    )
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 2 and log.read_text().count("\n") == 3
    assert all(np.isfinite(v) for v in history.history["loss"])


class _RowsSeen(keras.metrics.Metric):
    """Counts the rows of the predictions it is given."""

    def __init__(self, name="rows_seen"):
        super().__init__(name=name)
        self.rows = self.add_variable(shape=(), initializer="zeros", name="rows")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.rows.assign_add(tf.cast(tf.shape(y_pred)[0], "float32"))

    def result(self):
        return self.rows


@pytest.mark.parametrize("estimator, chunk", [("glr", None), ("glr", 12), ("bp-noise", None)])
def test_training_metrics_see_one_copy_per_example(estimator, chunk):
    model = _functional("sigmoid")
    model.compile("sgd", SPARSE_CE, metrics=[_RowsSeen()], copies=4, estimator=estimator, copies_per_chunk=chunk)
    x, y = _data(n=24)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert history.history["rows_seen"] == [24.0]


def test_training_accuracy_pairs_each_label_with_its_example():
    # Negligible noise and no update: every copy predicts as the noiseless network.
    inputs = keras.Input((6,))
    hidden = NoisyDense(8, "sigmoid", noise=keras_glr.noise.Gaussian(1e-6))(inputs)
    model = keras_glr.GLRModel(inputs, NoisyDense(3, noise=keras_glr.noise.Gaussian(1e-6))(hidden))
    model.compile(keras.optimizers.SGD(0.0), SPARSE_CE, metrics=["accuracy"], copies=4)
    x, y = _data(n=64)
    expected = model.evaluate(x, y, verbose=0)[1]
    assert 0.2 < expected < 0.8  # some right, some wrong: a misaligned label would show
    history = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert history.history["accuracy"][0] == pytest.approx(expected)


def _count_traces(model, step):
    """Wraps model.<step> (before fit makes its function) to count its traces."""
    traces = []
    original = getattr(model, step)

    def counted(data):
        traces.append(1)
        return original(data)

    setattr(model, step, counted)
    return traces


@pytest.mark.parametrize("estimator", ["glr", "bp"])
@pytest.mark.parametrize("inputs", ["arrays", "dataset", "dataset with weights"])
def test_first_fit_and_evaluate_trace_their_step_once(estimator, inputs):
    # Adam's slots and the metrics' variables exist before the first trace,
    # so tf.function does not trace the step again after creating them.
    model = _functional("sigmoid")
    options = {"copies": 4} if estimator == "glr" else {"copies": 1, "baseline": "none", "estimator": "bp"}
    model.compile(keras.optimizers.Adam(0.01), SPARSE_CE, metrics=["accuracy"], **options)
    x, y = _data(n=32)
    if inputs == "arrays":
        data = {"x": x, "y": y, "batch_size": 8}
    elif inputs == "dataset":
        data = {"x": tf.data.Dataset.from_tensor_slices((x, y)).batch(8)}
    else:
        data = {"x": tf.data.Dataset.from_tensor_slices((x, y, np.ones(32, "float32"))).batch(8)}
    train_traces, test_traces = _count_traces(model, "train_step"), _count_traces(model, "test_step")
    before = model.evaluate(**data, verbose=0)
    model.fit(**data, epochs=2, shuffle=False, verbose=0)
    assert (len(train_traces), len(test_traces)) == (1, 1)
    assert model.optimizer.iterations.numpy() == 8
    assert np.isfinite(before).all() and model.evaluate(**data, verbose=0)[1] >= 0


def test_fit_moves_every_weight_and_predict_is_deterministic():
    model = _sequential()
    model.compile(keras.optimizers.SGD(0.5), "zero_one", copies=8)
    before = [np.array(v) for v in model.trainable_variables]
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert all(not np.array_equal(b, np.array(v)) for b, v in zip(before, model.trainable_variables))
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_tf_data_and_sample_weights():
    model = _functional()
    model.compile("adam", SPARSE_CE, copies=4)
    x, y = _data()
    weights = np.linspace(0.5, 1.5, len(x)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(16)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_sample_weight_scales_the_estimate():
    model = _functional()
    model.compile("sgd", SPARSE_CE, copies=4, baseline="none")
    x, y = _data(n=4)
    states = checkpoints.noise_states(model)
    estimates = []
    for weight in (1.0, 3.0):
        checkpoints.restore_noise_states(model, states)
        estimates.append(model.estimate_gradients(x, y, sample_weight=np.full(4, weight, "float32")))
    for one, three in zip(*estimates):
        np.testing.assert_allclose(three, 3 * np.asarray(one), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("build", [_sequential, _functional], ids=["sequential", "functional"])
def test_save_load_predicts_the_same_and_keeps_training(build, tmp_path):
    model = build()
    model.compile(
        keras.optimizers.Adam(0.01), "zero_one", metrics=["accuracy"], copies=6, antithetic=True, baseline="loo"
    )
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.glr_config == model.glr_config
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.iterations.numpy() == model.optimizer.iterations.numpy()
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert loaded.optimizer.iterations.numpy() == model.optimizer.iterations.numpy() + 4
    assert not np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_noisy_inference_survives_save_and_load(tmp_path):
    model = keras_glr.GLRSequential([keras.Input((3,)), NoisyDense(2, noisy_inference=True)])
    model.compile("sgd", "mse", copies=2)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = np.ones((1, 3), "float32")
    assert not np.array_equal(loaded.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_conv_network_trains():
    noise = keras_glr.noise.Gaussian(0.5)
    model = keras_glr.GLRSequential(
        [
            keras.Input((8, 8, 1)),
            NoisyConv2D(4, 3, activation="sigmoid", noise=noise),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            NoisyDense(2, noise=noise),
        ]
    )
    model.compile(keras.optimizers.Adam(0.05), SPARSE_CE, metrics=["accuracy"], copies=32)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(128, 8, 8, 1)).astype("float32") * 0.2
    y = rng.integers(0, 2, 128)
    x[y == 1, 2:6, 2:6] += 0.8  # class 1: a bright square
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] > 0.95


@pytest.mark.parametrize("estimator", ["bp", "bp-noise"])
def test_backprop_estimators_train_smooth_networks(estimator):
    model = _functional("sigmoid")
    model.compile(keras.optimizers.Adam(0.05), SPARSE_CE, metrics=["accuracy"], copies=4, estimator=estimator)
    x, y = _data(n=256)
    start = model.evaluate(x, y, verbose=0)[0]
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0)[0] < start - 0.1


def test_bp_estimator_matches_autodiff_of_the_noiseless_network():
    model = _functional("sigmoid")
    model.compile("sgd", SPARSE_CE, copies=4, estimator="bp")
    x, y = _data(n=5)
    with tf.GradientTape() as tape:
        loss = SPARSE_CE(y, model(x))
    expected = tape.gradient(loss, model.trainable_variables)
    for got, want in zip(model.estimate_gradients(x, y), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_bp_on_a_step_network_says_to_use_glr():
    model = _sequential("step")
    model.compile("sgd", SPARSE_CE, copies=2, estimator="bp")
    with pytest.raises(ValueError, match="not differentiable.*estimator='glr'"):
        model.estimate_gradients(*_data(n=4))


def test_weight_regularizer_gradient_is_added_exactly():
    model = keras_glr.GLRSequential(
        [keras.Input((3,)), NoisyDense(2, kernel_regularizer=keras.regularizers.L2(0.5), bias_initializer="ones")]
    )
    model.compile("sgd", SPARSE_CE, copies=2, baseline="none")
    plain = model.estimate_gradients(np.zeros((2, 3), "float32"), np.array([0, 1]))
    kernel = np.asarray(model.trainable_variables[0])
    # Zero inputs: the loss term for the kernel is x^T(...) = 0, only 2 * 0.5 * W remains.
    np.testing.assert_allclose(plain[0], kernel, rtol=1e-5)


# Bad input ----------------------------------------------------------------------


def _compiled(**options):
    model = _sequential()
    model.compile("sgd", SPARSE_CE, copies=4, **options)
    return model


def test_labels_out_of_range():
    x, y = _data()
    y[3] = 7
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\).*between 0 and 7"):
        _compiled().fit(x, y, verbose=0)


def test_labels_out_of_range_in_a_dataset():
    x, y = _data()
    y[3] = -1
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\)"):
        _compiled().fit(dataset, verbose=0)


def test_wrong_input_width():
    x, y = _data(dim=5)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, 6\); received inputs of shape \(64, 5\)"):
        _compiled().fit(x, y, verbose=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_inputs(bad):
    x, y = _data()
    x[5, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        _compiled().fit(x, y, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    with pytest.raises(ValueError, match="NaN or infinite"):
        _compiled().fit(dataset, verbose=0)


def test_labels_that_do_not_fit_the_output():
    x, _ = _data()
    with pytest.raises(ValueError, match="do not fit the model's output shape"):
        _compiled().fit(x, np.zeros((64, 5), "float32"), verbose=0)


def test_copies_below_two_with_leave_one_out():
    with pytest.raises(ValueError, match="leave-one-out baseline needs at least two copies"):
        _compiled(baseline="loo").compile("sgd", SPARSE_CE, copies=1)
    with pytest.raises(ValueError, match="at least two copies"):
        _compiled().estimate_gradients(*_data(n=2), copies=1)


def test_antithetic_with_odd_copies():
    with pytest.raises(ValueError, match="`copies` must be even. Received: copies=5"):
        _sequential().compile("sgd", SPARSE_CE, copies=5, antithetic=True)


@pytest.mark.parametrize("where", ["compile", "fit"])
def test_trainable_layer_without_noise(where):
    inputs = keras.Input((6,))
    if where == "compile":
        model = keras_glr.GLRModel(inputs, keras.layers.Dense(3, name="plain")(NoisyDense(4)(inputs)))
        with pytest.raises(ValueError, match=r"Layer 'plain' \(Dense\).*Use keras_glr.layers.NoisyDense"):
            model.compile("sgd", SPARSE_CE, copies=2)
    else:
        model = keras_glr.GLRSequential([NoisyDense(4), keras.layers.Dense(3, name="plain")])
        model.compile("sgd", SPARSE_CE, copies=2)
        with pytest.raises(ValueError, match=r"Layer 'plain' \(Dense\).*no neuronal noise"):
            model.fit(*_data(), verbose=0)


def test_weightless_and_frozen_layers_are_fine():
    frozen = keras.layers.Dense(6, trainable=False)
    model = keras_glr.GLRSequential([keras.Input((6,)), frozen, keras.layers.Dropout(0.1), NoisyDense(3)])
    model.compile("sgd", SPARSE_CE, copies=2)
    before_frozen = [np.array(w) for w in frozen.get_weights()]
    before_trained = [np.array(w) for w in model.layers[-1].get_weights()]
    model.fit(*_data(), verbose=0)
    for a, b in zip(before_frozen, frozen.get_weights()):
        np.testing.assert_array_equal(a, b)  # frozen weights stay as they were
    assert all(np.any(a != b) for a, b in zip(before_trained, model.layers[-1].get_weights()))  # the noisy layer trains


def test_fit_before_compile():
    with pytest.raises(RuntimeError, match="must be compiled"):
        _sequential().fit(*_data(), verbose=0)


def test_a_loss_that_reduces_the_batch_is_refused():
    model = _sequential()
    model.compile("sgd", lambda y, p: tf.reduce_mean(p), copies=2)
    with pytest.raises(ValueError, match="one loss value per example"):
        model.fit(*_data(), verbose=0)


def test_compile_takes_arguments_in_keras_order():
    model = _sequential()
    with pytest.raises(ValueError, match="Pass metrics by keyword"):
        model.compile("sgd", SPARSE_CE, ["accuracy"], copies=2)
    model.compile("sgd", SPARSE_CE, None, ["accuracy"], copies=2)
    history = model.fit(*_data(), verbose=0)
    assert "accuracy" in history.history


# Constructor keywords, the model's seed, noisy prediction on its own streams ------


def test_glr_options_in_the_constructor_are_refused_with_the_fix():
    inputs = keras.Input((6,))
    outputs = NoisyDense(3)(inputs)
    with pytest.raises(
        ValueError, match=r"\['copies'\].*belong to `compile`.*model.compile\(optimizer, loss, copies=1000\)"
    ):
        keras_glr.GLRModel(inputs, outputs, copies=1000)
    with pytest.raises(ValueError, match=r"Unrecognized keyword arguments passed to GLRModel: \{'banana': 3\}"):
        keras_glr.GLRModel(inputs, outputs, banana=3)
    with pytest.raises(ValueError, match=r"baseline"):
        keras_glr.GLRSequential([keras.Input((6,)), NoisyDense(3)], baseline="none")
    with pytest.raises(ValueError, match=r"Received: seed='1'"):
        keras_glr.GLRModel(inputs, outputs, seed="1")


@pytest.mark.parametrize("build", [_sequential, _functional], ids=["sequential", "functional"])
def test_the_seed_survives_save_and_load(build, tmp_path):
    model = build()
    seeded = type(model).from_config(model.get_config() | {"seed": 7})
    seeded.compile("sgd", "zero_one", copies=2)
    seeded.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.seed == 7
    np.testing.assert_array_equal(
        np.asarray(loaded.training_noise.state), np.asarray(keras.random.SeedGenerator(7).state)
    )


class _NoisyPredictionEachBatch(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        self.model.noisy_forward(np.ones((4, 6), "float32"), 3)
        self.model.predict(np.ones((4, 6), "float32"), verbose=0)


@pytest.mark.parametrize("noisy_inference", [False, True])
def test_noisy_prediction_during_training_does_not_change_training(noisy_inference):
    def train(callbacks):
        keras.utils.set_random_seed(5)
        inputs = keras.Input((6,))
        hidden = NoisyDense(8, "sigmoid", noisy_inference=noisy_inference)(inputs)
        model = keras_glr.GLRModel(inputs, NoisyDense(3)(hidden))
        model.compile(keras.optimizers.SGD(0.5), SPARSE_CE, copies=4)
        x, y = _data(n=32)
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, callbacks=callbacks, validation_data=(x, y), verbose=0)
        return model.get_weights()

    plain = train([])
    with_prediction = train([_NoisyPredictionEachBatch()])
    for a, b in zip(plain, with_prediction):
        np.testing.assert_array_equal(a, b)


def _two_outputs():
    """A digit head (3 classes, logits) and a parity head (1 logit) on one noisy hidden layer."""
    inputs = keras.Input((4,))
    hidden = NoisyDense(8, "tanh", name="hidden")(inputs)
    outputs = [NoisyDense(3, name="digit")(hidden), NoisyDense(1, name="parity")(hidden)]
    return keras_glr.GLRModel(inputs, outputs, seed=0)


_TWO_LOSSES = {
    "digit": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    "parity": keras.losses.BinaryCrossentropy(from_logits=True),
}


def _two_data(examples=16):
    x = np.random.default_rng(0).normal(size=(examples, 4)).astype("float32")
    y = np.arange(examples) % 3
    return x, {"digit": y, "parity": (y % 2).astype("float32")}


def test_several_outputs_train_on_the_weighted_sum_of_their_losses_and_round_trip(tmp_path):
    model = _two_outputs()
    model.compile(
        keras.optimizers.Adam(0.01),
        _TWO_LOSSES,
        loss_weights={"digit": 1.0, "parity": 0.5},
        metrics={"digit": ["accuracy"]},
        copies=8,
    )
    x, y = _two_data()
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0).history
    assert set(history) == {"loss", "digit_loss", "parity_loss", "digit_accuracy"}
    assert all(np.all(np.isfinite(values)) for values in history.values())
    # each output's loss is on the first noisy copies; the total is the mean over all copies, weighted
    assert history["loss"][-1] == pytest.approx(history["digit_loss"][-1] + 0.5 * history["parity_loss"][-1], rel=0.3)
    scores = model.evaluate(x, [y["digit"], y["parity"]], verbose=0, return_dict=True)  # a list in output order too
    assert scores["loss"] == pytest.approx(scores["digit_loss"] + 0.5 * scores["parity_loss"], rel=1e-4)
    model.save(tmp_path / "two.keras")
    loaded = keras.saving.load_model(tmp_path / "two.keras")
    for a, b in zip(loaded.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert loaded.glr_loss_weights == {"digit": 1.0, "parity": 0.5}
    assert np.isfinite(loaded.fit(x, y, batch_size=8, epochs=1, verbose=0).history["loss"][0])


def test_the_estimate_of_several_outputs_is_the_weighted_sum_of_each_outputs_estimate():
    """The estimate is linear in the copies' losses: with common noise, weights (1, 0.5) give e_digit + 0.5 e_parity."""
    model = _two_outputs()
    x, y = _two_data(6)

    def estimate(loss, loss_weights=None):
        model.compile("sgd", loss, loss_weights=loss_weights, copies=8)
        model.training_noise.state.assign([0, 0])  # the same noise for every estimate
        return [np.asarray(g) for g in model.estimate_gradients(x, y)]

    both = estimate(_TWO_LOSSES, [1.0, 0.5])
    digit = estimate({"digit": _TWO_LOSSES["digit"]})
    parity = estimate({"parity": _TWO_LOSSES["parity"]})
    for g, a, b in zip(both, digit, parity):
        np.testing.assert_allclose(g, a + 0.5 * b, rtol=1e-4, atol=1e-6)
    assert all(np.any(g != 0) for g in digit + parity)


@pytest.mark.parametrize(
    "loss, loss_weights, message",
    [
        (
            ["sparse_categorical_crossentropy"],
            None,
            r"a list of 1 for a model with 2 output\(s\) \['digit', 'parity'\]",
        ),
        ({"digits": "mse"}, None, r"it names \['digits'\], which are not outputs of this model"),
        ([None, None], None, "no output of"),
        ("mse", {"parity": "half"}, "each weight must be a number"),
    ],
    ids=["list_too_short", "unknown_name", "no_loss", "bad_weight"],
)
def test_losses_that_do_not_fit_the_outputs_are_refused_before_anything_changes(loss, loss_weights, message, tmp_path):
    model = _two_outputs()
    with pytest.raises(ValueError, match=message):
        model.compile("sgd", loss, loss_weights=loss_weights, copies=4)
    assert not model.compiled
    model.save(tmp_path / "two.keras")
    assert len(keras.saving.load_model(tmp_path / "two.keras").outputs) == 2


def test_labels_that_do_not_fit_the_outputs_are_refused_with_the_outputs_named():
    model = _two_outputs()
    model.compile("sgd", _TWO_LOSSES, copies=4)
    x, y = _two_data()
    with pytest.raises(ValueError, match=r"2 outputs \['digit', 'parity'\], and the labels are one array"):
        model.estimate_gradients(x, y["digit"])


@pytest.mark.parametrize(
    "options",
    [
        {"antithetic": True},
        {"injection": "layerwise", "antithetic": True},
        {"baseline": "none", "sampling": "latin"},
        {"estimator": "bp-noise"},
        {"estimator": "weight-perturbation"},
        {"estimator": "spsa"},
        {"estimator": "forward-gradient"},
    ],
    ids=lambda options: "-".join(str(v) for v in options.values()),
)
def test_every_estimator_and_option_takes_several_outputs(options):
    model = _two_outputs()
    x, y = _two_data(6)
    model.compile("sgd", _TWO_LOSSES, loss_weights=[1.0, 0.5], copies=8, **options)
    model.training_noise.state.assign([0, 0])
    whole = [np.asarray(g) for g in model.estimate_gradients(x, y)]
    assert all(np.all(np.isfinite(g)) for g in whole) and any(np.any(g != 0) for g in whole)
    if options.get("estimator", "glr") == "glr":  # chunks of the batch give the one-pass estimate
        model.compile("sgd", _TWO_LOSSES, loss_weights=[1.0, 0.5], copies=8, copies_per_chunk=16, **options)
        model.training_noise.state.assign([0, 0])
        for g, h in zip(whole, model.estimate_gradients(x, y)):
            np.testing.assert_allclose(g, h, rtol=1e-4, atol=1e-6)
        model.fit(x, y, batch_size=6, epochs=1, verbose=0)  # and a step under chunks, first copies per output


def test_per_output_sample_weights_are_refused_with_what_works():
    model = _two_outputs()
    model.compile("sgd", _TWO_LOSSES, copies=4)
    x, y = _two_data()
    with pytest.raises(ValueError, match="weigh the outputs with compile\\(loss_weights=...\\)"):
        model.fit(x, y, sample_weight={"digit": np.ones(16), "parity": np.ones(16)}, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "loss, loss_weights, expected",
    [
        ([_TWO_LOSSES["digit"], None], [1.0, 0.5], (1.0, 0.0)),
        ({"digit": _TWO_LOSSES["digit"]}, {"digit": 2.0}, (2.0, 0.0)),
        ({"digit": _TWO_LOSSES["digit"], "parity": _TWO_LOSSES["parity"]}, {"parity": 0.5}, (1.0, 0.5)),
        (["sparse_categorical_crossentropy", "binary_crossentropy"], None, (1.0, 1.0)),
    ],
    ids=["list_with_none", "dict_of_one", "partial_weights", "names"],
)
def test_losses_and_weights_are_taken_in_every_form_keras_takes(loss, loss_weights, expected):
    """The step's loss is the weighted sum of the outputs' losses (the last epoch's mean over copies), fit logs it."""
    model = _two_outputs()
    x, y = _two_data()
    y["parity"] = y["parity"][:, None]  # binary_crossentropy by name wants the outputs' rank
    model.compile(keras.optimizers.SGD(0.0), loss, loss_weights=loss_weights, copies=4)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    scores = model.evaluate(x, y, verbose=0, return_dict=True)
    assert np.isfinite(history["loss"][0]) and np.isfinite(scores["loss"])
    if all(expected):
        weighted = expected[0] * scores["digit_loss"] + expected[1] * scores["parity_loss"]
        assert scores["loss"] == pytest.approx(weighted, rel=1e-4)


def test_the_forward_gradient_refuses_a_zero_one_loss_on_any_output():
    model = _two_outputs()
    with pytest.raises(ValueError, match="the 0-1 loss has no derivative"):
        model.compile("sgd", {"digit": "zero_one", "parity": _TWO_LOSSES["parity"]}, estimator="forward-gradient")
    assert not model.compiled
