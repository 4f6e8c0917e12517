"""What the apps share: a quiet start, one way to fail, one way to stop."""

import argparse
import importlib.util
import os
import re
import signal
import sys
import types

#: Errors that mean "the user asked for something impossible": bad options,
#: missing data (DataUnavailableError is a RuntimeError), unusable folders.
USER_ERRORS = (ValueError, RuntimeError, OSError)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each default once: not where the help already says it, not for None or a flag."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def library_module(name):
    """The module `keras_glr.<name>`, loaded without the rest of keras_glr.

    `import keras_glr` loads TensorFlow, which takes seconds; `options`,
    `_src.run_config` and `_src.distribution` need only the standard library
    (and each other) to load, so `--help` and option errors answer at once. While they
    load, `keras_glr` is a bare package (its folder, no `__init__`); the
    modules stay registered under their own names: keras_glr reuses them later.
    """
    qualified = f"keras_glr.{name}"
    if qualified not in sys.modules:
        bare = "keras_glr" not in sys.modules
        if bare:
            package = types.ModuleType("keras_glr")
            package.__path__ = list(importlib.util.find_spec("keras_glr").submodule_search_locations)
            sys.modules["keras_glr"] = package
        try:
            importlib.import_module(qualified)
        finally:
            if bare:
                del sys.modules["keras_glr"]
    return sys.modules[qualified]


def run_config():
    """`keras_glr._src.run_config`, without TensorFlow (see `library_module`)."""
    return library_module("_src.run_config")


def start(program, verbose=False, interrupted="interrupted."):
    """Prepares a command-line program and loads TensorFlow.

    TensorFlow's start-up logs are silenced unless `verbose`: some are written
    to stderr before its log level is read, so stderr is closed while it
    loads. Ctrl-C at any moment (loading, tracing, training, writing) prints
    one line and exits with 130; every file a run writes is written
    atomically, so stopping anywhere leaves the last finished state whole.
    `interrupted` is that line's text, or a function that tidies up and
    returns it.
    """
    terminal = os.dup(2)

    def stop(signum, frame):
        try:
            message = interrupted() if callable(interrupted) else interrupted
        except Exception:  # never a trace on Ctrl-C: the next start recovers what is left
            message = "interrupted."
        os.write(terminal, f"\n{program}: {message}\n".encode())
        os._exit(130)

    signal.signal(signal.SIGINT, stop)
    if verbose:
        import tensorflow  # noqa: F401

        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)  # TFDS's warnings would add lines to a one-line error
        finally:
            os.dup2(terminal, 2)


def fail(program, message, code=2):
    """Prints `program: error: message` to stderr and returns `code`."""
    print(f"{program}: error: {message}", file=sys.stderr)
    return code


def flag(name):
    """The command-line flag of a library argument: learning_rate -> --learning-rate."""
    return "--" + name.replace("_", "-")


def in_flags(message, names):
    """`message` with the library's argument names written as command-line flags.

    "`copies`" becomes "--copies", "copies=3" becomes "--copies 3",
    "antithetic=False" becomes "no --antithetic". Text in double quotes (a
    command or Python snippet to copy) is left as it is.
    """
    parts = re.split(r'("[^"]*")', message)
    return "".join(part if part.startswith('"') else _flags_in(part, names) for part in parts)


def _flags_in(message, names):
    for name in sorted(names, key=len, reverse=True):
        message = re.sub(rf"\b{name}=(True)\b", flag(name), message)
        message = re.sub(rf"\b{name}=(False)\b", "no " + flag(name), message)
        message = re.sub(
            rf"\b{name}=('[^']*'|\S+?)(?=[,;:)]?(\s|$)|\.(\s|$))", lambda m: f"{flag(name)} {m.group(1)}", message
        )
        message = message.replace(f"`{name}`", flag(name))
    return message
