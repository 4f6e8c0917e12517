"""MkDocs hook: the command-line apps' pages show their real `--help`.

A page line `<!-- help: glr-train -->` is replaced by that program's help,
formatted by its own argparse parser (`build_parser` in `apps/`), so the docs
never drift from the options. The parsers load no TensorFlow, so this is fast.
"""

import importlib
import os
import re

PROGRAMS = {
    "glr-train": "keras_glr_apps.train",
    "glr-export": "keras_glr_apps.export",
    "glr-evaluate": "keras_glr_apps.evaluate",
    "glr-reproduce": "keras_glr_apps.reproduce",
}
_MARKER = re.compile(r"^<!-- help: (\S+) -->$", flags=re.M)


def help_text(program):
    """The `--help` output of `program` at a fixed width of 100 columns."""
    if program not in PROGRAMS:
        raise ValueError(f"Unknown program {program!r} in a help marker; expected one of {sorted(PROGRAMS)}.")
    os.environ["COLUMNS"] = "100"
    return importlib.import_module(PROGRAMS[program]).build_parser().format_help()


def on_page_markdown(markdown, page, config, files):
    return _MARKER.sub(lambda m: "```text\n" + help_text(m.group(1)).rstrip() + "\n```", markdown)
