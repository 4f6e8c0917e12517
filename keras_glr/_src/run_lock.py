"""One process per run: an exclusive lock on `<root>/.<run name>.lock`.

The lock is an OS file lock (`fcntl.flock`): the operating system releases
it when the process ends, however it ends (Ctrl-C, kill -9, a crash), so a
lock is never left stale. The lock file names its holder (process id and
command line) so that a refused process can say who holds the run.
"""

import fcntl
import os
import sys


class RunInUseError(RuntimeError):
    """Another process holds the run's lock."""


def lock_path(root, name):
    """The lock file of run `name` in `root`: a hidden sibling of the run directory."""
    return os.path.join(str(root), f".{name}.lock")


class RunLock:
    """An exclusive lock on the run `name` in `root`, held from `acquire` to `release`.

    Usable as a context manager. Raises `RunInUseError` naming the run and the
    holding process when another process holds it.
    """

    def __init__(self, root, name):
        self.root, self.name, self.path = str(root), name, lock_path(root, name)
        self._fd = None

    def acquire(self):
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunInUseError(
                    f"The run {self.name!r} in {self.root} is in use by another process ({holder}). Wait for it to "
                    "finish, or choose another --run-name."
                ) from None
            try:  # the holder before us may have removed the file after we opened it: lock the file at the path
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        command = " ".join([os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]])
        os.write(fd, f"pid {os.getpid()}: {command[:200]}".encode())
        self._fd = fd
        return self

    def release(self):
        """Removes the lock file and releases the lock (removing first: a waiter then re-checks the path)."""
        if self._fd is None:
            return
        try:
            os.remove(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_holder(fd):
    try:
        text = os.pread(fd, 1000, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "its process id is unknown"
