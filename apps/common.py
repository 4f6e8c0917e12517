"""What the apps share: quiet TensorFlow logs, and one way to fail."""

import os
import sys


def quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def fail(program, message, code=2):
    """Prints `program: error: message` to stderr and returns `code`."""
    print(f"{program}: error: {message}", file=sys.stderr)
    return code


#: Errors that mean "the user asked for something impossible": bad options,
#: missing data (DataUnavailableError is a RuntimeError), unusable folders.
USER_ERRORS = (ValueError, RuntimeError, OSError)
