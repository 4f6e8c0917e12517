"""Losses that backpropagation cannot train with, but GLR can."""

import keras
from keras import ops


def _is_one_hot(y_true, y_pred):
    """True when `y_true` has the rank of `y_pred` and more than one column."""
    return (
        len(y_true.shape) == len(y_pred.shape)
        and y_true.shape[-1] is not None
        and y_true.shape[-1] > 1
    )


@keras.saving.register_keras_serializable(package="keras_glr")
def zero_one(y_true, y_pred):
    """Per-example 0-1 loss: 0 if argmax(y_pred) equals the label, else 1.

    Args:
        y_true: integer labels of shape (N,) or (N, 1), or one-hot (N, C).
        y_pred: scores, probabilities or logits of shape (N, C).

    Returns:
        float tensor of shape (N,).
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    predicted = ops.argmax(y_pred, axis=-1)
    if _is_one_hot(y_true, y_pred):
        label = ops.argmax(y_true, axis=-1)
    else:
        label = ops.reshape(y_true, ops.shape(predicted))
    wrong = ops.not_equal(ops.cast(label, "int64"), ops.cast(predicted, "int64"))
    return ops.cast(wrong, "float32")


def cross_entropy_from_logits(y_true, y_pred):
    """Per-example softmax cross-entropy of logits; sparse or one-hot labels.

    The differentiable stand-in for the 0-1 loss when an estimator needs a
    gradient of the loss itself (estimator="bp-ste").
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    if _is_one_hot(y_true, y_pred):
        return keras.losses.categorical_crossentropy(y_true, y_pred, from_logits=True)
    labels = ops.reshape(y_true, ops.shape(y_pred)[:-1])
    return keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)


@keras.saving.register_keras_serializable(package="keras_glr")
class ZeroOneLoss(keras.losses.Loss):
    """The 0-1 loss: the fraction of examples whose arg-max is wrong.

    Discontinuous and with zero gradient almost everywhere, so only a
    gradient-free estimator such as GLR can train on it. Sparse (integer) and
    one-hot labels are both accepted.

    Args:
        reduction: Keras loss reduction; "sum_over_batch_size" by default.
        name: name of the loss.
    """

    def __init__(self, reduction="sum_over_batch_size", name="zero_one_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return zero_one(y_true, y_pred)
