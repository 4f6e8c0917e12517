"""Bad data gets a clear error at the edge, whether or not the step is compiled with XLA."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_glr
from keras_glr._src import validation
from keras_glr.layers import NoisyDense

SPARSE_CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _model(jit_compile):
    model = keras_glr.GLRSequential([keras.Input((6,)), NoisyDense(5, "step"), NoisyDense(3)])
    model.compile("sgd", SPARSE_CE, copies=4, jit_compile=jit_compile)
    return model


def _data(problem):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(40, 6)).astype("float32")
    y = (np.arange(40) % 3).astype("int32")
    if problem == "label":
        y[37] = 3
    else:
        x[37, 1] = np.nan
    return x, y


def _as(kind, x, y):
    if kind == "arrays":
        return {"x": x, "y": y, "batch_size": 8}
    if kind == "dataset":
        return {"x": tf.data.Dataset.from_tensor_slices((x, y)).batch(8)}
    if kind == "generator":
        return {"x": ((x[i : i + 8], y[i : i + 8]) for i in range(0, 40, 8)), "steps_per_epoch": 5}
    return {"x": _Batches(x, y)}


class _Batches(keras.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return 5

    def __getitem__(self, index):
        return self.x[8 * index : 8 * index + 8], self.y[8 * index : 8 * index + 8]


MESSAGES = {"label": r"labels must be class indices in \[0, 3\)", "nan": "NaN or infinite"}


@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager_graph", "xla"])
@pytest.mark.parametrize("kind", ["arrays", "dataset", "generator", "py_dataset"])
@pytest.mark.parametrize("problem", ["label", "nan"])
def test_bad_data_is_a_clear_error(jit_compile, kind, problem):
    model = _model(jit_compile)
    before = model.get_weights()
    x, y = _data(problem)
    with pytest.raises(ValueError, match=MESSAGES[problem]):
        model.fit(**_as(kind, x, y), epochs=1, verbose=0)
    if kind == "arrays":  # checked before any step
        for a, b in zip(before, model.get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager_graph", "xla"])
def test_bad_validation_and_evaluation_data(jit_compile):
    model = _model(jit_compile)
    good, bad = _data("label")[0], _data("nan")[0]
    y = (np.arange(40) % 3).astype("int32")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.fit(good, y, validation_data=tf.data.Dataset.from_tensor_slices((bad, y)).batch(8), verbose=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.evaluate(tf.data.Dataset.from_tensor_slices((bad, y)).batch(8), verbose=0)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager_graph", "xla"])
def test_good_data_passes_through_the_checks_unchanged(jit_compile):
    x, y = _data("label")
    y[37] = 2
    dataset = tf.data.Dataset.from_tensor_slices((x, y, np.ones(40, "float32"))).batch(8)
    checked = validation.at_the_edge(_model(jit_compile), dataset, None)
    assert (checked is dataset) == (not jit_compile)  # the step checks its batch unless XLA compiles it
    for (a, b, c), (d, e, f) in zip(dataset, checked):
        np.testing.assert_array_equal(a, d)
        np.testing.assert_array_equal(b, e)
        np.testing.assert_array_equal(c, f)


def test_labels_of_the_wrong_shape_name_both_shapes():
    x, _ = _data("label")
    with pytest.raises(ValueError, match=r"Labels of shape \(40, 5\) do not fit the model's output shape"):
        _model(False).fit(x, np.zeros((40, 5), "float32"), verbose=0)


@pytest.mark.parametrize("kind", ["arrays", "dataset"])
def test_one_hot_labels_with_a_sparse_loss_speak_of_the_users_shapes(kind):
    """With K = 4 copies of 8 examples the step sees 32 rows; the message must not."""
    x, y = _data("label")
    one_hot = np.eye(3, dtype="float32")[np.arange(40) % 3]
    with pytest.raises(ValueError) as raised:
        _model(jit_compile=False).fit(**_as(kind, x, one_hot), epochs=1, verbose=0)
    message = str(raised.value)
    assert re.search(r"labels of shape \((None|8|40), 3\)", message, flags=re.I), message
    assert "32" not in message and "CategoricalCrossentropy" in message


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda d: {**d, "y": np.array(list("abc" * 14)[:40])},
            r"labels must be numbers.*dtype <U1 \(e\.g\. 'a'\).*numpy\.unique",
        ),
        (lambda d: {**d, "y": d["y"] + 0.5}, r"whole numbers; received 40 fractional ones \(e\.g\. 0\.5\)"),
        (
            lambda d: {**d, "sample_weight": np.where(np.arange(40) == 3, np.nan, 1.0)},
            r"sample_weight.*1 NaN or infinite and 0 negative",
        ),
        (lambda d: {**d, "sample_weight": -np.ones(40)}, r"sample_weight.*0 NaN or infinite and 40 negative"),
        (lambda d: {**d, "batch_size": 0}, r"argument `batch_size`.*Received: batch_size=0"),
        (lambda d: {**d, "x": d["x"][:0], "y": d["y"][:0]}, r"training data is empty \(0 examples\)"),
        (
            lambda d: {"x": tf.data.Dataset.from_tensor_slices((d["x"][:0], d["y"][:0])).batch(8)},
            r"training data is empty",
        ),
    ],
    ids=[
        "string-labels",
        "fractional-labels",
        "nan-weights",
        "negative-weights",
        "batch-size-0",
        "empty-arrays",
        "empty-dataset",
    ],
)
def test_data_that_would_train_on_nothing_or_on_nan_is_refused_at_fit(change, message):
    model = _model(False)
    x, y = _data("label")
    y[37] = 2
    before = [np.array(w) for w in model.get_weights()]
    with pytest.raises(ValueError, match=message):
        model.fit(**change({"x": x, "y": y.astype("float32") if "fractional" in message else y}), verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_loss_that_becomes_nan_stops_training_naming_the_step_and_the_last_finite_loss():
    model = _model(False)
    x, y = _data("label")
    y[37] = 2

    class Blows(keras.losses.Loss):  # finite for three steps, then NaN
        def __init__(self):
            super().__init__(reduction="none")
            self.calls = keras.Variable(0.0, trainable=False)

        def call(self, y_true, y_pred):
            self.calls.assign_add(1.0)
            values = keras.ops.sum(keras.ops.square(y_pred), axis=-1)
            return values * keras.ops.where(self.calls > 3, np.nan, 1.0)

    model.compile("sgd", Blows(), copies=4)
    with pytest.raises(
        keras_glr._src.callbacks.TrainingDivergedError,
        match=r"Training stopped at epoch 1, step 4: the loss became nan \(the last finite loss was [0-9.e+-]+, at "
        r"epoch 1, step 3\)",
    ):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[keras_glr.StopOnNaN()])
