"""Stand-ins for Ctrl-C at one chosen step of a sequence of file-system operations."""

import os

#: The operations of a commit (the moments between which an interruption can fall).
STEPS = ("replace", "rename", "remove", "rmdir", "fsync")


class Interrupted(BaseException):
    """Stands for Ctrl-C (a BaseException, as KeyboardInterrupt: no `except Exception` catches it)."""


def interrupt_at(patch, step, names=STEPS):
    """Makes the `step`-th call of the os functions `names` raise `Interrupted` (`patch`: a monkeypatch context)."""
    done = []

    def interrupting(function):
        def call(*args, **kwargs):
            if len(done) == step:
                raise Interrupted
            done.append(1)
            return function(*args, **kwargs)

        return call

    for name in names:
        patch.setattr(os, name, interrupting(getattr(os, name)))
