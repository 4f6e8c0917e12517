"""A run's folder on disk: whether it holds a run, whether a start may take it, and keeping it whole.

A run exists once an epoch has finished. One process at a time holds a run
(`run_lock`); whoever takes the lock first recovers what an interruption
left half-done (`recover`: an overwrite, a final save, a checkpoint), so the
run is then the old one or the new one, whole.
"""

import contextlib
import os

from keras_glr._src import atomic_files
from keras_glr._src import checkpoints
from keras_glr._src import run_lock
from keras_glr._src.json_files import read_json
from keras_glr._src.run_config import read_config


class RunError(ValueError):
    """A run cannot start as asked (name taken, nothing to resume, folder unwritable, ...)."""


def exists(root, name):
    """True when `root/name` holds a run: a finished epoch or a finished run."""
    run_dir = os.path.join(root, name)
    return checkpoints.epochs_done(run_dir) > 0 or os.path.exists(os.path.join(run_dir, "run.json"))


SUMMARY_FIELDS = {"status": str, "epochs": int, "metrics": dict}


def read_summary(run_dir):
    """run.json as a dict (None when the run has not finished). Raises DamagedFileError."""
    path = os.path.join(run_dir, "run.json")
    return read_json(path, SUMMARY_FIELDS) if os.path.exists(path) else None


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
    done = max(checkpoints.epochs_done(run_dir), (read_summary(run_dir) or {}).get("epochs", 0))
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


def recover(root, name):
    """Finishes or undoes what an interruption left half-done in run `name`: an overwrite, a final save, a checkpoint.

    Call it holding the run's lock. Each step either completes a commit that
    had begun (its journal written) or removes what was staged for one that
    had not, so the run is then the old one or the new one, whole.
    """
    root, run_dir = str(root), os.path.join(str(root), name)
    atomic_files.recover(root, swap_journal(name), leftovers=[os.path.basename(atomic_files.staged(run_dir))])
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
    lock = lock_and_recover(*os.path.split(os.path.abspath(str(run_dir))))
    try:
        yield
    finally:
        lock.release()


def lock_and_recover(root, name):
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


def inside(path, folder):
    """Whether `path` is `folder` or lies under it."""
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return os.path.commonpath([path, folder]) == folder


def swap_journal(name):
    """The journal of an overwrite of run `name`, in its root: `.<name>.commit.json`."""
    return f".{name}.commit.json"


def reason(error):
    """A one-line reason for an OSError or a TensorFlow error."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = getattr(error, "message", None) or str(error)
    return (text.strip().splitlines() or [type(error).__name__])[0][:300]
