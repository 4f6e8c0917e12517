import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_glr import activations
from keras_glr import losses


def test_discontinuous_activations():
    x = np.array([-2.0, -0.0, 0.0, 0.5], dtype="float32")
    np.testing.assert_array_equal(activations.get("step")(x), [0, 0, 0, 1])
    np.testing.assert_array_equal(activations.get("threshold")(x), [0, 0, 0, 1])
    np.testing.assert_array_equal(activations.get("abs")(x), [2, 0, 0, 0.5])
    np.testing.assert_array_equal(activations.get("sign")(x), [-1, 0, 0, 1])


def test_sloped_sigmoid():
    x = np.array([-1.0, 0.0, 2.0], dtype="float32")
    np.testing.assert_allclose(activations.sigmoid_with_slope(3.0)(x), 1 / (1 + np.exp(-3 * x)), rtol=1e-6)
    with pytest.raises(ValueError, match="slope=0"):
        activations.sigmoid_with_slope(0)


@pytest.mark.parametrize("activation", ["step", "abs", "sign", activations.sigmoid_with_slope(4.0), "relu", "sigmoid"])
def test_activations_serialize(activation):
    fn = activations.get(activation)
    restored = activations.get(activations.serialize(fn))
    x = np.linspace(-2, 2, 9).astype("float32")
    np.testing.assert_array_equal(restored(x), fn(x))


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match="Received: activation='stepp'"):
        activations.get("stepp")


def test_zero_one_loss_sparse_and_one_hot():
    y_pred = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], dtype="float32")
    sparse = np.array([1, 1, 0])
    np.testing.assert_array_equal(losses.zero_one(sparse, y_pred), [0, 1, 1])
    np.testing.assert_array_equal(losses.zero_one(sparse[:, None], y_pred), [0, 1, 1])
    one_hot = np.eye(2)[sparse]
    np.testing.assert_array_equal(losses.zero_one(one_hot, y_pred), [0, 1, 1])
    assert float(losses.ZeroOneLoss()(sparse, y_pred)) == pytest.approx(2 / 3)


def test_zero_one_loss_serializes():
    restored = keras.losses.deserialize(keras.losses.serialize(losses.ZeroOneLoss(name="01")))
    assert isinstance(restored, losses.ZeroOneLoss) and restored.name == "01"


@pytest.mark.parametrize("scale", [1.0, 1e3])
@pytest.mark.parametrize("label_shape", ["flat", "column", "sequence"])
def test_forward_only_cross_entropy_equals_keras(scale, label_shape):
    rng = np.random.default_rng(0)
    shape = (4, 6, 10) if label_shape == "sequence" else (64, 10)
    logits = (scale * rng.normal(size=shape)).astype("float32")
    labels = rng.integers(0, 10, size=shape[:-1])
    if label_shape == "column":
        labels = labels[:, None]
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    fast = losses.forward_only(keras_loss)
    assert fast is losses.softmax_cross_entropy
    expected = keras_loss.call(labels, logits).numpy()
    got = fast(labels, logits).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gap", [10.0, 200.0])
def test_forward_only_cross_entropy_is_exact_when_a_logit_far_exceeds_the_label(gap):
    # The label-shifted sum overflows once a logit exceeds the label's by more
    # than ~88 (gap=200, one row of 64); the values must still be exact.
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(64, 10)).astype("float32")
    labels = rng.integers(0, 10, size=64)
    logits[5, (labels[5] + 1) % 10] += gap
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(labels, logits).numpy()
    for fn in (losses.softmax_cross_entropy, tf.function(losses.softmax_cross_entropy)):
        got = fn(labels, logits).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert got[5] == pytest.approx(gap, abs=5.0)


@pytest.mark.parametrize(
    "loss",
    [
        keras.losses.SparseCategoricalCrossentropy(),  # probabilities, not logits
        keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
        keras.losses.CategoricalCrossentropy(from_logits=True),
        losses.ZeroOneLoss(),
    ],
)
def test_forward_only_keeps_other_losses(loss):
    assert losses.forward_only(loss) is None


def test_forward_only_cross_entropy_rejects_one_hot_labels():
    logits = np.zeros((4, 10), "float32")
    with pytest.raises(ValueError, match="one integer label per example.*CategoricalCrossentropy"):
        losses.softmax_cross_entropy(np.eye(10, dtype="float32")[:4], logits)
