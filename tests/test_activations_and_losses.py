import keras
import numpy as np
import pytest

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
