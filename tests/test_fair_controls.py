"""bp-ste, twins of GLR runs, and the seeds summary."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_glr
from keras_glr import activations
from keras_glr._src import seed_statistics
from keras_glr._src import twins
from keras_glr.layers import NoisyDense
from keras_glr.runs import RunConfig
from keras_glr_apps import train as train_app
from tests.test_training_mnist import _mnist14


@pytest.mark.parametrize("activation", [activations.step, activations.sign])
@pytest.mark.parametrize("slope", [None, 3.0])
def test_straight_through_keeps_the_value_and_passes_a_surrogate_gradient(activation, slope):
    x = tf.constant([-1.5, -0.2, 0.3, 2.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = activations.straight_through(activation, slope)(x)
    np.testing.assert_array_equal(y, activation(x))
    grad = tape.gradient(y, x).numpy()
    if slope is None:
        expected = np.ones(4)
    else:
        s = 1 / (1 + np.exp(-slope * x.numpy()))
        expected = slope * s * (1 - s) * (1 if activation is activations.step else 2)
    np.testing.assert_allclose(grad, expected, rtol=1e-4)


def test_straight_through_leaves_smooth_activations_alone():
    assert activations.straight_through(keras.activations.sigmoid) is keras.activations.sigmoid


@pytest.mark.parametrize(
    "loss", ["zero_one", keras.losses.SparseCategoricalCrossentropy(from_logits=True)], ids=["zero_one", "ce"]
)
def test_bp_ste_trains_a_step_network_on_mnist(loss):
    (x_train, y_train), (x_test, y_test) = _mnist14()
    model = keras_glr.GLRSequential([keras.Input((196,)), NoisyDense(20, "step"), NoisyDense(10)])
    model.compile(keras.optimizers.Adam(0.01), loss, metrics=["accuracy"], copies=4, estimator="bp-ste")
    model.fit(x_train, y_train, batch_size=32, epochs=4, verbose=0)
    assert model.evaluate(x_test, y_test, verbose=0)[1] >= 0.8


def test_bp_ste_on_zero_one_reports_the_zero_one_loss():
    model = keras_glr.GLRSequential([keras.Input((4,)), NoisyDense(3, "step"), NoisyDense(2)])
    model.compile("sgd", "zero_one", copies=2, estimator="bp-ste")
    x, y = np.random.default_rng(0).uniform(size=(32, 4)).astype("float32"), np.arange(32) % 2
    history = model.fit(x, y, epochs=1, verbose=0)
    loss = history.history["loss"][0]  # one step: the mean of the 0-1 loss over 32 examples x 2 copies
    assert 0.0 <= loss <= 1.0 and abs(loss * 64 - round(loss * 64)) < 1e-4, (
        loss
    )  # a count of errors, not a cross-entropy
    assert all(np.any(g != 0) for g in model.estimate_gradients(x, y))


def test_twin_config_changes_only_the_estimator():
    glr = RunConfig(activation="sigmoid", optimizer="sgd", learning_rate=0.5, epochs=30, run_name="paper")
    twin = twins.twin_config(glr)
    assert twin.estimator == "bp-noise" and twin.run_name == "paper_twin"
    differing = {k for k, v in glr.to_json().items() if twin.to_json()[k] != v}
    assert differing == {"estimator", "run_name"}
    assert twins.twin_config(RunConfig(activation="step")).estimator == "bp-ste"
    # The 0-1 loss has no gradient either: its control replaces it by cross-entropy.
    assert twins.twin_config(RunConfig(activation="sigmoid", loss="zero-one")).estimator == "bp-ste"
    with pytest.raises(ValueError, match="estimator is 'bp'"):
        twins.twin_config(RunConfig(estimator="bp"))


@pytest.mark.slow  # two trainings (12 s): the default suite stays under 10 minutes on 2 cores
def test_glr_train_twin_of_writes_a_run_that_differs_only_in_the_estimator(tmp_path):
    fast = [
        "--epochs",
        "1",
        "--copies",
        "4",
        "--hidden",
        "8",
        "--batch-size",
        "100",
        "--noisy-passes",
        "2",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    assert train_app.main(fast + ["--run-name", "glr"]) == 0
    assert train_app.main(fast + ["--twin-of", str(tmp_path / "glr")]) == 0
    first = json.loads((tmp_path / "glr/run.json").read_text())
    second = json.loads((tmp_path / "glr_twin/run.json").read_text())
    differing = {k for k, v in first["config"].items() if second["config"][k] != v}
    assert differing == {"estimator", "run_name"}
    assert second["config"]["estimator"] == "bp-ste" and second["twin_of"].endswith("glr")
    assert "straight through" in second["gradient"]


def test_seed_summary_from_known_values():
    summary = seed_statistics.summarize([0.30, 0.40, 0.50])
    assert summary.mean == pytest.approx(0.40) and summary.std == pytest.approx(0.10) and summary.n == 3
    assert str(summary) == "0.400 ± 0.100"
    assert str(seed_statistics.summarize([0.25])) == "0.250"
    assert seed_statistics.summarize([0.2, float("nan"), 0.4]).n == 2


def test_significance_needs_a_gap_larger_than_the_spread():
    a = seed_statistics.summarize([0.39, 0.40, 0.41])  # std 0.01
    close = seed_statistics.summarize([0.405, 0.415, 0.425])  # gap 0.015 < 0.01 + 0.01
    far = seed_statistics.summarize([0.44, 0.45, 0.46])  # gap 0.05
    assert not seed_statistics.significant(a, close)
    assert seed_statistics.significant(a, far) and seed_statistics.significant(far, a)
    assert not seed_statistics.significant(seed_statistics.summarize([0.1]), seed_statistics.summarize([0.9]))
