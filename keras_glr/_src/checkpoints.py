"""A run's model files: the per-epoch checkpoint, and loading a run's model.

    <run_dir>/checkpoint/
        model.keras    the model after the last finished epoch (optimizer included)
        state.json     {"epochs_done", "wall_time_seconds", "noise_states"}

Every file is written to a temporary name and moved into place; the
checkpoint's two files are committed together (`atomic_files`), so an
interruption at any moment leaves the previous epoch's pair whole.
"""

import json
import os
import time
import zipfile

import keras

from keras_glr._src import atomic_files
from keras_glr._src import model as _model  # noqa: F401  (registers GLRModel and GLRSequential for loading)
from keras_glr._src.json_files import DamagedFileError
from keras_glr._src.json_files import read_json
from keras_glr._src.json_files import write_json
from keras_glr.layers import noisy_layers

FOLDER = "checkpoint"


STATE_FIELDS = {"epochs_done": int, "wall_time_seconds": (int, float), "noise_states": dict}


def state(run_dir):
    """The checkpoint's state.json as a dict, or None when no epoch has finished. Raises DamagedFileError."""
    path = os.path.join(run_dir, FOLDER, "state.json")
    return read_json(path, STATE_FIELDS) if os.path.exists(path) else None


def epochs_done(run_dir):
    """Epochs finished and checkpointed in `run_dir` (0 when none)."""
    saved = state(run_dir)
    return saved["epochs_done"] if saved else 0


def recover(run_dir):
    """Finishes or undoes a checkpoint that an interruption left half-written (`atomic_files.recover`)."""
    return atomic_files.recover(os.path.join(run_dir, FOLDER))


def restore(run_dir):
    """The checkpointed model, its noise generators where they were."""
    model = load_model(os.path.join(run_dir, FOLDER, "model.keras"))
    restore_noise_states(model, state(run_dir)["noise_states"])
    return model


def model_file(path):
    """The .keras file of a run directory, or `path` itself if it is a .keras file."""
    if os.path.isdir(path):
        candidate = os.path.join(path, "model.keras")
        if not os.path.exists(candidate):
            raise FileNotFoundError(f"{path} holds no model.keras; is it a finished glr-train run directory?")
        return candidate
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such run directory or .keras file: {path}")
    if not str(path).endswith(".keras"):
        raise ValueError(f"Expected a run directory or a .keras file; received {path}.")
    return path


def load_model(path, **kwargs):
    """`keras.saving.load_model(path)`, with a missing file and a damaged one told apart.

    Raises:
        FileNotFoundError: nothing at `path`.
        DamagedFileError: the file is there but is not a loadable `.keras`
            archive (truncated, empty, not a zip, its config unreadable).
    """
    path = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such .keras file: {path}")
    if not _is_zip_with_config(path):
        what = (
            "no readable config.json inside"
            if zipfile.is_zipfile(path)
            else "not a zip archive: truncated, empty or another file"
        )
        raise DamagedFileError(
            f"{path} is damaged: it is not a readable .keras archive ({what}). Restore it, or train the run again."
        )
    try:
        return keras.saving.load_model(path, **kwargs)
    except (KeyError, OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0][:200]
        raise DamagedFileError(
            f"{path} is damaged: it is not a readable .keras archive ({type(error).__name__}: {reason}). "
            "Restore it, or train the run again."
        ) from None


def _is_zip_with_config(path):
    try:
        with zipfile.ZipFile(path) as archive:
            json.loads(archive.read("config.json"))
            return True
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model, the finished epoch count and the noise states after each epoch."""

    def __init__(self, run_dir, previous_seconds=0.0):
        super().__init__()
        self.folder = os.path.join(run_dir, FOLDER)
        self.previous_seconds = previous_seconds
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.folder, exist_ok=True)
        commit = atomic_files.Commit(self.folder)
        self.model.save(commit.stage("model.keras"))
        seconds = self.previous_seconds + time.time() - self.started
        values = {"epochs_done": epoch + 1, "wall_time_seconds": seconds, "noise_states": noise_states(self.model)}
        write_json(commit.stage("state.json"), values)
        commit.apply()


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
