"""A run's files on disk: JSON written atomically, and the per-epoch checkpoint.

    <run_dir>/checkpoint/
        model.keras    the model after the last finished epoch (optimizer included)
        state.json     {"epochs_done", "wall_time_seconds", "noise_states"}

Every file is written to a temporary name and moved into place, so an
interruption at any moment leaves the previous version whole.
"""

import json
import os
import time

import keras

from keras_glr.layers import noisy_layers

FOLDER = "checkpoint"


def write_json(path, values):
    """Writes `values` as JSON atomically (a reader never sees half a file)."""
    path = str(path)
    with open(path + ".tmp", "w") as f:
        json.dump(values, f, indent=2, default=str)
    os.replace(path + ".tmp", path)


def read_json(path):
    """The JSON object stored at `path`."""
    with open(path) as f:
        return json.load(f)


def state(run_dir):
    """The checkpoint's state.json as a dict, or None when no epoch has finished."""
    path = os.path.join(run_dir, FOLDER, "state.json")
    return read_json(path) if os.path.exists(path) else None


def epochs_done(run_dir):
    """Epochs finished and checkpointed in `run_dir` (0 when none)."""
    saved = state(run_dir)
    return saved["epochs_done"] if saved else 0


def restore(run_dir):
    """The checkpointed model, its noise generators where they were."""
    model = keras.saving.load_model(os.path.join(run_dir, FOLDER, "model.keras"))
    restore_noise_states(model, state(run_dir)["noise_states"])
    return model


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model, the finished epoch count and the noise states after each epoch."""

    def __init__(self, run_dir, previous_seconds=0.0):
        super().__init__()
        self.folder = os.path.join(run_dir, FOLDER)
        self.previous_seconds = previous_seconds
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.folder, exist_ok=True)
        model_path = os.path.join(self.folder, "model.keras")
        self.model.save(model_path + ".tmp.keras")
        os.replace(model_path + ".tmp.keras", model_path)
        seconds = self.previous_seconds + time.time() - self.started
        values = {"epochs_done": epoch + 1, "wall_time_seconds": seconds, "noise_states": noise_states(self.model)}
        write_json(os.path.join(self.folder, "state.json"), values)


def noise_states(model):
    """The states of every noise generator of `model`, as JSON-ready lists.

    Keras does not save random-generator states in `.keras` files; a resumed
    run restores these to continue every noise sequence exactly.
    """
    state = lambda generator: [int(v) for v in generator.state.numpy()]  # noqa: E731
    return {
        "training": state(model.training_noise),
        "prediction": state(model.prediction_noise),
        "layers": [state(layer.seed_generator) for layer in noisy_layers(model)],
    }


def restore_noise_states(model, states):
    """Sets the states saved by `noise_states`. Raises ValueError if they do not fit."""
    layers = noisy_layers(model)
    if not isinstance(states, dict) or "training" not in states or len(states.get("layers", ())) != len(layers):
        raise ValueError(
            f"These noise states do not belong to this model (it has {len(layers)} noisy layers), or were "
            "written by an older keras_glr. Start the run again (glr-train ... --overwrite)."
        )
    model.training_noise.state.assign(states["training"])
    model.prediction_noise.state.assign(states["prediction"])
    for layer, state in zip(layers, states["layers"]):
        layer.seed_generator.state.assign(state)
