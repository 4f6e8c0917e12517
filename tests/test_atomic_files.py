"""Files committed together: an interruption at any step leaves, once recovered, all old or all new."""

import os

import pytest

from keras_glr._src import atomic_files
from tests.interruptions import Interrupted
from tests.interruptions import interrupt_at


def _tree(folder):
    """{relative path: text} of every file under `folder`."""
    found = {}
    for where, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(where, name)
            with open(path) as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


def _old_run(folder):
    os.makedirs(folder / "saved_model" / "1")
    (folder / "saved_model" / "1" / "saved_model.pb").write_text("v1")
    (folder / "model.keras").write_text("old model")
    (folder / "run.json").write_text("old summary")
    os.makedirs(folder / "plots")
    (folder / "plots" / "curves.png").write_text("old curves")


def _stage_new(folder):
    commit = atomic_files.Commit(folder)
    with open(commit.stage("model.keras"), "w") as f:
        f.write("new model")
    os.makedirs(commit.stage(os.path.join("saved_model", "2")))
    with open(os.path.join(atomic_files.staged(folder / "saved_model" / "2"), "saved_model.pb"), "w") as f:
        f.write("v2")
    os.makedirs(commit.stage("plots"))  # a folder that replaces another
    with open(os.path.join(atomic_files.staged(folder / "plots"), "curves.png"), "w") as f:
        f.write("new curves")
    with open(commit.stage("run.json"), "w") as f:
        f.write("new summary")
    return commit


OLD = {
    "saved_model/1/saved_model.pb": "v1",
    "model.keras": "old model",
    "run.json": "old summary",
    "plots/curves.png": "old curves",
}
NEW = {
    "saved_model/1/saved_model.pb": "v1",
    "saved_model/2/saved_model.pb": "v2",
    "model.keras": "new model",
    "run.json": "new summary",
    "plots/curves.png": "new curves",
}


def test_a_commit_moves_every_staged_path_into_place(tmp_path):
    _old_run(tmp_path)
    _stage_new(tmp_path).apply()
    assert _tree(tmp_path) == NEW
    assert atomic_files.recover(tmp_path) is None


def _count_steps(tmp_path):
    """The file-system operations of one commit (the moments an interruption can fall between)."""
    calls = []
    real = {name: getattr(os, name) for name in ("replace", "rename", "remove", "rmdir", "fsync")}
    for name, function in real.items():

        def counted(*args, _function=function, **kwargs):
            calls.append(1)
            return _function(*args, **kwargs)

        setattr(os, name, counted)
    try:
        _old_run(tmp_path)
        _stage_new(tmp_path).apply()
    finally:
        for name, function in real.items():
            setattr(os, name, function)
    return len(calls)


def test_an_interruption_at_every_step_of_a_commit_leaves_the_old_files_or_the_new_ones(tmp_path, monkeypatch):
    steps = _count_steps(tmp_path / "count")
    assert steps >= 8
    outcomes = set()
    for stop_at in range(steps):
        folder = tmp_path / f"stop{stop_at}"
        _old_run(folder)
        commit = _stage_new(folder)
        with monkeypatch.context() as patch:
            interrupt_at(patch, stop_at)
            with pytest.raises(Interrupted):
                commit.apply()
        atomic_files.recover(folder)
        found = _tree(folder)
        assert found in (OLD, NEW), (stop_at, found)
        assert not [n for n in os.listdir(folder) if n.startswith((".partial-", ".old-", ".commit"))]
        outcomes.add("new" if found == NEW else "old")
    assert outcomes == {"old", "new"}  # the journal's rename is the commit point: before it old, after it new


def test_discard_removes_what_was_staged_and_keeps_the_old_files(tmp_path):
    _old_run(tmp_path)
    _stage_new(tmp_path).discard()
    assert _tree(tmp_path) == OLD
