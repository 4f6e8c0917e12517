"""Training runs: one configuration in, one run directory out.

    saved_models/<run-name>/
        config.json          the configuration (written once the run can start)
        model.keras          the trained Keras model (optimizer included)
        saved_model/1/       TF SavedModel laid out for TF Serving: serving_default, serve_noisy
        run.json             configuration, final metrics, versions, seed, time
        training_log.csv     one row per epoch
        training_curves.png  loss and accuracy against epoch
        tensorboard/         TensorBoard logs
        checkpoint/          last finished epoch, for `resume=True`

A run exists once an epoch has finished. A start that fails (bad options,
missing data, an error in the first epoch) leaves nothing that blocks the
corrected command. `resume=True` continues the last finished epoch with the
optimizer state, the noise generators' state and the data order of an
uninterrupted run; with more `epochs` it continues a finished run.
"""

import dataclasses
import os
import platform
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from keras_glr import checkpoints
from keras_glr import data as data_module
from keras_glr import distribution
from keras_glr.checkpoints import read_json
from keras_glr.checkpoints import write_json
from keras_glr.run_config import RunConfig
from keras_glr.run_config import build_model
from keras_glr.run_config import describe_gradient

#: The SavedModel version a run exports (TF Serving serves the highest).
EXPORT_VERSION = 1


class RunError(ValueError):
    """A run cannot start as asked (name taken, nothing to resume, folder unwritable, ...)."""


@dataclasses.dataclass
class RunResult:
    run_dir: str
    metrics: dict
    resumed_from_epoch: int
    finished: bool


def exists(root, name):
    """True when `root/name` holds a run: a finished epoch or a finished run."""
    run_dir = os.path.join(root, name)
    return checkpoints.epochs_done(run_dir) > 0 or os.path.exists(os.path.join(run_dir, "run.json"))


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


def _summary(run_dir):
    path = os.path.join(run_dir, "run.json")
    return read_json(path) if os.path.exists(path) else None


def check_start(config, root, resume=False, overwrite=False):
    """Checks that `config` may start (or resume) in `root`; returns the epochs to skip.

    Raises RunError when the name is taken (without `resume` / `overwrite`),
    when `resume` finds nothing to continue, or when the configuration differs
    from the run's in anything but a larger `epochs`.
    """
    name, run_dir = config.name(), os.path.join(root, config.name())
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise RunError(f"{run_dir} exists and is not a directory; choose another --run-name or --out.")
    if resume and overwrite:
        raise RunError("resume and overwrite contradict each other; pass one of them.")
    started = os.path.exists(os.path.join(run_dir, "config.json"))
    if resume and not started:
        raise RunError(f"There is no run named {name!r} in {root} to resume. Start it without --resume.")
    if not exists(root, name) and not resume:
        return 0  # nothing there, or what an interrupted start left before its first epoch
    if overwrite:
        return 0
    if not resume:
        raise RunError(
            f"A run named {name!r} already exists in {root}. Pass --resume to "
            "continue it, --overwrite to replace it, or choose another --run-name."
        )
    previous = RunConfig.from_json(read_json(os.path.join(run_dir, "config.json")))
    changed = [k for k in config.differences(previous) if k != "epochs"]
    if changed:
        raise RunError(
            f"Cannot resume {run_dir}: its configuration differs in {changed}. "
            "Resume with the same options (only --epochs may grow), or choose a new --run-name."
        )
    done = max(checkpoints.epochs_done(run_dir), (_summary(run_dir) or {}).get("epochs", 0))
    if config.epochs < done:
        raise RunError(f"Cannot resume {run_dir} with --epochs {config.epochs}: it has already trained {done} epochs.")
    if config.epochs != previous.epochs and config.schedule != "constant":
        raise RunError(
            f"Cannot change the epochs of {run_dir}: its {config.schedule} learning-rate schedule "
            f"decays over the {previous.epochs} epochs it was started with. Start a new run instead."
        )
    return done


def ensure_writable(folder, what="", hint=""):
    """Creates `folder` and checks that a file can be written there.

    Raises RunError "Cannot write to {what}{folder}: {reason}. {hint}".
    """
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise RunError(f"Cannot write to {what}{folder}: {error.strerror}. {hint}".strip()) from None


def load_data(config):
    """The configured dataset's `data.Splits` (seeded, batched `tf.data` pipelines)."""
    return data_module.load(
        config.dataset,
        batch_size=config.batch_size,
        image_size=config.image_size,
        flatten=config.arch == "mlp",
        seed=config.seed,
        validation_fraction=config.validation_fraction,
        data_dir=config.data_dir,
    )


def train(config, root="saved_models", resume=False, overwrite=False, verbose="auto", callbacks=(), record=None, strategy=None):
    """Trains `config` into `root/<run name>/` and returns a `RunResult`.

    Args:
        config: a `RunConfig`.
        root: folder that holds run directories.
        resume: continue the run with this name from its last finished epoch
            (an error when there is none). A finished run continues when
            `config.epochs` is larger; otherwise it is returned as it is.
        overwrite: replace an existing run with this name (deleted only once
            the new one has its data and model).
        verbose: Keras progress display (1 = progress bar, 2 = a line per
            epoch, 0 = silent, "auto").
        callbacks: extra Keras callbacks, run after the checkpoint.
        record: extra entries for run.json (e.g. {"twin_of": path}).
        strategy: a `tf.distribute.Strategy` (`distribution.make_strategy`);
            None is the current one. `config.batch_size` is the global batch.
            Under several workers every worker runs this call: the chief
            writes `root/<run name>/`, the others write to temporary folders
            they remove, and all read `root` (shared) to resume.

    Raises:
        ValueError / RunError: bad options or an unusable run directory.
        DataUnavailableError: the dataset is not on this machine.
    """
    config.validate()
    strategy = strategy or tf.distribute.get_strategy()
    chief = distribution.is_chief(strategy)
    run_dir = os.path.join(root, config.name())
    first_epoch = check_start(config, root, resume, overwrite)
    summary = _summary(run_dir) if resume else None
    if summary and summary.get("status") == "finished" and summary["epochs"] == config.epochs:
        return RunResult(run_dir, summary["metrics"], summary["epochs"], True)
    if chief:
        ensure_writable(root, hint="Choose a writable --out directory.")
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    splits = load_data(config)
    with strategy.scope():
        if first_epoch:
            model = checkpoints.restore(run_dir)
            previous_time = checkpoints.state(run_dir)["wall_time_seconds"]
        else:
            model, previous_time = build_model(config, splits.info, splits.steps_per_epoch), 0.0
    if not chief:
        written = tempfile.mkdtemp(prefix="keras_glr_worker_")
    else:
        written = run_dir
        if not first_epoch and os.path.isdir(run_dir):  # leftovers of a start that never finished an epoch, or --overwrite
            shutil.rmtree(run_dir)
        ensure_writable(run_dir, hint="Choose a writable --out directory.")
        write_json(os.path.join(run_dir, "config.json"), config.to_json())
    log_path = os.path.join(written, "training_log.csv")
    all_callbacks = [
        checkpoints.EpochCheckpoint(written, previous_time),
        keras.callbacks.CSVLogger(log_path, append=first_epoch > 0),
        keras.callbacks.TensorBoard(os.path.join(written, "tensorboard")),
        *callbacks,
    ]
    try:
        model.fit(
            splits.train_epochs(first_epoch),
            steps_per_epoch=splits.steps_per_epoch,
            epochs=config.epochs,
            initial_epoch=first_epoch,
            validation_data=splits.validation,
            callbacks=all_callbacks,
            shuffle=False,  # the stream is already shuffled from the seed
            verbose=verbose if chief else 0,
        )
        elapsed = previous_time + time.time() - started
        metrics = _finish(config, model, splits, written, log_path, elapsed, first_epoch, record or {})
    except Exception:
        if chief and not exists(root, config.name()):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        if not chief:
            shutil.rmtree(written, ignore_errors=True)
    return RunResult(run_dir, metrics, first_epoch, True)


def _versions():
    import keras_glr

    return {
        "keras_glr": keras_glr.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _finish(config, model, splits, run_dir, log_path, wall_time, first_epoch, record):
    from keras_glr import export
    from keras_glr import plots

    test_loss, test_accuracy = model.evaluate(splits.test, verbose=0)
    if config.init_from:  # where the run started, and how well that network did before this training
        start = build_model(config, splits.info, splits.steps_per_epoch)
        record = {**record, "init_from": os.path.abspath(config.init_from),
                  "initial_test_accuracy": float(start.evaluate(splits.test, verbose=0)[1])}
    history = plots.read_log(log_path)
    last = {k: v[-1] for k, v in history.items() if v}
    metrics = {
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        **{k: float(v) for k, v in last.items() if k != "epoch"},
    }
    model.save(os.path.join(run_dir, "model.keras"))
    saved_model = os.path.join(run_dir, "saved_model")
    if os.path.exists(saved_model):
        shutil.rmtree(saved_model)
    served = export.export_version(model, saved_model, EXPORT_VERSION, config.noisy_passes)
    plots.plot_training_curves(history, os.path.join(run_dir, "training_curves.png"), title=config.name())
    summary = {
        "status": "finished",
        "name": config.name(),
        "config": config.to_json(),
        "metrics": metrics,
        "epochs": config.epochs,
        "resumed_from_epoch": first_epoch,
        "seed": config.seed,
        "gradient": describe_gradient(config),
        **record,
        "saved_model": os.path.relpath(served, run_dir),
        "wall_time_seconds": round(wall_time, 2),
        "data": dataclasses.asdict(splits.info),
        "versions": _versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(os.path.join(run_dir, "run.json"), summary)
    return metrics
