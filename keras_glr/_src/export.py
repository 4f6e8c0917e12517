"""Export a trained model as a TF SavedModel that serves without keras_glr.

Signatures:
    serving_default / serve: deterministic class probabilities, shape (B, C).
    serve_noisy: class probabilities averaged over M noisy forward passes
        (the paper's noisy prediction), shape (B, C).
Both take one float32 input named "inputs" of shape (B, ...) (the model's
input shape; `glr-export` prints it); another shape is refused with a
message that states the expected one.

TF Serving loads `<base>/<version>/saved_model.pb` and serves the highest
numeric version, so exports are written into numbered folders under a base.
"""

import os

import keras
import tensorflow as tf

from keras_glr._src import atomic_files


def versions(base):
    """The numeric version folders under `base`, sorted (empty if none)."""
    if not os.path.isdir(base):
        return []
    return sorted(int(name) for name in os.listdir(base) if name.isdigit() and os.path.isdir(os.path.join(base, name)))


def next_version(base):
    """One more than the highest version under `base`, or 1."""
    return (versions(base) or [0])[-1] + 1


def export_version(model, base, version, noisy_passes=32, replace=False):
    """Writes `model` to `base/<version>/` and returns that path.

    The SavedModel is written beside it under a name TF Serving ignores
    (`.partial-<version>`) and renamed into place, so a server watching
    `base` never loads half of it. An existing version is an error, or with
    `replace` is swapped for the new one once that is written.
    """
    path = os.path.join(str(base), str(version))
    if os.path.exists(path) and not replace:
        raise ValueError(f"Version {version} already exists in {base}. Replace it, or choose another version.")
    os.makedirs(base, exist_ok=True)
    commit = atomic_files.Commit(base)
    try:
        export_saved_model(model, commit.stage(str(version)), noisy_passes)
    except BaseException:
        commit.discard()
        raise
    commit.apply()
    return path


def export_saved_model(model, path, noisy_passes=32, outputs_are_logits=True):
    """Writes `model` as a SavedModel at `path` with the signatures above.

    Args:
        model: a built GLR model with one input and one output.
        path: directory to write (must not exist yet or be empty).
        noisy_passes: M, the noisy passes averaged by `serve_noisy`.
        outputs_are_logits: apply a softmax to the model's outputs.
    """
    if isinstance(noisy_passes, bool) or not isinstance(noisy_passes, int) or noisy_passes < 1:
        raise ValueError(
            "Invalid value received for argument `noisy_passes`. Expected a "
            f"positive integer. Received: noisy_passes={noisy_passes!r}"
        )
    input_shape = tuple(model.inputs[0].shape[1:])
    spec = tf.TensorSpec((None,) + input_shape, tf.float32, name="inputs")

    def to_probabilities(outputs):
        return tf.nn.softmax(outputs, axis=-1) if outputs_are_logits else outputs

    def serve(inputs):
        return to_probabilities(model(checked_shape(inputs, input_shape), training=False))

    def serve_noisy(inputs):
        passes = model.noisy_forward(checked_shape(inputs, input_shape), noisy_passes)
        return tf.reduce_mean(to_probabilities(passes), axis=1)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=[spec])
    archive.add_endpoint("serve_noisy", serve_noisy, input_signature=[spec])
    archive.write_out(str(path), verbose=False)
    return path


def checked_shape(inputs, input_shape):
    """`inputs`, checked to have shape (batch, *input_shape) when the graph runs.

    A request of another shape fails with "Shape of tensor inputs [4,100] is
    not compatible with expected shape [?,196]" rather than a matrix-size
    error from deep inside the graph (TF Serving returns the message too).
    """
    return tf.ensure_shape(inputs, (None,) + tuple(input_shape))


def describe_signatures(path):
    """Returns {signature name: (input specs, output specs)} of a SavedModel."""
    loaded = tf.saved_model.load(str(path))
    described = {}
    for name, function in loaded.signatures.items():
        inputs = {k: (tuple(v.shape), v.dtype.name) for k, v in function.structured_input_signature[1].items()}
        outputs = {k: (tuple(v.shape), v.dtype.name) for k, v in function.structured_outputs.items()}
        described[name] = (inputs, outputs)
    return described
