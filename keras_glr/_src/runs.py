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
missing data, an error in the first epoch) leaves nothing behind.
`resume=True` continues the last finished epoch with the optimizer state,
the noise generators' state and the data order of an uninterrupted run; with
more `epochs` it continues a finished run and adds saved_model/<n+1>/.

A run is never lost or half-replaced: one process at a time holds it
(`run_lock`); `overwrite=True` replaces the old run only once the new one
has finished; the finished files change together (`atomic_files`), so an
interruption at any moment leaves the old run or the new one, whole.
"""

import contextlib
import dataclasses
import os
import platform
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from keras_glr import data as data_module
from keras_glr._src import atomic_files
from keras_glr._src import callbacks as callbacks_module
from keras_glr._src import checkpoints
from keras_glr._src import distribution
from keras_glr._src import export
from keras_glr._src import memory
from keras_glr._src import registry
from keras_glr._src import run_folders
from keras_glr._src import version
from keras_glr._src.build import build_model
from keras_glr._src.checkpoints import model_file
from keras_glr._src.json_files import write_json
from keras_glr._src.run_config import describe_gradient

#: The SavedModel version a new run exports (TF Serving serves the highest); a continued run adds the next one.
EXPORT_VERSION = 1


@dataclasses.dataclass
class RunResult:
    run_dir: str
    metrics: dict
    resumed_from_epoch: int
    finished: bool
    saved_model: str = None  # the SavedModel version this run wrote last
    input_shape: tuple = None  # what its signatures take, after the batch axis


def load_data(config):
    """The configured dataset's `data.Splits` (seeded, batched `tf.data` pipelines)."""
    return data_module.load(
        config.dataset,
        batch_size=config.batch_size,
        image_size=config.image_size,
        flatten=registry.get(config.arch).flat_inputs,
        seed=config.seed,
        validation_fraction=config.validation_fraction,
        data_dir=config.data_dir,
    )


def train(
    config, root="saved_models", resume=False, overwrite=False, verbose="auto", callbacks=(), record=None, strategy=None
):
    """Trains `config` into `root/<run name>/` and returns a `RunResult`.

    The run holds an exclusive lock (`run_lock`) from its start check to its
    end: a second process on the same run is refused. A new run trains in
    place (an interrupted one continues with `resume`); `overwrite` trains in
    a staging sibling and replaces the old run only once the new one is
    finished, so the old run stays whole until then; continuing a finished
    run adds its model as the next SavedModel version and keeps the earlier
    ones. The finished files (model.keras, run.json, the SavedModel version,
    the curves) are committed together (`atomic_files`).

    Args:
        config: a `RunConfig`.
        root: folder that holds run directories.
        resume: continue the run with this name from its last finished epoch
            (an error when there is none). A finished run continues when
            `config.epochs` is larger; otherwise it is returned as it is.
        overwrite: replace an existing run with this name (only once the new
            one has finished).
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
        RunInUseError: another process holds the run.
        DataUnavailableError: the dataset is not on this machine.
    """
    config.validate()
    strategy = strategy or tf.distribute.get_strategy()
    chief = distribution.is_chief(strategy)
    progress = _Progress(config.name(), str(root))
    if chief:
        progress.created = run_folders.make_folder(root, hint="Choose a writable --out directory.")
    try:
        if chief:
            progress.lock = run_folders.lock_and_recover(str(root), progress.name)
        _IN_PROGRESS.append(progress)
        return _train(config, progress, resume, overwrite, verbose, callbacks, record, strategy, chief)
    finally:
        if progress in _IN_PROGRESS:
            _IN_PROGRESS.remove(progress)
        progress.release()


def _train(config, progress, resume, overwrite, verbose, callbacks, record, strategy, chief):
    root, run_dir = progress.root, progress.run_dir
    first_epoch = run_folders.check_start(config, root, resume, overwrite)
    summary = run_folders.read_summary(run_dir) if resume else None
    if summary and summary.get("status") == "finished" and summary["epochs"] == config.epochs:
        shape = tuple((summary.get("data") or {}).get("input_shape") or ())
        return RunResult(run_dir, summary["metrics"], summary["epochs"], True, _saved_model(run_dir, summary), shape)
    replacing = overwrite and run_folders.exists(root, progress.name)
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    splits = load_data(config)
    with strategy.scope():
        if first_epoch:
            model = checkpoints.restore(run_dir)
            previous_time = checkpoints.state(run_dir)["wall_time_seconds"]
        else:
            model, previous_time = build_model(config, splits.info, splits.steps_per_epoch), 0.0
    memory.check_step(model, config.batch_size)  # before anything is written: a step that cannot fit is refused
    if not chief:
        written = tempfile.mkdtemp(prefix="keras_glr_worker_")
    elif replacing:  # the old run stays whole until the new one replaces it
        progress.replace = atomic_files.Commit(root, journal=run_folders.swap_journal(progress.name))
        written = progress.replace.stage(progress.name)
        os.makedirs(written)
    else:
        written = run_dir
        if not first_epoch and os.path.isdir(run_dir):  # leftovers of a start that never finished an epoch
            shutil.rmtree(run_dir)
        progress.fresh = not first_epoch
        os.makedirs(run_dir, exist_ok=True)
    if chief:
        write_json(os.path.join(written, "config.json"), config.to_json())
    log_path = os.path.join(written, "training_log.csv")
    all_callbacks = [
        callbacks_module.StopOnNaN(),  # before the checkpoint: an epoch that ends in NaN is not saved
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
        metrics, served = _finish(config, model, splits, written, log_path, elapsed, first_epoch, record or {})
        if progress.replace:
            progress.replace.apply()
            progress.replace = None
    except BaseException:
        if chief:
            progress.discard()
        raise
    finally:
        if not chief:
            shutil.rmtree(written, ignore_errors=True)
    return RunResult(run_dir, metrics, first_epoch, True, os.path.join(run_dir, served), tuple(splits.info.input_shape))


#: Runs this process is training now (`interrupted` reads them when Ctrl-C stops the process).
_IN_PROGRESS = []


@dataclasses.dataclass(eq=False)
class _Progress:
    """What a run in progress has written, and how to undo what would be left half-done."""

    name: str
    root: str
    created: list = dataclasses.field(default_factory=list)  # folders made for it (removed again if left empty)
    lock: object = None
    replace: object = None  # the `atomic_files.Commit` that replaces an old run (overwrite)
    fresh: bool = False  # a new run training in place

    @property
    def run_dir(self):
        return os.path.join(self.root, self.name)

    def discard(self):
        """Removes what a run that will not finish leaves, keeping whatever was there before and finished epochs."""
        if self.replace:
            self.replace.discard()
        elif self.fresh and not run_folders.exists(self.root, self.name):
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def release(self):
        if self.lock:
            self.lock.release()
            self.lock = None
        run_folders.remove_if_empty(self.created)
        self.created = []


def interrupted():
    """Stops the runs in progress after Ctrl-C, keeping what is whole; returns one sentence on what was kept."""
    if not _IN_PROGRESS:
        return "Nothing was written."
    progress = _IN_PROGRESS[-1]
    if progress.replace:
        message = f"The run {progress.name!r} is unchanged; the new one that was to replace it is discarded."
    elif run_folders.exists(progress.root, progress.name):
        message = "Finished epochs are saved: add --resume to the same command to continue."
    else:
        message = "No epoch had finished, so nothing was kept."
    for progress in list(_IN_PROGRESS):
        progress.discard()
        progress.release()
    return message


def export_version(model, base, version=None, noisy_passes=32, overwrite=False):
    """Writes the model of a run directory or .keras file `model` as SavedModel version `version` under `base`.

    `version` None is one more than the highest under `base`. Writing into a
    run directory holds the run's lock. Every check comes before the model
    is loaded; a failure leaves no new folder behind. Returns the version's
    path. Raises ValueError, RunError, DamagedFileError, FileNotFoundError.
    """
    model_path = model_file(model)
    if os.path.exists(base) and not os.path.isdir(base):
        raise ValueError(f"--out {base} is a file; expected a folder to hold version folders.")
    into_run = os.path.isdir(model) and run_folders.inside(base, model)
    created = run_folders.make_folder(
        base, hint="Pass --out to write the versions elsewhere." if into_run else "Choose a writable --out."
    )
    try:
        with run_folders.holding(model) if into_run else contextlib.nullcontext():
            version = version or export.next_version(base)
            if os.path.exists(os.path.join(base, str(version))) and not overwrite:
                raise ValueError(
                    f"Version {version} already exists in {base}. Pass --overwrite to replace it, or another --version."
                )
            loaded = checkpoints.load_model(model_path)
            try:
                return export.export_version(loaded, base, version, noisy_passes, replace=overwrite)
            except (OSError, tf.errors.OpError) as error:
                raise run_folders.RunError(
                    f"Cannot write version {version} to {base}: {run_folders.reason(error)}. Free some space, or "
                    "choose another --out."
                ) from None
    except BaseException:
        run_folders.remove_if_empty(created)
        raise


def _saved_model(run_dir, summary):
    return os.path.join(run_dir, summary.get("saved_model", os.path.join("saved_model", str(EXPORT_VERSION))))


def _versions():
    return {
        "keras_glr": version.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _finish(config, model, splits, run_dir, log_path, wall_time, first_epoch, record):
    """Evaluates the trained model and commits model.keras, the next SavedModel version, the curves and run.json
    together.

    Returns (metrics, the SavedModel version's path in the run). Raises RunError when
    they cannot be written (a full disk): nothing of the run changes then.
    """
    from keras_glr._src import plots

    test_loss, test_accuracy = model.evaluate(splits.test, verbose=0)
    if config.init_from:  # where the run started, and how well that network did before this training
        start = build_model(config, splits.info, splits.steps_per_epoch)
        record = {
            **record,
            "init_from": os.path.abspath(config.init_from),
            "initial_test_accuracy": float(start.evaluate(splits.test, verbose=0)[1]),
        }
    history = plots.read_log(log_path)
    last = {k: v[-1] for k, v in history.items() if v}
    metrics = {
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        **{k: float(v) for k, v in last.items() if k != "epoch"},
    }
    version = export.next_version(os.path.join(run_dir, "saved_model"))
    served = os.path.join("saved_model", str(version))
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
        "saved_model": served,
        "wall_time_seconds": round(wall_time, 2),
        "data": dataclasses.asdict(splits.info),
        "versions": _versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    commit = atomic_files.Commit(run_dir)
    try:
        model.save(commit.stage("model.keras"))
        export.export_saved_model(model, commit.stage(served), config.noisy_passes)
        plots.plot_training_curves(history, commit.stage("training_curves.png"), title=config.name())
        write_json(commit.stage("run.json"), summary)
        commit.apply()
    except (OSError, tf.errors.OpError) as error:
        commit.discard()
        raise run_folders.RunError(
            f"Cannot write the finished run to {run_dir}: {run_folders.reason(error)}. Its finished epochs are saved: "
            "free some "
            "space (or make the folder writable) and add --resume to the same command to write it."
        ) from None
    return metrics, served
