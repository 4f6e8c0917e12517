"""MkDocs hook: the command-line apps' pages show their real `--help`, the estimator guide its real options.

A page line `<!-- help: glr-train -->` is replaced by that program's help,
formatted by its own argparse parser (`build_parser` in `apps/`), and a line
`<!-- options table -->` by the table of `keras_glr.options.EstimatorOptions`,
so the docs never drift from the options. Neither loads TensorFlow.
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
_OPTIONS = "<!-- options table -->"


def help_text(program):
    """The `--help` output of `program` at a fixed width of 100 columns."""
    if program not in PROGRAMS:
        raise ValueError(f"Unknown program {program!r} in a help marker; expected one of {sorted(PROGRAMS)}.")
    os.environ["COLUMNS"] = "100"
    return importlib.import_module(PROGRAMS[program]).build_parser().format_help()


def options_table():
    """The estimator options' table (`keras_glr.options.markdown_table`), loaded as the apps load it: without
    TensorFlow."""
    from keras_glr_apps import common

    return common.library_module("options").markdown_table()


def on_page_markdown(markdown, page, config, files):
    if _OPTIONS in markdown:
        markdown = markdown.replace(_OPTIONS, options_table())
    return _MARKER.sub(lambda m: "```text\n" + help_text(m.group(1)).rstrip() + "\n```", markdown)
