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

from keras_glr import atomic_files
from keras_glr import callbacks as callbacks_module
from keras_glr import checkpoints
from keras_glr import data as data_module
from keras_glr import distribution
from keras_glr import export
from keras_glr import memory
from keras_glr import run_lock
from keras_glr.checkpoints import DamagedFileError
from keras_glr.checkpoints import read_json
from keras_glr.checkpoints import write_json
from keras_glr.run_config import RunConfig
from keras_glr.run_config import build_model
from keras_glr.run_config import describe_gradient

#: The SavedModel version a new run exports (TF Serving serves the highest); a continued run adds the next one.
EXPORT_VERSION = 1


class RunError(ValueError):
    """A run cannot start as asked (name taken, nothing to resume, folder unwritable, ...)."""


@dataclasses.dataclass
class RunResult:
    run_dir: str
    metrics: dict
    resumed_from_epoch: int
    finished: bool
    saved_model: str = None  # the SavedModel version this run wrote last
    input_shape: tuple = None  # what its signatures take, after the batch axis


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


SUMMARY_FIELDS = {"status": str, "epochs": int, "metrics": dict}


def _summary(run_dir):
    """run.json as a dict (None when the run has not finished). Raises DamagedFileError."""
    path = os.path.join(run_dir, "run.json")
    return read_json(path, SUMMARY_FIELDS) if os.path.exists(path) else None


def read_config(run_dir):
    """The `RunConfig` stored in `run_dir/config.json`. Raises FileNotFoundError or DamagedFileError."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} holds no config.json; is it a glr-train run directory?")
    values = read_json(path)
    try:
        config = RunConfig.from_json(values)
        config.validate()
    except (TypeError, ValueError) as error:
        reason = str(error).strip().rstrip(".")
        raise DamagedFileError(f"{path} is damaged: {reason}. Restore it, or start the run again with --overwrite.") from None
    return config


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
    previous = read_config(run_dir)
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
    """Creates `folder` and checks that a file can be written there (`make_folder`, keeping what it made).

    Raises RunError "Cannot write to {what}{folder}: {reason}. {hint}".
    """
    make_folder(folder, what, hint)


def make_folder(folder, what="", hint=""):
    """Creates `folder` (and missing parents) and checks that a file can be written there.

    Returns the folders it created, outermost first, so that a start that
    fails can remove them again. Raises RunError
    "Cannot write to {what}{folder}: {reason}. {hint}".
    """
    shown, folder, created, missing = folder, os.path.abspath(str(folder)), [], []
    parent = folder
    while not os.path.exists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    try:
        for path in reversed(missing):
            os.mkdir(path)
            created.append(path)
        if not os.path.isdir(folder):
            raise NotADirectoryError(20, "it is a file, not a folder")
        probe = os.path.join(folder, f".write_test_{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        remove_if_empty(created)
        raise RunError(f"Cannot write to {what}{shown}: {error.strerror}. {hint}".strip()) from None
    return created


def remove_if_empty(created):
    """Removes the folders `make_folder` created (innermost first) as long as they are empty."""
    for folder in reversed(created):
        try:
            os.rmdir(folder)
        except OSError:
            return


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
        progress.created = make_folder(root, hint="Choose a writable --out directory.")
    try:
        if chief:
            progress.lock = _lock_and_recover(str(root), progress.name)
        _IN_PROGRESS.append(progress)
        return _train(config, progress, resume, overwrite, verbose, callbacks, record, strategy, chief)
    finally:
        if progress in _IN_PROGRESS:
            _IN_PROGRESS.remove(progress)
        progress.release()


def _train(config, progress, resume, overwrite, verbose, callbacks, record, strategy, chief):
    root, run_dir = progress.root, progress.run_dir
    first_epoch = check_start(config, root, resume, overwrite)
    summary = _summary(run_dir) if resume else None
    if summary and summary.get("status") == "finished" and summary["epochs"] == config.epochs:
        shape = tuple((summary.get("data") or {}).get("input_shape") or ())
        return RunResult(run_dir, summary["metrics"], summary["epochs"], True, _saved_model(run_dir, summary), shape)
    replacing = overwrite and exists(root, progress.name)
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
        progress.replace = atomic_files.Commit(root, journal=_swap_journal(progress.name))
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
        elif self.fresh and not exists(self.root, self.name):
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def release(self):
        if self.lock:
            self.lock.release()
            self.lock = None
        remove_if_empty(self.created)
        self.created = []


def interrupted():
    """Stops the runs in progress after Ctrl-C, keeping what is whole; returns one sentence on what was kept."""
    if not _IN_PROGRESS:
        return "Nothing was written."
    progress = _IN_PROGRESS[-1]
    if progress.replace:
        message = f"The run {progress.name!r} is unchanged; the new one that was to replace it is discarded."
    elif exists(progress.root, progress.name):
        message = "Finished epochs are saved: add --resume to the same command to continue."
    else:
        message = "No epoch had finished, so nothing was kept."
    for progress in list(_IN_PROGRESS):
        progress.discard()
        progress.release()
    return message


def recover(root, name):
    """Finishes or undoes what an interruption left half-done in run `name`: an overwrite, a final save, a checkpoint.

    Call it holding the run's lock. Each step either completes a commit that
    had begun (its journal written) or removes what was staged for one that
    had not, so the run is then the old one or the new one, whole.
    """
    root, run_dir = str(root), os.path.join(str(root), name)
    atomic_files.recover(root, _swap_journal(name), leftovers=[os.path.basename(atomic_files.staged(run_dir))])
    if os.path.isdir(run_dir):
        atomic_files.roll_forward(run_dir)  # a final save under way
        atomic_files.roll_forward(os.path.join(run_dir, "saved_model"))  # a glr-export under way
        checkpoints.recover(run_dir)
        atomic_files.recover(run_dir)  # then what was staged for a commit that never began


@contextlib.contextmanager
def holding(run_dir):
    """Holds the lock of the run in `run_dir` (and recovers it) while the block writes into it.

    Raises RunInUseError when another process holds it, RunError when its
    folder is not writable.
    """
    lock = _lock_and_recover(*os.path.split(os.path.abspath(str(run_dir))))
    try:
        yield
    finally:
        lock.release()


def _lock_and_recover(root, name):
    """The run's lock, acquired, with what an interruption left half-done recovered. Raises RunInUseError, RunError."""
    try:
        lock = run_lock.RunLock(root, name).acquire()
    except OSError as error:
        raise RunError(f"Cannot write to {root}: {error.strerror}. Pass --out to write elsewhere.") from None
    try:
        recover(root, name)
    except BaseException:
        lock.release()
        raise
    return lock


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
    into_run = os.path.isdir(model) and _inside(base, model)
    created = make_folder(base, hint="Pass --out to write the versions elsewhere." if into_run else "Choose a writable --out.")
    try:
        with holding(model) if into_run else contextlib.nullcontext():
            version = version or export.next_version(base)
            if os.path.exists(os.path.join(base, str(version))) and not overwrite:
                raise ValueError(f"Version {version} already exists in {base}. Pass --overwrite to replace it, or another --version.")
            loaded = checkpoints.load_model(model_path)
            try:
                return export.export_version(loaded, base, version, noisy_passes, replace=overwrite)
            except (OSError, tf.errors.OpError) as error:
                raise RunError(f"Cannot write version {version} to {base}: {_reason(error)}. Free some space, or choose another --out.") from None
    except BaseException:
        remove_if_empty(created)
        raise


def _inside(path, folder):
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return os.path.commonpath([path, folder]) == folder


def _swap_journal(name):
    return f".{name}.commit.json"


def _saved_model(run_dir, summary):
    return os.path.join(run_dir, summary.get("saved_model", os.path.join("saved_model", str(EXPORT_VERSION))))


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
    """Evaluates the trained model and commits model.keras, the next SavedModel version, the curves and run.json together.

    Returns (metrics, the SavedModel version's path in the run). Raises RunError when
    they cannot be written (a full disk): nothing of the run changes then.
    """
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
        raise RunError(
            f"Cannot write the finished run to {run_dir}: {_reason(error)}. Its finished epochs are saved: free some "
            "space (or make the folder writable) and add --resume to the same command to write it."
        ) from None
    return metrics, served


def _reason(error):
    """A one-line reason for an OSError or a TensorFlow error."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = getattr(error, "message", None) or str(error)
    return (text.strip().splitlines() or [type(error).__name__])[0][:300]
