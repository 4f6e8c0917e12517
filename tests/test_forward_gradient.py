"""The forward gradient: unbiased for the noiseless network's gradient, refused where there is no derivative.

Reference, computed here in numpy: the backprop gradient of the batch's mean
cross-entropy of the noiseless sigmoid network. Tolerance: 4 standard
errors for every weight (the reference is exact), with power against a 10% bias.
"""

import keras
import numpy as np
import pytest

import keras_glr
from keras_glr.layers import NoisyDense
from tests.stats import assert_agree
from tests.stats import mean_and_se

N_SE = 4.0
INPUT_DIM, HIDDEN, CLASSES = 4, 3, 3
CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _model(activation="sigmoid", loss=CE, copies=200):
    model = keras_glr.GLRSequential(
        [
            keras.Input((INPUT_DIM,)),
            NoisyDense(HIDDEN, activation, bias_initializer=keras.initializers.RandomNormal(0, 0.5)),
            NoisyDense(CLASSES, bias_initializer=keras.initializers.RandomNormal(0, 0.5)),
        ]
    )
    model.compile("sgd", loss, copies=copies, estimator="forward-gradient")
    return model


def _batch():
    rng = np.random.default_rng(0)
    return rng.uniform(0.0, 1.0, (3, INPUT_DIM)).astype("float32"), (np.arange(3) % CLASSES).astype("int32")


def _exact_gradient(weights, x, y):
    w1, b1, w2, b2 = weights
    a = 1.0 / (1.0 + np.exp(-(x @ w1 + b1)))
    v2 = a @ w2 + b2
    p = np.exp(v2 - v2.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    g2 = (p - np.eye(CLASSES)[y]) / len(x)
    g1 = (g2 @ w2.T) * a * (1.0 - a)
    return np.concatenate([np.ravel(x.T @ g1), g1.sum(0), np.ravel(a.T @ g2), g2.sum(0)])


@pytest.fixture(scope="module")
def estimate_and_exact():
    model = _model()
    x, y = _batch()
    samples = np.stack([np.concatenate([np.ravel(g) for g in model.estimate_gradients(x, y)]) for _ in range(100)])
    exact = _exact_gradient([np.asarray(v, dtype=np.float64) for v in model.trainable_variables], x, y)
    return mean_and_se(samples), exact


def test_the_forward_gradient_is_unbiased_for_the_gradient(estimate_and_exact):
    (mean, se), exact = estimate_and_exact
    assert_agree(mean, se, exact, np.zeros_like(exact), N_SE, what="forward gradient vs the exact gradient")


def test_the_comparison_detects_a_ten_percent_bias(estimate_and_exact):
    (mean, se), exact = estimate_and_exact
    with pytest.raises(AssertionError):
        assert_agree(0.9 * mean, 0.9 * se, exact, np.zeros_like(exact), N_SE)


@pytest.mark.parametrize(
    "activation, loss, message",
    [
        ("step", CE, r"step or sign units \(spikes\) of \['noisy_dense.*'\] have a zero derivative"),
        ("sign", CE, r"step or sign units"),
        ("sigmoid", "zero_one", r"the 0-1 loss has no derivative"),
    ],
)
def test_what_has_no_derivative_is_refused_and_the_model_stays_as_it_was(activation, loss, message, tmp_path):
    model = keras_glr.GLRSequential([keras.Input((INPUT_DIM,)), NoisyDense(HIDDEN, activation), NoisyDense(CLASSES)])
    with pytest.raises(ValueError, match=message):
        model.compile("sgd", loss, copies=4, estimator="forward-gradient")
    assert not hasattr(model, "glr_config")  # a refused compile changes nothing: the model saves and loads
    model.save(tmp_path / "model.keras")
    keras.saving.load_model(tmp_path / "model.keras")


@pytest.mark.parametrize("cell", ["lif", "step-rnn"])
def test_spiking_and_step_recurrent_cells_are_refused(cell):
    from keras_glr.layers import LIFCell
    from keras_glr.layers import NoisySimpleRNNCell

    made = LIFCell(4) if cell == "lif" else NoisySimpleRNNCell(4, activation="step")
    model = keras_glr.GLRSequential([keras.Input((3, INPUT_DIM)), keras.layers.RNN(made), NoisyDense(CLASSES)])
    with pytest.raises(ValueError, match=r"step or sign units \(spikes\) of \['(lif_cell|noisy_simple_rnn_cell)"):
        model.compile("sgd", CE, copies=4, estimator="forward-gradient")


def test_the_forward_gradient_trains_a_smooth_network():
    x, y = _batch()
    model = _model(copies=8)
    before = [np.array(w) for w in model.get_weights()]
    history = model.fit(np.tile(x, (10, 1)), np.tile(y, 10), batch_size=10, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(np.any(a != b) for a, b in zip(before, model.get_weights()))


def test_a_recurrent_network_runs_unrolled_and_its_estimate_points_along_the_bptt_gradient():
    """Forward-mode differentiation cannot enter the RNN's while loop, so the step unrolls it (as GLR's does)."""
    from keras_glr.layers import NoisySimpleRNNCell

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(8, 4, INPUT_DIM)).astype("float32")
    y = (np.arange(8) % CLASSES).astype("int32")
    model = keras_glr.GLRSequential(
        [keras.Input((4, INPUT_DIM)), keras.layers.RNN(NoisySimpleRNNCell(3)), NoisyDense(CLASSES)], seed=2
    )
    model.compile("sgd", CE, copies=400, estimator="forward-gradient")
    estimate = np.concatenate([np.ravel(g) for g in model.estimate_gradients(x, y)])
    exact = np.concatenate([np.ravel(g) for g in model.estimate_gradients(x, y, copies=1, estimator="bp")])
    cosine = estimate @ exact / (np.linalg.norm(estimate) * np.linalg.norm(exact))
    assert cosine > 0.9, cosine  # 33 weights, 400 tangents: about 0.96 expected
