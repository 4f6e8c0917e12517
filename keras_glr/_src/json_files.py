"""A run's JSON files (config.json, run.json, state.json): written atomically, read with their fields checked.

Standard library only: the command line reads run files without loading TensorFlow.
"""

import json
import os


class DamagedFileError(ValueError):
    """A run file exists but cannot be read as what it should hold."""


def write_json(path, values):
    """Writes `values` as JSON atomically (a reader never sees half a file)."""
    path = str(path)
    with open(path + ".tmp", "w") as f:
        json.dump(values, f, indent=2, default=str)
    os.replace(path + ".tmp", path)


def read_json(path, fields=None):
    """The JSON object stored at `path`.

    Args:
        fields: {key: type or tuple of types} that the object must hold.

    Raises:
        DamagedFileError: not JSON, not an object, or a field missing or of
            another type; the message names the file and what is wrong.
    """
    try:
        with open(path) as f:
            values = json.load(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise DamagedFileError(
            f"{path} is damaged: it is not valid JSON ({error}). Restore it, or start the run again with --overwrite."
        ) from None
    if not isinstance(values, dict):
        raise DamagedFileError(
            f"{path} is damaged: expected a JSON object, found a {type(values).__name__}. Restore it, or start the run "
            "again with --overwrite."
        )
    for key, kind in (fields or {}).items():
        value = values.get(key)
        if (
            key not in values
            or not isinstance(value, kind)
            or (isinstance(value, bool) and bool not in _as_tuple(kind))
        ):
            names = " or ".join(_KINDS.get(t, t.__name__) for t in _as_tuple(kind))
            found = "nothing" if key not in values else f"{value!r}"
            raise DamagedFileError(
                f"{path} is damaged: {key!r} should be {names}, found {found}. Restore it, or start the run again "
                "with --overwrite."
            )
    return values


_KINDS = {
    int: "an integer",
    float: "a number",
    str: "a string",
    dict: "a JSON object",
    list: "a list",
    bool: "true or false",
}


def _as_tuple(kind):
    return kind if isinstance(kind, tuple) else (kind,)
