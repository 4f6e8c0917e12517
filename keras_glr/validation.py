"""Clear errors for bad training data and unsupported layers.

Arrays are checked in Python before any work. Batches from a `tf.data`
pipeline are checked inside the compiled step; the failed check is turned
back into a ValueError by `translate_errors`, so the user reads our message
rather than a TensorFlow stack trace.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf

_TAG = "keras_glr: "


def _label_kind(y_shape, output_shape):
    """Returns "sparse", "dense" or "mismatch" for labels against outputs."""
    classes = output_shape[-1]
    if len(y_shape) == len(output_shape) and y_shape[-1] == classes:
        return "dense"
    if len(y_shape) == len(output_shape) - 1 or (len(y_shape) == len(output_shape) and y_shape[-1] == 1):
        return "sparse"
    return "mismatch"


def _nan_message():
    return (
        _TAG + "the inputs contain NaN or infinite values. Remove or impute "
        "them (for example with numpy.nan_to_num) before training."
    )


def _label_message(classes):
    return (
        _TAG + f"labels must be class indices in [0, {classes}) for a model "
        f"with {classes} outputs; found a label outside that range. Check the "
        "labels, or give the last layer one unit per class."
    )


def check_arrays(model, x, y):
    """Checks in-memory inputs and labels before training. Raises ValueError."""
    if isinstance(x, (np.ndarray, tf.Tensor)) or np.isscalar(x):
        x = np.asarray(x)
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise ValueError(_nan_message()[len(_TAG):] + f" Found {np.sum(~np.isfinite(x))} such values.")
        if model.built and getattr(model, "inputs", None) and len(model.inputs) == 1:
            expected = tuple(model.inputs[0].shape[1:])
            if len(expected) != x.ndim - 1 or any(e is not None and e != r for e, r in zip(expected, x.shape[1:])):
                raise ValueError(
                    f"The model expects inputs of shape (batch, {', '.join(map(str, expected))}); "
                    f"received inputs of shape {x.shape}. Reshape or resize the "
                    "inputs (flatten images for a dense network), or build the "
                    "model for this input shape."
                )
    if y is None or not model.built or not getattr(model, "outputs", None) or len(model.outputs) != 1:
        return
    if isinstance(y, (np.ndarray, tf.Tensor)):
        y = np.asarray(y)
        output_shape = tuple(model.outputs[0].shape)
        kind = _label_kind(y.shape, output_shape)
        classes = output_shape[-1]
        if kind == "mismatch":
            raise ValueError(
                f"Labels of shape {y.shape} do not fit the model's output shape "
                f"{output_shape}: expected class indices of shape (batch,) or "
                f"one-hot labels of shape (batch, {classes})."
            )
        if kind == "sparse" and classes > 1 and y.size:
            if y.dtype.kind in "fc" and not np.all(np.isfinite(y)):
                raise ValueError("The labels contain NaN or infinite values.")
            bad = (y < 0) | (y >= classes)
            if np.any(bad):
                raise ValueError(
                    _label_message(classes)[len(_TAG):]
                    + f" Received labels between {y.min()} and {y.max()}."
                )


def assert_finite_inputs(x):
    """In-graph check that every floating input is finite."""
    for tensor in tf.nest.flatten(x):
        if tensor is not None and tensor.dtype.is_floating:
            tf.debugging.assert_all_finite(tensor, _nan_message())


def assert_labels(y, y_pred):
    """In-graph check that sparse labels index one of y_pred's classes.

    Returns `y`, made to wait for the check, so that a loss computed from
    the returned labels never runs before it (and fails with TensorFlow's
    own message instead of this one).
    """
    if y is None or isinstance(y, (dict, list, tuple)):
        return y
    y = tf.convert_to_tensor(y)
    classes = y_pred.shape[-1]
    if classes is None or classes < 2 or y.dtype == tf.string:
        return y
    kind = _label_kind(tuple(y.shape), tuple(y_pred.shape))
    if kind == "mismatch":
        raise ValueError(
            f"Labels of shape {tuple(y.shape)} do not fit the model's output "
            f"shape {tuple(y_pred.shape)}: expected class indices of shape "
            f"(batch,) or one-hot labels of shape (batch, {classes})."
        )
    if kind != "sparse":
        return y
    message = _label_message(classes)
    checks = [
        tf.debugging.assert_greater_equal(y, tf.cast(0, y.dtype), message=message),
        tf.debugging.assert_less(y, tf.cast(classes, y.dtype), message=message),
    ]
    with tf.control_dependencies([c for c in checks if c is not None]):
        return tf.identity(y)


@contextlib.contextmanager
def translate_errors():
    """Re-raises a failed in-graph data check as a plain ValueError."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        text = error.message
        if _TAG not in text:
            raise
        message = text[text.index(_TAG) + len(_TAG):].split("\n")[0]
        message = message.split("Condition x")[0].strip()
        raise ValueError(message) from None


def check_layers(model):
    """Raises ValueError if a layer with trainable weights has no noise.

    GLR estimates a layer's gradient from its own noise score, so every
    trainable layer must be noisy. Weightless layers (Flatten, pooling,
    Dropout, ...) and frozen layers are fine.
    """
    from keras_glr.layers import NoisyLayer

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, NoisyLayer) or isinstance(layer, keras.Model):
            continue
        own = [w for w in layer._trainable_variables if w.trainable] if layer.trainable else []
        if own:
            replacement = {
                "Dense": "keras_glr.layers.NoisyDense",
                "Conv2D": "keras_glr.layers.NoisyConv2D",
            }.get(type(layer).__name__, "a keras_glr noisy layer (NoisyDense, NoisyConv2D)")
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) has trainable "
                "weights but no neuronal noise, so the GLR estimator cannot "
                f"train it. Use {replacement} instead, freeze it with "
                f"`layer.trainable = False`, or compile with estimator='bp'."
            )
