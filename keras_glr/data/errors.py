"""The one error every data source raises when its data cannot be had."""


class DataUnavailableError(RuntimeError):
    """The requested data is not on this machine and cannot be fetched.

    The message says what was looked for and how to get it.
    """
