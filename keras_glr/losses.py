"""Losses that backpropagation cannot train with, but GLR can, and per-example loss values."""

import keras
import tensorflow as tf
from keras import ops


def _is_one_hot(y_true, y_pred):
    """True when `y_true` has the rank of `y_pred` and more than one column."""
    return len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] is not None and y_true.shape[-1] > 1


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


def softmax_cross_entropy(labels, logits):
    """Per-example softmax cross-entropy of logits, forward only.

    L = logsumexp(z) - z[y] = log sum_c exp(z_c - z_y).
    TensorFlow's fused cross-entropy op also computes the gradient with
    respect to the logits on every call; GLR only needs the values, and on
    the K copies of a step this is about three times as fast.

    Args:
        labels: integer labels of shape logits.shape[:-1] (or with a trailing
            axis of 1).
        logits: float tensor of shape (..., C).

    Returns:
        float32 tensor of shape logits.shape[:-1].
    """
    logits = tf.cast(tf.convert_to_tensor(logits), "float32")
    labels = tf.convert_to_tensor(labels)
    if len(labels.shape) == len(logits.shape) and labels.shape[-1] == 1:
        labels = tf.squeeze(labels, axis=-1)
    if len(labels.shape) != len(logits.shape) - 1:
        raise ValueError(
            "Sparse cross-entropy needs one integer label per example: labels of "
            f"shape {tuple(logits.shape[:-1])} for logits of shape {tuple(logits.shape)}. "
            f"Received labels of shape {tuple(labels.shape)}. For one-hot labels use "
            "keras.losses.CategoricalCrossentropy."
        )
    labels = tf.cast(labels, "int32")
    picked = tf.gather(logits, labels[..., None], batch_dims=len(logits.shape) - 1)
    # Shifted by the label's logit, L = log sum_c exp(z_c - z_y): the label's
    # term is 1, so the sum is >= 1 and no max pass is needed. exp overflows
    # only where a logit exceeds the label's by more than ~88; then the whole
    # call takes the max-shifted form.
    by_label = tf.math.log(tf.reduce_sum(tf.exp(logits - picked), axis=-1))
    return tf.cond(tf.reduce_all(tf.math.is_finite(by_label)), lambda: by_label, lambda: _max_shifted(labels, logits))


def _max_shifted(labels, logits):
    """softmax_cross_entropy with the max shift m = max_c z_c: any finite logits."""
    shifted = logits - tf.stop_gradient(tf.reduce_max(logits, axis=-1, keepdims=True))
    picked = tf.gather(shifted, labels[..., None], batch_dims=len(logits.shape) - 1)[..., 0]
    return tf.math.log(tf.reduce_sum(tf.exp(shifted), axis=-1)) - picked


def per_example(loss):
    """Returns fn(y_true, y_pred) -> per-example losses, float32, shape (N,).

    Accepts a Keras loss name, a `keras.losses.Loss` (its reduction is
    ignored) or any callable returning one value per example (extra trailing
    axes are averaged, as Keras does).
    """
    if isinstance(loss, keras.losses.Loss):
        fn = loss.call
    elif isinstance(loss, str):
        fn = keras.losses.get(loss)
    elif callable(loss):
        fn = loss
    else:
        raise ValueError(
            "A GLR model's loss (each output's, with several) is a Keras loss name, "
            f"a keras.losses.Loss or a callable. Received: loss={loss!r}"
        )

    def per_example_values(y_true, y_pred):
        values = tf.convert_to_tensor(fn(y_true, y_pred))
        if values.shape.rank == 0:
            raise ValueError(
                f"The loss {loss!r} returned a single number for the whole batch; "
                "GLR needs one loss value per example (reduction 'none'). Pass a "
                "keras.losses.Loss or a function returning shape (batch,)."
            )
        if values.shape.rank > 1:
            values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
        return tf.cast(values, "float32")

    return per_example_values


def forward_only(loss):
    """A per-example function with `loss`'s values that computes no gradient, or None.

    Recognises `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`
    without `ignore_class`, whose TensorFlow op also computes the logits'
    gradient, and returns `softmax_cross_entropy` for it.
    """
    if not isinstance(loss, keras.losses.SparseCategoricalCrossentropy):
        return None
    config = loss.get_config()
    if config.get("from_logits") is True and config.get("ignore_class") is None:
        return softmax_cross_entropy
    return None


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
