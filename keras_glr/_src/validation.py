"""Clear errors for bad training data and unsupported layers, at the edge.

Data is checked once, before any numerical work: arrays in Python before
training starts; batches of a Python generator or a `keras.utils.PyDataset`
in Python as they are read; batches of a `tf.data` pipeline by assertions at
the top of the step (`check_batch`) or, when the step is compiled with XLA
(`jit_compile=True`), which removes in-graph assertions, by a map in the
pipeline itself (it costs about 1 ms a batch on 2 CPU cores, the step's
assertions nothing measurable). A failed check inside TensorFlow is turned
back into a ValueError by `translate_errors`, so the user reads our message
rather than a TensorFlow stack trace.
"""

import contextlib
import inspect

import keras
import numpy as np
import tensorflow as tf

from keras_glr._src import keras_private
from keras_glr.layers import NoisyLayer
from keras_glr.layers import noisy_layers

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
        _check_finite(x)
        if model.built and getattr(model, "inputs", None) and len(model.inputs) == 1:
            expected = tuple(model.inputs[0].shape[1:])
            if len(expected) != x.ndim - 1 or any(e is not None and e != r for e, r in zip(expected, x.shape[1:])):
                raise ValueError(
                    f"The model expects inputs of shape (batch, {', '.join(map(str, expected))}); "
                    f"received inputs of shape {x.shape}. Reshape or resize the "
                    "inputs (flatten images for a dense network), or build the "
                    "model for this input shape."
                )
    output_shape = _output_shape(model)
    if output_shape is not None and isinstance(y, (np.ndarray, tf.Tensor)):
        _check_labels(np.asarray(y), output_shape)


def _check_finite(x):
    """Raises ValueError if a floating array holds NaN or infinite values."""
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise ValueError(_nan_message()[len(_TAG) :] + f" Found {np.sum(~np.isfinite(x))} such values.")


def _mismatch_message(y_shape, output_shape):
    return (
        f"Labels of shape {tuple(y_shape)} do not fit the model's output shape "
        f"{tuple(output_shape)}: expected class indices of shape (batch,) or "
        f"one-hot labels of shape (batch, {output_shape[-1]})."
    )


def _check_labels(y, output_shape):
    """Raises ValueError for labels that do not fit `output_shape`, are not numbers, or lie out of range."""
    if y.dtype.kind not in "biuf":
        example = f" (e.g. {y.flat[0].item()!r})" if y.size else ""
        raise ValueError(
            f"The labels must be numbers: class indices or one-hot rows. Received labels of dtype {y.dtype}{example}. "
            "Encode them as integers first, e.g. `classes, y = numpy.unique(y, return_inverse=True)` or "
            "`keras.layers.StringLookup`."
        )
    kind = _label_kind(y.shape, output_shape)
    classes = output_shape[-1]
    if kind == "mismatch":
        raise ValueError(_mismatch_message(y.shape, output_shape))
    if kind == "sparse" and classes and classes > 1 and y.size:
        if y.dtype.kind in "fc" and not np.all(np.isfinite(y)):
            raise ValueError("The labels contain NaN or infinite values.")
        if y.dtype.kind == "f" and not np.all(y == np.round(y)):
            fractional = y[y != np.round(y)]
            raise ValueError(
                f"Class-index labels must be whole numbers; received {fractional.size} fractional ones (e.g. "
                f"{fractional.flat[0]}). Pass integer class indices, or one-hot (or soft) labels of shape "
                f"(batch, {classes})."
            )
        bad = (y < 0) | (y >= classes)
        if np.any(bad):
            raise ValueError(
                _label_message(classes)[len(_TAG) :] + f" Received labels between {y.min()} and {y.max()}."
            )


def check_fit_arguments(x, y, kwargs):
    """Checks `fit`'s batch size, sample weights and that there is data. Raises ValueError.

    A `batch_size` below 1, NaN, infinite or negative sample weights, and an
    empty dataset would otherwise train on nothing or turn every weight NaN.
    """
    batch_size = kwargs.get("batch_size")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1
    ):
        raise ValueError(
            f"Invalid value received for argument `batch_size`. Expected a positive integer (examples per step). "
            f"Received: batch_size={batch_size!r}"
        )
    weights = kwargs.get("sample_weight")
    if isinstance(weights, (np.ndarray, tf.Tensor, list)):
        weights = np.asarray(weights)
        if weights.dtype.kind not in "biuf":
            raise ValueError(f"Invalid `sample_weight`: expected numbers, received dtype {weights.dtype}.")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(
                f"Invalid `sample_weight`: {int(np.sum(~np.isfinite(weights)))} NaN or infinite and "
                f"{int(np.sum(weights < 0))} negative values. Sample weights must be finite and non-negative."
            )
    examples = _examples_in(x)
    if examples == 0:
        raise ValueError("The training data is empty (0 examples). Pass the examples to train on.")


def _examples_in(x):
    """How many examples `x` holds, when that is known without reading it (None otherwise)."""
    if isinstance(x, tf.data.Dataset):
        cardinality = int(x.cardinality())
        return 0 if cardinality == 0 else None
    first = (
        tf.nest.flatten(x)[0]
        if x is not None and not isinstance(x, (keras.utils.PyDataset,)) and not inspect.isgenerator(x)
        else None
    )
    if isinstance(first, (np.ndarray, tf.Tensor)) and len(first.shape) >= 1:
        return int(first.shape[0])
    return None


def batch_size_of(x, kwargs):
    """The examples of one training step, when known before training (None otherwise)."""
    if isinstance(x, tf.data.Dataset):
        shapes = [getattr(s, "shape", None) for s in tf.nest.flatten(x.element_spec)]
        return shapes[0][0] if shapes and shapes[0] is not None and len(shapes[0]) else None
    examples = _examples_in(x)
    if examples is None:
        return None
    return min(kwargs.get("batch_size") or 32, examples)


def check_label_shape(y, y_pred):
    """Raises ValueError when the labels' static shape cannot match the outputs."""
    if y is None or isinstance(y, (dict, list, tuple)) or not tf.is_tensor(y_pred) or y_pred.shape.rank is None:
        return
    if _label_kind(tuple(y.shape), tuple(y_pred.shape)) == "mismatch":
        raise ValueError(_mismatch_message(y.shape, y_pred.shape))


def build_from_data(model, x):
    """Builds a Sequential model that has no `Input` from the shape of `x`, so the edge checks know its classes."""
    if model.built or not isinstance(model, keras.Sequential):
        return
    spec = x.element_spec if isinstance(x, tf.data.Dataset) else x
    spec = spec[0] if isinstance(spec, tuple) else spec
    shape = getattr(spec, "shape", None)
    if shape is not None and len(shape) >= 1:
        model.build((None,) + tuple(shape[1:]))


def at_the_edge(model, x, y):
    """Checks the data before it meets the step; returns `x`, wrapped where it is read lazily.

    Arrays are checked now (`check_arrays`); a Python generator or a
    `keras.utils.PyDataset` is wrapped to check every batch as it is read; a
    `tf.data.Dataset` gets a checking map only when the step is compiled with
    XLA (otherwise the step checks its batch, `check_batch`).
    """
    output_shape = _output_shape(model)
    if isinstance(x, tf.data.Dataset):
        return x.map(_checked_element(output_shape)) if model.jit_compile else x
    if inspect.isgenerator(x):
        return _checked_generator(x, output_shape)
    if isinstance(x, keras.utils.PyDataset):
        return _CheckedPyDataset(x, output_shape)
    check_arrays(model, x, y)
    return x


def check_batch(model, x, y):
    """In-graph check of one batch: finite inputs, labels in range. Returns (x, y) made to wait for it."""
    return _checked(x, y, _output_shape(model))


def _output_shape(model):
    outputs = getattr(model, "outputs", None) if model.built else None
    if not outputs or len(outputs) != 1:
        return None
    return tuple(outputs[0].shape)


def _checked(x, y, output_shape):
    checks = [
        tf.debugging.assert_equal(tf.reduce_all(tf.math.is_finite(t)), True, message=_nan_message())
        for t in tf.nest.flatten(x)
        if t is not None and t.dtype.is_floating
    ]
    if y is not None and not isinstance(y, (dict, list, tuple)) and output_shape and y.shape.rank is not None:
        classes = output_shape[-1]
        if classes and classes > 1 and y.dtype != tf.string and _label_kind(tuple(y.shape), output_shape) == "sparse":
            inside = tf.reduce_all(y >= tf.cast(0, y.dtype)) & tf.reduce_all(y < tf.cast(classes, y.dtype))
            checks.append(tf.debugging.assert_equal(inside, True, message=_label_message(classes)))
    if not checks:
        return x, y
    with tf.control_dependencies(checks):
        identity = lambda t: None if t is None else tf.identity(t)  # noqa: E731
        return tf.nest.map_structure(identity, x), None if y is None else tf.nest.map_structure(identity, y)


def _checked_element(output_shape):
    """A `Dataset.map` function that runs `_checked` on (x, y, ...) elements."""

    def check(*element):
        x, y = _checked(element[0], element[1] if len(element) > 1 else None, output_shape)
        checked = (x,) + ((y,) if len(element) > 1 else ()) + tuple(element[2:])
        return checked if len(checked) > 1 else checked[0]

    return check


def _check_batch(batch, output_shape):
    """Checks one batch of arrays read from a generator or a PyDataset.

    The message is tagged: Keras may read the batch inside a tf.data
    pipeline, and `translate_errors` finds the tag in TensorFlow's error.
    """
    try:
        _check_batch_arrays(batch, output_shape)
    except ValueError as error:
        raise ValueError(_TAG + str(error)) from None


def _check_batch_arrays(batch, output_shape):
    x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
    for t in tf.nest.flatten(x):
        _check_finite(np.asarray(t))
    if y is not None and output_shape is not None and not isinstance(y, (dict, list, tuple)):
        _check_labels(np.asarray(y), output_shape)


def _checked_generator(generator, output_shape):
    for batch in generator:
        _check_batch(batch, output_shape)
        yield batch


class _CheckedPyDataset(keras.utils.PyDataset):
    """A `PyDataset` whose batches are checked as they are read."""

    def __init__(self, dataset, output_shape):
        super().__init__(
            workers=dataset.workers,
            use_multiprocessing=dataset.use_multiprocessing,
            max_queue_size=dataset.max_queue_size,
        )
        self.dataset = dataset
        self.output_shape = output_shape

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        batch = self.dataset[index]
        _check_batch(batch, self.output_shape)
        return batch

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


@contextlib.contextmanager
def translate_errors():
    """Re-raises a failed in-graph data check as a plain ValueError."""
    try:
        yield
    except ValueError as error:
        if not str(error).startswith(_TAG):
            raise
        raise ValueError(str(error)[len(_TAG) :]) from None
    except tf.errors.InvalidArgumentError as error:
        text = error.message
        if _TAG not in text:
            raise
        message = text[text.index(_TAG) + len(_TAG) :].split("\n")[0]
        message = message.split("Condition x")[0].strip()
        raise ValueError(message) from None


def check_layers(model):
    """Raises ValueError if a layer with trainable weights has no noise.

    GLR estimates a layer's gradient from its own noise score, so every
    trainable layer must be noisy. Weightless layers (Flatten, pooling,
    Dropout, ...) and frozen layers are fine.
    """
    wrapped = {id(inner) for layer in noisy_layers(model) for inner in keras_private.sublayers(layer)}
    for layer in keras_private.sublayers(model):
        if isinstance(layer, NoisyLayer) or isinstance(layer, keras.Model) or id(layer) in wrapped:
            continue
        own = keras_private.own_trainable_variables(layer) if layer.trainable else []
        if own:
            replacement = {
                "Dense": "keras_glr.layers.NoisyDense",
                "Conv2D": "keras_glr.layers.NoisyConv2D",
            }.get(type(layer).__name__, f"keras_glr.layers.Noisy({type(layer).__name__}(...))")
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) has trainable "
                "weights but no neuronal noise, so the GLR estimator cannot "
                f"train it. Use {replacement} instead (or wrap it: "
                f"Noisy(layer, activation=...)), freeze it with "
                f"`layer.trainable = False`, or compile with estimator='bp'."
            )


def check_chunks(model, copies_per_chunk):
    """Raises ValueError when chunks cannot give the one-pass estimate: a wrapped BatchNormalization.

    Its moving statistics follow every training call (`keras_glr.layers.Noisy`),
    so a later chunk would be normalised with statistics the earlier ones moved.
    """
    if copies_per_chunk is None:
        return
    for layer in noisy_layers(model):
        if isinstance(getattr(layer, "layer", None), keras.layers.BatchNormalization) and layer.layer.trainable:
            raise ValueError(
                f"copies_per_chunk={copies_per_chunk} runs the batch in chunks, but '{layer.name}' wraps a "
                "BatchNormalization whose moving statistics move after every chunk, so the chunks would not give the "
                "one-pass estimate. Pass copies_per_chunk=None (a smaller batch bounds the rows too), or freeze the "
                "normalization (`layer.trainable = False`)."
            )


def data_spec(x, y, sample_weight):
    """(x, y, sample_weight) as objects with `shape` and `dtype`, or None.

    From arrays and tensors as given, or from a tf.data.Dataset's
    `element_spec`; None where the shapes are unknown without reading data
    (generators, `PyDataset`s, nested inputs, no labels).
    """
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        if not isinstance(spec, tuple) or len(spec) not in (2, 3):
            return None
        data = tuple(spec) + (None,) * (3 - len(spec))
    else:
        data = (x, y, sample_weight)
    if data[1] is None:
        return None
    for item in data:
        if item is not None and not (hasattr(item, "shape") and hasattr(item, "dtype")):
            return None
    return data
