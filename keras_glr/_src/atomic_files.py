"""Files and folders replaced together: staged beside their final names, then committed.

A `Commit` collects staged paths (`.partial-<name>` beside `<name>`: names
TF Serving and readers of the run ignore). `apply` first writes the list of
moves as a journal (one atomic rename: the commit point), then moves each
staged path into place, then removes the journal. `recover` finishes the
moves of a journal left by an interruption (roll forward) or, without a
journal, removes what was staged (roll back). So an interruption at any
moment leaves, once recovered, either every old file or every new one.

A staged folder that replaces an existing one moves it aside first
(`.old-<name>`) and removes it once every move is done.
"""

import json
import os
import shutil

PARTIAL = ".partial-"
OLD = ".old-"


def staged(path):
    """The staging name of `path`: `.partial-<name>` in the same folder (its extension kept)."""
    folder, name = os.path.split(str(path))
    return os.path.join(folder, PARTIAL + name)


def _aside(path):
    folder, name = os.path.split(path)
    return os.path.join(folder, OLD + name)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


class Commit:
    """Moves staged paths under `folder` into place together.

    Args:
        folder: where the journal lives; every path is under it.
        journal: the journal's file name in `folder`.
    """

    def __init__(self, folder, journal=".commit.json"):
        self.folder, self.journal = str(folder), os.path.join(str(folder), journal)
        self.moves = []

    def stage(self, path):
        """Registers `path` (under `folder`) and returns the staging path to write it to."""
        target = os.path.join(self.folder, path)
        self.moves.append((os.path.relpath(staged(target), self.folder), os.path.relpath(target, self.folder)))
        _remove(staged(target))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        return staged(target)

    def apply(self):
        """Commits: writes the journal, moves every staged path into place, removes the journal."""
        with open(self.journal + ".tmp", "w") as f:
            json.dump({"moves": self.moves}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(self.journal + ".tmp", self.journal)
        _finish_moves(self.folder, self.moves)
        os.remove(self.journal)

    def discard(self):
        """Removes every staged path, unless the commit is under way (its journal written: `recover` finishes it)."""
        if os.path.exists(self.journal):
            return
        for source, _ in self.moves:
            _remove(os.path.join(self.folder, source))


def _finish_moves(folder, moves):
    for source, target in moves:
        source, target = os.path.join(folder, source), os.path.join(folder, target)
        if not os.path.lexists(source):
            continue  # moved before an interruption
        if os.path.isdir(source) and os.path.lexists(target):
            _remove(_aside(target))
            os.rename(target, _aside(target))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)
    for _, target in moves:
        _remove(_aside(os.path.join(folder, target)))


def _staged_under(folder):
    found = []
    for where, folders, files in os.walk(folder):
        for name in [*folders, *files]:
            if name.startswith(PARTIAL):
                found.append(os.path.relpath(os.path.join(where, name), folder))
        folders[:] = [n for n in folders if not n.startswith(PARTIAL)]
    return found


def roll_forward(folder, journal=".commit.json"):
    """Finishes the moves of a commit that an interruption left under way in `folder`; True if there was one."""
    path = os.path.join(str(folder), journal)
    if not os.path.exists(path):
        return False
    try:
        with open(path) as f:
            moves = json.load(f)["moves"]
    except (OSError, ValueError, KeyError, TypeError):
        moves = None  # a journal is whole once renamed into place: a damaged one was never committed
    if moves is not None:
        _finish_moves(str(folder), moves)
    os.remove(path)
    return moves is not None


def recover(folder, journal=".commit.json", leftovers=None):
    """Completes or undoes an interrupted commit in `folder`; returns "forward", "back" or None.

    With a journal, its moves are finished (`roll_forward`). Without one,
    what was staged for a commit that never happened is removed: the
    `leftovers` (paths under `folder`), or when they are None every
    `.partial-*` under `folder`.
    """
    folder = str(folder)
    if roll_forward(folder, journal):
        return "forward"
    _remove(os.path.join(folder, journal) + ".tmp")
    if leftovers is None:
        leftovers = _staged_under(folder)
    found = [p for p in (os.path.join(folder, p) for p in leftovers) if os.path.lexists(p)]
    for p in found:
        _remove(p)
    return "back" if found else None
