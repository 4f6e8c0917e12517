"""A run directory is never lost or half-replaced: locks, --overwrite, continued runs, interruptions, a full disk."""

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import pytest

from keras_glr import runs
from keras_glr._src import atomic_files
from keras_glr._src import export
from keras_glr._src import run_lock
from tests.interruptions import Interrupted
from tests.interruptions import interrupt_at

SMALL = dict(hidden=(8,), copies=8, epochs=1, batch_size=100, noisy_passes=2)


def _fingerprint(folder):
    """{relative path: sha256} of every file under `folder` (tensorboard's event files aside: they only grow)."""
    found = {}
    for where, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(where, name)
            if "tensorboard" not in path:
                with open(path, "rb") as f:
                    found[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch run with two more SavedModel versions from glr-export (1, 2, 3), kept pristine."""
    root = tmp_path_factory.mktemp("pristine")
    runs.train(runs.RunConfig(run_name="run", **SMALL), str(root), verbose=0)
    for _ in range(2):
        runs.export_version(str(root / "run"), str(root / "run" / "saved_model"), noisy_passes=2)
    return root / "run"


#: What a continued run moves ahead epoch by epoch; the finished model's files are the rest, and they change together.
PROGRESS = ("checkpoint", "training_log.csv", "config.json")


def _finished_files(fingerprint):
    return {k: v for k, v in fingerprint.items() if not k.startswith(PROGRESS)}


def _copy(finished, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(finished, root / "run")
    return root


def _leftovers(root):
    return [n for n in os.listdir(root) if n.startswith(".")]


def test_continuing_a_finished_run_adds_the_next_version_and_keeps_every_earlier_one(finished, tmp_path):
    root = _copy(finished, tmp_path)
    before = _fingerprint(root / "run" / "saved_model")
    result = runs.train(runs.RunConfig(run_name="run", **dict(SMALL, epochs=2)), str(root), resume=True, verbose=0)
    assert sorted(export.versions(root / "run" / "saved_model")) == [1, 2, 3, 4]
    after = _fingerprint(root / "run" / "saved_model")
    assert {k: v for k, v in after.items() if not k.startswith("4")} == before
    summary = json.loads((root / "run" / "run.json").read_text())
    assert summary["epochs"] == 2 and summary["saved_model"] == os.path.join("saved_model", "4")
    assert result.saved_model == str(root / "run" / "saved_model" / "4")
    assert _leftovers(root) == [] and not [n for n in os.listdir(root / "run") if n.startswith(".")]


def _interrupt_commit_at(monkeypatch, step, folder):
    """Interrupts the `step`-th file operation of the final commit of the run in `folder` (-1: before it begins)."""
    real_apply = atomic_files.Commit.apply

    def apply(self):
        if os.path.abspath(self.folder) != os.path.abspath(folder):
            return real_apply(self)
        if step < 0:
            raise Interrupted
        with monkeypatch.context() as patch:
            interrupt_at(patch, step, ("replace", "rename", "remove"))
            real_apply(self)

    monkeypatch.setattr(atomic_files.Commit, "apply", apply)


@pytest.mark.slow  # eight continued trainings (30 s): the default suite stays under 10 minutes on 2 cores
def test_an_interruption_at_every_step_of_the_final_save_leaves_the_old_run_or_the_new_one(
    finished, tmp_path, monkeypatch
):
    old = _fingerprint(finished)
    seen = set()
    for step in range(-1, 7):
        root = _copy(finished, tmp_path / str(step))
        with monkeypatch.context() as patch:
            _interrupt_commit_at(patch, step, root / "run")
            try:
                runs.train(runs.RunConfig(run_name="run", **dict(SMALL, epochs=2)), str(root), resume=True, verbose=0)
                seen.add("uninterrupted")
            except Interrupted:
                pass
        runs.recover(str(root), "run")  # what the next glr-train or glr-export does first
        now = _fingerprint(root / "run")
        summary = json.loads((root / "run" / "run.json").read_text())
        if summary["epochs"] == 1:
            assert _finished_files(now) == _finished_files(old), step
            seen.add("old")
        else:
            assert sorted(export.versions(root / "run" / "saved_model")) == [1, 2, 3, 4], step
            assert now["model.keras"] != old["model.keras"] and now["run.json"] != old["run.json"], step
            assert {k: v for k, v in now.items() if k.startswith("saved_model/1")} == {
                k: v for k, v in old.items() if k.startswith("saved_model/1")
            }
            seen.add("new")
        assert not [p for p in now if os.path.basename(p).startswith((".partial-", ".old-", ".commit"))], (step, now)
        resumed = runs.train(runs.RunConfig(run_name="run", **dict(SMALL, epochs=2)), str(root), resume=True, verbose=0)
        assert json.loads((root / "run" / "run.json").read_text())["epochs"] == 2 and resumed.finished
    assert {"old", "new"} <= seen


class _FailIn(keras.callbacks.Callback):
    def __init__(self, error):
        super().__init__()
        self.error = error

    def on_train_batch_end(self, batch, logs=None):
        raise self.error


@pytest.mark.parametrize("error", [RuntimeError("the first epoch failed"), KeyboardInterrupt()])
def test_an_overwrite_that_fails_or_is_stopped_keeps_the_old_run_whole(finished, tmp_path, error):
    root = _copy(finished, tmp_path)
    old = _fingerprint(root / "run")
    with pytest.raises(type(error)):
        runs.train(
            runs.RunConfig(run_name="run", **SMALL), str(root), overwrite=True, verbose=0, callbacks=[_FailIn(error)]
        )
    assert _fingerprint(root / "run") == old
    assert _leftovers(root) == []


def test_an_overwrite_replaces_the_old_run_only_when_the_new_one_is_finished(finished, tmp_path):
    root = _copy(finished, tmp_path)
    old = _fingerprint(root / "run")

    class Check(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):  # while the new run trains, the old one is whole in its place
            assert _fingerprint(root / "run") == old

    runs.train(
        runs.RunConfig(run_name="run", **dict(SMALL, seed=1)), str(root), overwrite=True, verbose=0, callbacks=[Check()]
    )
    summary = json.loads((root / "run" / "run.json").read_text())
    assert summary["seed"] == 1 and export.versions(root / "run" / "saved_model") == [1]
    assert _leftovers(root) == []


def test_a_full_disk_during_the_final_save_changes_nothing_and_resume_finishes_it(finished, tmp_path, monkeypatch):
    root = _copy(finished, tmp_path)
    old = _fingerprint(root / "run")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(export, "export_saved_model", full)
        with pytest.raises(runs.RunError, match="No space left on device.*add --resume"):
            runs.train(runs.RunConfig(run_name="run", **dict(SMALL, epochs=2)), str(root), resume=True, verbose=0)
    now = _fingerprint(root / "run")
    assert _finished_files(now) == _finished_files(old)
    result = runs.train(runs.RunConfig(run_name="run", **dict(SMALL, epochs=2)), str(root), resume=True, verbose=0)
    assert result.resumed_from_epoch == 2 and export.versions(root / "run" / "saved_model") == [1, 2, 3, 4]


_HOLD = (
    "import importlib.util, sys, time\n"
    "spec = importlib.util.spec_from_file_location('run_lock', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
    "module.RunLock(sys.argv[2], 'run').acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_run_held_by_another_process_is_refused_until_that_process_ends(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, run_lock.__file__, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            run_lock.RunInUseError, match=rf"'run' in {tmp_path} is in use by another process \(pid {holder.pid}:"
        ):
            runs.train(runs.RunConfig(run_name="run", **SMALL), str(tmp_path), verbose=0)
        assert sorted(os.listdir(tmp_path)) == [".run.lock"]  # the holder's lock, and nothing of ours
        holder.send_signal(signal.SIGKILL)  # the OS releases the lock of a process that dies
        holder.wait(timeout=30)
    finally:
        holder.kill()
    with run_lock.RunLock(tmp_path, "run"):
        pass
    assert os.listdir(tmp_path) == []


def _environment():
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


FAST = ["--copies", "8", "--hidden", "8", "--batch-size", "100", "--noisy-passes", "2", "--quiet"]


@pytest.mark.slow  # two processes start (20 s)
def test_two_glr_train_on_one_run_name_the_second_is_refused_while_the_first_trains(tmp_path):
    command = [
        sys.executable,
        "-m",
        "keras_glr_apps.train",
        *FAST,
        "--epochs",
        "200",
        "--out",
        str(tmp_path),
        "--run-name",
        "run",
    ]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environment())
    try:
        deadline = time.time() + 120
        while not (tmp_path / ".run.lock").exists():
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.05)
        second = subprocess.run(command, capture_output=True, text=True, env=_environment(), timeout=120)
        assert second.returncode == 2
        assert second.stderr.splitlines() == [
            f"glr-train: error: The run 'run' in {tmp_path} is in use by another process (pid {first.pid}: "
            f"train.py {' '.join(command[3:])}). Wait for it to finish, or choose another --run-name."
        ]
        assert first.poll() is None
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert "Finished epochs are saved" in err
    assert json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["epochs_done"] >= 1
    assert sorted(os.listdir(tmp_path)) == ["run"]


@pytest.mark.slow  # five processes continue a run and are stopped at moments of the final save (50 s)
@pytest.mark.parametrize("delay", [0.0, 0.1, 0.3, 0.6, 1.0])
def test_ctrl_c_during_the_final_save_of_a_continued_run_leaves_the_old_run_or_the_new_one(finished, tmp_path, delay):
    root = _copy(finished, tmp_path)
    old = _fingerprint(root / "run")
    command = [
        sys.executable,
        "-m",
        "keras_glr_apps.train",
        *FAST,
        "--epochs",
        "2",
        "--out",
        str(root),
        "--run-name",
        "run",
        "--resume",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environment())
    state = root / "run" / "checkpoint" / "state.json"
    try:
        deadline = time.time() + 120
        while not (state.exists() and json.loads(state.read_text())["epochs_done"] == 2):
            assert process.poll() is None and time.time() < deadline
            time.sleep(0.01)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    finally:
        process.kill()
    runs.recover(str(root), "run")
    now = _fingerprint(root / "run")
    epochs = json.loads((root / "run" / "run.json").read_text())["epochs"]
    if epochs == 1:
        assert _finished_files(now) == _finished_files(old)
    else:
        assert now["model.keras"] != old["model.keras"] and export.versions(root / "run" / "saved_model") == [
            1,
            2,
            3,
            4,
        ]
    assert {k: v for k, v in now.items() if k.startswith("saved_model/1")} == {
        k: v for k, v in old.items() if k.startswith("saved_model/1")
    }
    assert not [p for p in now if os.path.basename(p).startswith((".partial-", ".old-", ".commit"))]


@pytest.mark.slow  # three processes overwrite a run and are stopped (30 s)
@pytest.mark.parametrize("moment", ["started", "one epoch", "two epochs"])
def test_ctrl_c_during_an_overwrite_keeps_the_old_run_whole(finished, tmp_path, moment):
    root = _copy(finished, tmp_path)
    old = _fingerprint(root / "run")
    command = [
        sys.executable,
        "-m",
        "keras_glr_apps.train",
        *FAST,
        "--epochs",
        "50",
        "--out",
        str(root),
        "--run-name",
        "run",
        "--overwrite",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environment())
    staging = root / ".partial-run"
    ready = {
        "started": lambda: (staging / "config.json").exists(),
        "one epoch": lambda: (staging / "checkpoint" / "state.json").exists(),
        "two epochs": lambda: (
            (staging / "checkpoint" / "state.json").exists()
            and json.loads((staging / "checkpoint" / "state.json").read_text())["epochs_done"] >= 2
        ),
    }[moment]
    try:
        deadline = time.time() + 120
        while not ready():
            assert process.poll() is None and time.time() < deadline
            time.sleep(0.01)
        assert _fingerprint(root / "run") == old  # the old run is in place while the new one trains
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert (
        err.strip().splitlines()[-1]
        == "glr-train: interrupted. The run 'run' is unchanged; the new one that was to replace it is discarded."
    )
    assert _fingerprint(root / "run") == old
    assert _leftovers(root) == []
